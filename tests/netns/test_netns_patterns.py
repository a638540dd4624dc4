# SPDX-License-Identifier: GPL-2.0-only
"""Many guests on one host, in namespaces each test creates: an INTERFACE
pattern serves the interfaces that match at start and those that appear
later, lets go of those that vanish, and waits (saying so) while nothing
matches. TAPs stand in for VMs' (the test holds their file descriptors);
veth pairs carry the guest namespace's real pings."""

import os
import re
import time

import pytest
from scapy.layers.l2 import ARP, Dot1Q, Ether

from netlab import GUEST_IF, HOST_IF, open_tap_in, ping, read_reply, run, summary

pytestmark = pytest.mark.lab("ip", "ping", tun=True, prefix="avzt-pat")

VM_MAC = "52:54:00:12:34:56"


def add_pair(lab, number):
    """veth pair number N: vhN in the host namespace, vgN in the guest's,
    the guest at 203.0.113.(16N+1)/28; returns the address to ping."""
    host_if, guest_if = f"vh{number}", f"vg{number}"
    run("ip", "link", "add", host_if, "netns", lab.host, "type", "veth", "peer", "name",
        guest_if, "netns", lab.guest)
    lab.in_guest("sysctl", "-qw", f"net.ipv6.conf.{guest_if}.disable_ipv6=1")
    lab.in_guest("ip", "addr", "add", f"203.0.113.{16 * number + 1}/28", "dev", guest_if)
    lab.in_guest("ip", "link", "set", guest_if, "up")
    lab.in_host("ip", "link", "set", host_if, "up")
    return f"203.0.113.{16 * number + 2}"


def pings(lab, address, count=2):
    """The whole replies to `count` pings of `address`."""
    return ping(lab, address, count=count).stdout.count(f"64 bytes from {address}")


def ask(fd, target, timeout=1.0):
    """Write an ARP request into the TAP as its VM would; the tagged reply."""
    os.write(fd, bytes(Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") /
                       ARP(op=1, hwsrc=VM_MAC, psrc="198.51.100.1", pdst=target)))
    return read_reply(fd, timeout=timeout)


def test_taps_made_after_start_are_served_within_a_second(lab):
    # The acceptance case: sudo ./arp_icmp_vlan0.py 'tap*' before any TAP exists.
    tool = lab.start_tool(interface="tap*")
    tool.wait_for("no interface matches 'tap*' yet; waiting for one", timeout=5)
    assert "on no interface yet (and every interface matching 'tap*' that comes up)" \
           in tool.output
    fds = []
    try:
        for name in ("tap0", "tap1"):
            fds.append(open_tap_in(lab.host, name))
            made = time.monotonic()
            lab.in_host("ip", "link", "set", name, "up")
            reply = None
            while reply is None and time.monotonic() - made < 1.0:
                reply = ask(fds[-1], "198.51.100.2", timeout=0.02)
            assert reply is not None, f"{name} not served within a second:\n{tool.output}"
            assert reply[Dot1Q].vlan == 0 and reply[ARP].psrc == "198.51.100.2"
            tool.wait_for(f"arp_icmp_vlan0: {name}: serving (matches 'tap*')")
        # One goes away (its "VM" closes it): it is let go, the other goes on.
        os.close(fds.pop(0))
        tool.wait_for("arp_icmp_vlan0: tap0: gone; let go", timeout=5)
        assert ask(fds[0], "198.51.100.3") is not None
    finally:
        for fd in fds:
            os.close(fd)
    assert tool.stop() == 0
    assert re.search(r"--- arp_icmp_vlan0 statistics: 2 interfaces, time [\d.]+s ---\n"
                     r"tap0: \d+ frames seen, \d+ replies sent .*\n"
                     r"tap1: \d+ frames seen, \d+ replies sent .*\n"
                     r"total: \d+ frames seen", tool.output), tool.output


def test_a_pattern_serves_interfaces_at_start_and_later_and_lets_go_of_one(lab):
    first, second = add_pair(lab, 1), add_pair(lab, 2)
    tool = lab.start_tool("-q", interface="vh*", summary=True)
    assert "on vh1, vh2 (and every interface matching 'vh*' that comes up)" in tool.output
    assert pings(lab, first) == 2 and pings(lab, second) == 2
    third = add_pair(lab, 3)
    tool.wait_for("arp_icmp_vlan0: vh3: serving (matches 'vh*')", timeout=5)
    assert pings(lab, third) == 2
    lab.in_host("ip", "link", "del", "vh1")
    tool.wait_for("arp_icmp_vlan0: vh1: gone; let go", timeout=5)
    assert pings(lab, second) == 2 and pings(lab, third) == 2
    assert HOST_IF not in tool.output  # veth-host does not match
    assert tool.stop() == 0
    interfaces = summary(tool)["interfaces"]
    for name, replies in (("vh1", 3), ("vh2", 5), ("vh3", 5)):  # ARP, then the pings
        counts = interfaces[name]
        assert (counts["frames_seen"], counts["replies_sent"]) == (replies, replies), counts


def test_an_interface_that_goes_down_is_let_go_and_served_again_when_up(lab):
    address = add_pair(lab, 1)
    tool = lab.start_tool("-q", interface="vh*")
    assert pings(lab, address) == 2
    lab.in_host("ip", "link", "set", "vh1", "down")
    tool.wait_for("arp_icmp_vlan0: vh1: down; let go", timeout=5)
    lab.in_host("ip", "link", "set", "vh1", "up")
    tool.wait_for("arp_icmp_vlan0: vh1: back; answering again", timeout=5)
    assert pings(lab, address) == 2
    assert tool.stop() == 0


def test_names_and_patterns_together(lab):
    address = add_pair(lab, 1)
    tool = lab.start_tool("-q", "vh*", interface=HOST_IF)
    # Names given are served first, then what the patterns match.
    assert f"on {HOST_IF}, vh1 (and every interface matching 'vh*' that comes up)" \
           in tool.output, tool.output
    assert pings(lab, address) == 2 and pings(lab, "198.51.100.2") == 2
    assert GUEST_IF not in tool.output
    assert tool.stop() == 0


def test_a_pattern_whose_matches_are_down_says_so(lab):
    for number in (1, 2):
        add_pair(lab, number)
        lab.in_host("ip", "link", "set", f"vh{number}", "down")
    tool = lab.start_tool("-q", "--timeout", "0.5", interface="vh*")
    assert tool.wait(timeout=10) == 0
    assert "arp_icmp_vlan0: vh1, vh2 match 'vh*' but are down; waiting for one to come up" \
        in tool.output, tool.output
    assert "no interface matches" not in tool.output
    assert "--- arp_icmp_vlan0 statistics: no interface was served ---" in tool.output
