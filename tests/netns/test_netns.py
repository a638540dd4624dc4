# SPDX-License-Identifier: GPL-2.0-only
"""The tool against the real Linux stack, in namespaces each test creates:
iputils ping and arping in the "guest" namespace, the tool on the host end of
a veth, tcpdump -n -e in the guest confirming the tags."""

import json
import re
import subprocess
import sys

import pytest

from conftest import need_root_and
from netlab import (BENCHMARK, GUEST_IF, GUEST_IP, HOST_IF, TOOL, TOOL_IP, assert_whole_replies,
                    from_tool, ping, run, summary, tagged_lines)
from arp_icmp_vlan0 import DEFAULT_MAC

pytestmark = pytest.mark.lab("ip", "ping", "arping", "tcpdump")


def test_ping_and_arp_replies_are_tagged_vlan0_once_each(lab):
    capture = lab.start_capture()
    tool = lab.start_tool(summary=True)
    assert_whole_replies(ping(lab, TOOL_IP), 3)
    assert tool.stop() == 0
    capture.stop()
    lines = capture.output.splitlines()
    arp_requests = [line for line in lines if f"Request who-has {TOOL_IP} tell {GUEST_IP}" in line]
    echo_requests = [line for line in lines if "ICMP echo request" in line]
    arp_replies = [line for line in tagged_lines("\n".join(lines))
                   if f"Reply {TOOL_IP} is-at {DEFAULT_MAC}" in line]
    echo_replies = [line for line in tagged_lines("\n".join(lines)) if "ICMP echo reply" in line]
    assert len(echo_requests) == len(echo_replies) == 3
    assert len(arp_requests) == len(arp_replies) >= 1
    for line in arp_replies + echo_replies:
        assert "ethertype 802.1Q (0x8100)" in line and "vlan 0, p 0," in line
    total = summary(tool)["total"]
    assert (total["replies_sent"], total["replies"]["arp"], total["replies"]["icmp echo"]) == (
        len(arp_replies) + 3, len(arp_replies), 3)


def test_arping_gets_tagged_answers(lab):
    tool = lab.start_tool(summary=True)
    result = lab.in_guest("arping", "-c", "3", "-w", "5", "-I", GUEST_IF, TOOL_IP,
                          check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received 3 response(s)" in result.stdout
    assert result.stdout.count(f"from {TOOL_IP} [{DEFAULT_MAC.upper()}]") == 3
    tool.stop()
    assert summary(tool)["total"]["replies"]["arp"] == 3


def test_duplicate_address_detection_finds_no_duplicate(lab):
    tool = lab.start_tool(summary=True)
    result = lab.in_guest("arping", "-D", "-c", "2", "-w", "3", "-I", GUEST_IF,
                          GUEST_IP, check=False)
    tool.stop()
    assert result.returncode == 0, result.stdout  # 0: no reply, address free
    assert "Received 0 response(s)" in result.stdout
    total = summary(tool)["total"]
    assert total["replies_sent"] == 0
    assert total["ignored"] == total["frames_seen"] >= 2  # the probes did reach it


def test_udp_and_tcp_get_nothing_and_are_dropped_in_the_kernel(lab):
    capture = lab.start_capture()
    tool = lab.start_tool(summary=True)
    assert_whole_replies(ping(lab, TOOL_IP, count=1), 1)
    lab.in_guest(sys.executable, "-c", f"""
import socket
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b"x", ("{TOOL_IP}", 9))
try:
    socket.create_connection(("{TOOL_IP}", 80), timeout=1)
    raise SystemExit("TCP connected")
except socket.timeout:
    pass
""")
    tool.stop()
    capture.stop()
    output = capture.output
    assert f"{GUEST_IP}.9" not in output  # nothing answered the datagram
    assert re.search(rf"{GUEST_IP}\.\d+ > {TOOL_IP}\.80: Flags \[S\]", output)
    assert re.search(rf"{GUEST_IP}\.\d+ > {TOOL_IP}\.9: UDP", output)
    replies = from_tool(output)
    assert len(replies) == 2, replies  # the ARP and the echo reply
    total = summary(tool)["total"]  # UDP and TCP never reached Python:
    assert (total["frames_seen"], total["replies_sent"], total["ignored"]) == (2, 2, 0)


def test_vlan_and_priority_options_show_in_tcpdump(lab):
    capture = lab.start_capture()
    tool = lab.start_tool("--vlan", "7", "--prio", "5")
    # The guest has no VLAN 7: it drops the replies, but tcpdump sees them.
    ping(lab, TOOL_IP, count=1)
    tool.stop()
    capture.stop()
    lines = tagged_lines(capture.output, "vlan 7, p 5,")
    assert any(f"Reply {TOOL_IP} is-at {DEFAULT_MAC}" in line for line in lines), lines


@pytest.mark.parametrize("how", ["count", "timeout", "sigterm"])
def test_ends_with_status_0_and_statistics(lab, how):
    if how == "count":
        tool = lab.start_tool("-c", "2", summary=True)
        ping(lab, TOOL_IP, count=3)
        status = tool.wait()
        assert summary(tool)["total"]["replies_sent"] == 2
    elif how == "timeout":
        tool = lab.start_tool("--timeout", "1")
        status = tool.wait(timeout=10)
    else:
        tool = lab.start_tool()
        status = tool.stop()
    assert status == 0, tool.output
    assert "arp_icmp_vlan0 statistics" in tool.output


def test_quiet_prints_only_start_and_statistics(lab):
    tool = lab.start_tool("-q", summary=True)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    tool.stop()
    lines = tool.output.strip().splitlines()
    verdict = "accepts ARP replies tagged vlan 0, p 0: "
    assert "Hit Ctrl-C" in lines[0] and verdict in lines[1], lines
    assert "statistics" in lines[2] and verdict in lines[4] and len(lines) == 5, lines
    assert summary(tool)["total"]["replies_sent"] == 3


def test_pcap_file_holds_requests_and_tagged_replies(lab, tmp_path):
    pcap = tmp_path / "seen.pcap"
    tool = lab.start_tool("-w", str(pcap))
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    tool.stop()
    lines = run("tcpdump", "-n", "-e", "-r", str(pcap)).stdout.splitlines()
    assert len(lines) == 6, lines  # ARP + 2 echoes, each request and reply
    replies = [line for line in lines if line.split()[1] == DEFAULT_MAC]
    assert len(replies) == 3
    assert all("ethertype 802.1Q (0x8100)" in line and "vlan 0, p 0," in line for line in replies)
    assert sum("ICMP echo request" in line for line in lines) == 2


def test_ip_option_limits_the_answered_addresses(lab):
    tool = lab.start_tool("--ip", TOOL_IP, summary=True)
    assert_whole_replies(ping(lab, TOOL_IP, count=1), 1)
    other = ping(lab, "198.51.100.3", count=1)
    tool.stop()
    assert other.returncode != 0
    total = summary(tool)["total"]
    assert (total["replies_sent"], total["replies"]["arp"], total["replies"]["icmp echo"]) == (
        2, 1, 1)
    assert total["ignored"] >= 1


def test_interface_that_is_down_is_refused(lab):
    lab.in_host("ip", "link", "set", HOST_IF, "down")
    result = lab.in_host(sys.executable, TOOL, HOST_IF, check=False)
    assert result.returncode == 1
    assert f"{HOST_IF}: interface is down" in result.stderr
    assert "Traceback" not in result.stderr


def test_self_test_passes():
    need_root_and("ip", "ping")
    result = subprocess.run([sys.executable, TOOL, "--self-test"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test: PASS" in result.stdout
    assert "3 received" in result.stdout
    left = run("ip", "netns", "list").stdout
    assert "avz-" not in left, left


@pytest.mark.parametrize("mode", [[], ["--busy-poll"]], ids=["select", "busy-poll"])
def test_burst_of_1000_echo_requests_answered_exactly_once(lab, mode):
    # The benchmark's load generator, run in the guest: 1,000 back-to-back
    # requests, then a count of the replies per sequence number.
    tool = lab.start_tool("-q", *mode, summary=True)
    result = lab.in_guest(sys.executable, BENCHMARK, "--generate", "burst",
                          "--peer-mac", DEFAULT_MAC, timeout=60)
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    tool.stop()
    assert counts == {"sent": 1000, "answered": 1000, "exactly_once": 1000}
    total = summary(tool)["total"]
    assert (total["frames_seen"], total["replies_sent"], total["replies"]["arp"],
            total["replies"]["icmp echo"]) == (1000, 1000, 0, 1000)


def test_busy_poll_answers_and_ends_on_timeout(lab):
    tool = lab.start_tool("--busy-poll", "--timeout", "3", summary=True)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    assert tool.wait(timeout=10) == 0
    assert summary(tool)["total"]["replies_sent"] == 3


@pytest.mark.parametrize("owner, duplicate", [
    ("kernel", True), (["--ip", TOOL_IP], True), (["--ip", f"{TOOL_IP}/32"], True),
    (["--ip", "198.51.100.0/24"], False), ([], False)],
    ids=["kernel", "single-ip", "single-ip-32", "prefix", "any-address"])
def test_an_address_given_singly_is_defended_against_arp_probes(lab, owner, duplicate):
    # iputils arping -D: exit status 1 when someone answers the probe (RFC 5227).
    if owner == "kernel":
        lab.in_host("ip", "addr", "add", f"{TOOL_IP}/24", "dev", HOST_IF)
    else:
        tool = lab.start_tool(*owner, summary=True)
    result = lab.in_guest("arping", "-D", "-c", "2", "-w", "3", "-I", GUEST_IF, TOOL_IP,
                          check=False)
    assert result.returncode == (1 if duplicate else 0), result.stdout
    assert f"Received {1 if duplicate else 0} response(s)" in result.stdout
    if owner != "kernel":
        tool.stop()
        assert summary(tool)["total"]["replies"]["arp"] == (1 if duplicate else 0)
