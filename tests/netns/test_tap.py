# SPDX-License-Identifier: GPL-2.0-only
"""The tool on a TAP device, as beside a VM: the test holds the TAP's file
descriptor as the "VM" side, writes crafted requests into it and reads the
tagged replies back."""

import os

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrDestOpt,
                                IPv6ExtHdrHopByHop)
from scapy.layers.l2 import ARP, Dot1Q, Ether

from arp_icmp_vlan0 import DEFAULT_MAC
from checks import echo_data
from netlab import open_tap_in, read_reply, summary

pytestmark = pytest.mark.lab("ip", tun=True, prefix="avzt-tap")

VM_MAC = "52:54:00:12:34:56"
VM_IP, TOOL_IP = "203.0.113.1", "203.0.113.2"


@pytest.fixture
def tap(lab):
    """TAP tap0 in the lab's host namespace, up, the tool serving it; the
    test holds (its file descriptor, the tool)."""
    fd = open_tap_in(lab.host, "tap0")
    try:
        lab.in_host("ip", "link", "set", "tap0", "up")
        tool = lab.start_tool(interface="tap0", summary=True)
        yield fd, tool
    finally:
        os.close(fd)


@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "tagged-request"])
def test_arp_through_a_tap(tap, tagged):
    fd, _ = tap
    tag = Dot1Q(vlan=0, prio=3) if tagged else None
    request = Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff")
    request = (request / tag if tag else request) / ARP(
        op=1, hwsrc=VM_MAC, psrc=VM_IP, pdst=TOOL_IP)
    os.write(fd, bytes(request))
    reply = read_reply(fd)
    assert reply is not None, "no reply on the TAP"
    assert reply.dst == VM_MAC and reply.type == 0x8100
    assert (reply[Dot1Q].vlan, reply[Dot1Q].prio) == (0, 0)
    assert not reply[Dot1Q].payload.haslayer(Dot1Q)
    arp = reply[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        2, DEFAULT_MAC, TOOL_IP, VM_MAC, VM_IP)


@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "tagged-request"])
def test_echo_through_a_tap(tap, tagged):
    fd, _ = tap
    request = Ether(src=VM_MAC, dst=DEFAULT_MAC)
    if tagged:
        request = request / Dot1Q(vlan=0, prio=6)
    request = request / IP(src=VM_IP, dst=TOOL_IP) / ICMP(id=77, seq=9) / b"from the VM"
    os.write(fd, bytes(request))
    reply = read_reply(fd)
    assert reply is not None, "no reply on the TAP"
    assert reply.dst == VM_MAC and reply[Dot1Q].vlan == 0
    assert (reply[IP].src, reply[IP].dst, reply[ICMP].type) == (TOOL_IP, VM_IP, 0)
    assert (reply[ICMP].id, reply[ICMP].seq) == (77, 9)
    assert echo_data(reply) == b"from the VM"


def test_one_reply_per_request_and_nothing_for_the_rest(tap):
    fd, tool = tap
    junk = [Ether(src=VM_MAC, dst=DEFAULT_MAC) / IP(src=VM_IP, dst=TOOL_IP) / ICMP(type=0),
            Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, psrc=VM_IP),
            Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc="0.0.0.0",
                                                            pdst=VM_IP)]
    for frame in junk:
        os.write(fd, bytes(frame))
    for seq in range(5):
        os.write(fd, bytes(Ether(src=VM_MAC, dst=DEFAULT_MAC) /
                           IP(src=VM_IP, dst=TOOL_IP) / ICMP(id=1, seq=seq)))
    replies = []
    while (reply := read_reply(fd, timeout=1)) is not None:
        replies.append(reply)
    assert sorted(r[ICMP].seq for r in replies) == list(range(5))
    tool.stop()
    # The ARP reply and the echo reply never reach Python; the probe does.
    total = summary(tool)["total"]
    assert (total["frames_seen"], total["replies_sent"], total["ignored"]) == (6, 5, 1)
    assert total["replies"] == {"arp": 0, "icmp echo": 5, "ndp": 0, "icmp6 echo": 0}


def test_ipv6_behind_hop_by_hop_passes_the_kernel_filter(tap):
    fd, tool = tap
    solicitation = (Ether(src=VM_MAC, dst="33:33:ff:00:00:02") /
                    IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255) /
                    IPv6ExtHdrHopByHop() / ICMPv6ND_NS(tgt="2001:db8::2") /
                    ICMPv6NDOptSrcLLAddr(lladdr=VM_MAC))
    os.write(fd, bytes(solicitation))
    reply = read_reply(fd)
    assert reply is not None and reply.haslayer(ICMPv6ND_NA)
    assert reply[ICMPv6ND_NA].tgt == "2001:db8::2" and reply[Dot1Q].vlan == 0
    # Behind any other first extension header, the kernel filter drops it.
    os.write(fd, bytes(Ether(src=VM_MAC, dst=DEFAULT_MAC) /
                       IPv6(src="2001:db8::1", dst="2001:db8::2") /
                       IPv6ExtHdrDestOpt() / ICMPv6EchoRequest()))
    assert read_reply(fd, timeout=1) is None
    tool.stop()
    total = summary(tool)["total"]
    assert (total["frames_seen"], total["replies_sent"]) == (1, 1)
