# SPDX-License-Identifier: GPL-2.0-only
"""A hostile guest and a hostile local user, in namespaces each test
creates: a frame Scapy cannot summarise, planted links and FIFOs where the
files go, a second copy on the same interface, a bridge shared with the real
owner of an address; and the recording's causal order."""

import json
import os
import re
import subprocess
import sys

import pytest
from scapy.utils import rdpcap

from conftest import need, need_root_and
from netlab import (GUEST_IF, HOST_IF, TESTS, TOOL, TOOL6, TOOL_IP, assert_whole_replies, ping,
                    run, summary)

pytestmark = pytest.mark.lab("ip", "ping", "tcpdump", prefix="avzt-hard", guest6=True)

# Sends frames.dnssl_solicitation() three times on the guest's veth: its DNS
# Search List option made Scapy 2.5.0's summary, the per-reply line, raise
# ("Bad format string"), which ended the tool with a traceback.
DNSSL_SOLICITATIONS = f"""
import socket, sys
sys.path.insert(0, {TESTS!r})
from frames import dnssl_solicitation
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
for _ in range(3):
    sock.send(dnssl_solicitation())
"""


def debian_scapy_python():
    """Debian's python3 with python3-scapy (2.5.0 on Debian 12: the oldest
    Scapy the tool supports), or None."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return None
    version = subprocess.run([python, "-c", "import scapy; print(scapy.__version__)"],
                             capture_output=True, text=True)
    return python if version.returncode == 0 else None


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_a_frame_scapy_cannot_summarise_costs_no_guest_its_service(lab, tmp_path, which):
    python = sys.executable if which == "newest" else debian_scapy_python()
    need(python, "needs Debian's python3 with python3-scapy (apt install python3-scapy)")
    summary = tmp_path / "run.json"
    tool = lab.start(lab.host, python, TOOL, "--json", str(summary), HOST_IF)
    tool.wait_for("Hit Ctrl-C")
    lab.in_guest(python, "-c", DNSSL_SOLICITATIONS, GUEST_IF)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # still answering, in IPv4 too
    assert tool.stop() == 0, tool.output
    assert "Traceback" not in tool.output and "internal error" not in tool.output
    answered = [line for line in tool.output.splitlines() if "==>" in line and "ICMPv6" in line]
    assert len(answered) == 3, tool.output  # each NS answered, with a line
    record = json.loads(summary.read_text())
    assert record["total"]["replies"]["ndp"] == 3 and record["exit_status"] == 0


def nobody_owns(path):
    nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True)
    uid = int(nobody.stdout)
    os.chown(path, uid, uid)


def test_planted_links_and_fifos_are_refused_and_what_they_point_at_is_untouched(lab, tmp_path):
    """A user who owns the directory -w and --json write into plants a link
    to a root-owned file, or a FIFO; the tool, as root, used to truncate the
    file through the link and to block forever on the FIFO."""
    users = tmp_path / "users-dir"
    users.mkdir()
    nobody_owns(users)
    precious = tmp_path / "precious"
    precious.write_bytes(b"root's file")
    os.symlink(precious, users / "run.json")
    os.mkfifo(users / "run.pcap")
    for option, path, reason in (("--json", "run.json", "a symbolic link"),
                                 ("-w", "run.pcap", "a FIFO or socket")):
        result = lab.in_host(sys.executable, TOOL, option, str(users / path), HOST_IF,
                             check=False, timeout=10)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
    assert precious.read_bytes() == b"root's file"


def test_a_second_copy_on_an_interface_refuses_it_and_names_the_first(lab):
    first = lab.start_tool("-q")
    second = lab.in_host(sys.executable, TOOL, "-q", HOST_IF, check=False, timeout=10)
    assert second.returncode == 1
    assert (f"{HOST_IF}: already served by another arp_icmp_vlan0 (PID {first.popen.pid})"
            in second.stderr), second.stderr
    assert second.stderr.count("\n") == 1
    # A pattern skips it with one line and serves the rest.
    run("ip", "link", "add", "veth-host2", "netns", lab.host, "type", "veth", "peer", "name",
        "veth-guest2", "netns", lab.guest)
    lab.in_host("ip", "link", "set", "veth-host2", "up")
    pattern = lab.start_tool("-q", interface="veth-host*")
    assert "on veth-host2 (and every interface matching" in pattern.output
    assert re.search(rf"{HOST_IF}: already served by another arp_icmp_vlan0 "
                     rf"\(PID {first.popen.pid}\); skipped", pattern.output), pattern.output
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # answered once each (no DUP)
    result = ping(lab, TOOL_IP, count=2)
    assert "DUP" not in result.stdout
    first.stop()
    pattern.stop()


def bridge_with_an_owner(lab):
    """br0 in the host namespace, with the guest's veth as a port and the
    host's own 2001:db8::2 on it: the kernel owns that address."""
    lab.in_host("ip", "link", "add", "br0", "type", "bridge")
    lab.in_host("ip", "link", "set", HOST_IF, "master", "br0")
    lab.in_host("ip", "-6", "addr", "add", f"{TOOL6}/64", "dev", "br0", "nodad")
    lab.in_host("ip", "link", "set", "br0", "up")
    owner_mac = lab.in_host("cat", "/sys/class/net/br0/address").stdout.strip()
    for _ in range(30):  # until the bridge forwards and the owner answers
        if lab.in_guest("ping", "-6", "-n", "-c", "1", "-W", "0.2", TOOL6,
                        check=False).returncode == 0:
            return owner_mac
    pytest.fail("the bridge's owner of 2001:db8::2 never answered")


def test_a_bridge_is_served_for_any_address_only_when_asked(lab):
    bridge_with_an_owner(lab)
    result = lab.in_host(sys.executable, TOOL, "br0", check=False, timeout=10)
    assert result.returncode == 1 and "br0: a bridge, shared by other stations" in result.stderr
    served = lab.in_host(sys.executable, TOOL, "--ip", "203.0.113.9", "-c", "1",
                         "--timeout", "0.5", "br0", check=False, timeout=10)
    assert served.returncode == 0, served.stderr


def test_on_a_bridge_the_real_owner_wins_the_guests_neighbour_entry(lab):
    """Served for any address on a bridge, the tool answered every NS with
    Override set, and the guest's entry for the host's own address pointed
    at the tool (TCP to it then failed while ping "worked"). A proxy's NA
    has Override clear (RFC 4861 7.2.4), so the owner's answer wins."""
    owner_mac = bridge_with_an_owner(lab)
    tool = lab.start_tool("-6", "-q", "--untagged", "--any-address", interface="br0",
                          summary=True)
    for _ in range(5):
        lab.in_guest("ip", "-6", "neigh", "flush", "dev", GUEST_IF)
        lab.in_guest("ping", "-6", "-n", "-c", "1", "-W", "2", TOOL6, check=False)
        entry = lab.in_guest("ip", "-6", "neigh", "show", TOOL6).stdout
        assert owner_mac in entry, entry
    tool.stop()
    assert summary(tool)["total"]["replies"]["ndp"] > 0  # it did answer, as a proxy


def test_the_recording_is_in_causal_order(lab, tmp_path):
    """A reply was stamped after the send and after the line: the guest's
    echo request, which the ARP reply made possible, came first in the
    file. Each reply now lies between its request and the frame it enabled."""
    pcap = tmp_path / "causal.pcap"
    tool = lab.start_tool("-4", "-w", str(pcap))
    for _ in range(3):
        lab.in_guest("ip", "neigh", "flush", "dev", GUEST_IF)
        assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    assert tool.stop() == 0
    packets = rdpcap(str(pcap))
    kinds = []
    for packet in packets:
        if packet.haslayer("ARP"):
            kinds.append("arp-request" if packet["ARP"].op == 1 else "arp-reply")
        elif packet.haslayer("ICMP"):
            kinds.append("echo-request" if packet["ICMP"].type == 8 else "echo-reply")
    assert kinds.count("echo-request") == 6 and kinds.count("arp-reply") >= 3, kinds
    unanswered_ask = False  # an ARP request whose reply is not in the file yet
    for at, kind in enumerate(kinds):
        if kind == "arp-request":
            unanswered_ask = True
        elif kind == "arp-reply":
            assert kinds[at - 1] == "arp-request", kinds
            unanswered_ask = False
        elif kind == "echo-request":  # the guest had its answer first
            assert not unanswered_ask, kinds
        else:
            assert kinds[at - 1] == "echo-request", kinds
    stamps = [float(packet.time) for packet in packets]
    assert stamps == sorted(stamps)


def test_the_self_test_shows_the_tools_lines():
    need_root_and("ip", "ping")
    result = subprocess.run([sys.executable, TOOL, "--self-test"], capture_output=True,
                            text=True, timeout=60)
    assert "self-test: PASS" in result.stdout, result.stdout + result.stderr
    section = result.stdout.split("--- the tool, in the host namespace ---\n")[1]
    first = section.splitlines()[0]
    assert " ==> " in first and "vlan 0, p 0" in first, section
    assert "accepts" in section.split("statistics ---")[0]  # a verdict line before them
