# SPDX-License-Identifier: GPL-2.0-only
"""Tag and frame fidelity against the real Linux stack, in namespaces each
test creates: tag settings as tcpdump -e shows them, the untagged baseline,
padding, full-MTU and fragmented pings, IP options."""

import json
import re

import pytest
from scapy.utils import PcapReader

from arp_icmp_vlan0 import DEFAULT_MAC
from conftest import need_root_and
from netlab import GUEST_IF, TOOL_IP, Lab
from test_netns import kinds, stats

TOOL6 = "2001:db8::2"


@pytest.fixture
def lab():
    need_root_and("ip", "ping", "tcpdump")
    with Lab(ipv6=True) as made:
        made.in_guest("ip", "-6", "addr", "add", "2001:db8::1/64", "dev", GUEST_IF, "nodad")
        yield made


def from_tool(capture_output):
    return [line for line in capture_output.splitlines()
            if line.split()[1:2] == [DEFAULT_MAC]]


def ping(lab, *args, count=2):
    return lab.in_guest("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", *args,
                        check=False, timeout=60)


@pytest.mark.parametrize("options, shown", [
    (["--vlan", "7", "--prio", "5", "--dei"],
     "ethertype 802.1Q (0x8100), length 60: vlan 7, p 5, DEI, ethertype ARP"),
    (["--vlan", "100", "--vlan", "0", "--tpid", "0x88a8"],
     "ethertype 802.1Q-QinQ (0x88a8), length 60: vlan 100, p 0, ethertype 802.1Q (0x8100), "
     "vlan 0, p 0, ethertype ARP"),
])
def test_tag_settings_show_in_tcpdump(lab, options, shown):
    capture = lab.start_capture()
    tool = lab.start_tool("-4", *options)
    ping(lab, TOOL_IP, count=1)  # the guest has no such VLAN: it drops the reply
    tool.stop()
    capture.stop()
    assert any(shown in line for line in from_tool(capture.output)), capture.output


def test_untagged_baseline_has_no_tag_and_pings(lab):
    capture = lab.start_capture()
    tool = lab.start_tool("--untagged")
    result = ping(lab, TOOL_IP)
    result6 = ping(lab, "-6", TOOL6)
    tool.stop()
    capture.stop()
    assert "2 received" in result.stdout and "2 received" in result6.stdout
    lines = from_tool(capture.output)
    assert len(lines) == 6  # ARP, NA and four echo replies
    assert not any("802.1Q" in line or "vlan" in line for line in lines), lines


def test_every_frame_from_the_tool_is_at_least_60_bytes(lab):
    capture = lab.start_capture()
    tool = lab.start_tool()
    ping(lab, TOOL_IP, "-s", "0")
    ping(lab, "-6", TOOL6, "-s", "0")
    tool.stop()
    capture.stop()
    lengths = [int(re.search(r", length (\d+):", line).group(1))
               for line in from_tool(capture.output)]
    assert len(lengths) == 6 and min(lengths) >= 60, lengths


@pytest.mark.parametrize("family, size", [
    ("-4", 1472), ("-4", 3000), ("-4", 8000), ("-6", 1452), ("-6", 3000), ("-6", 8000)])
def test_full_mtu_and_fragmented_pings(lab, family, size):
    capture = lab.start_capture()
    tool = lab.start_tool("-q")
    result = ping(lab, family, TOOL_IP if family == "-4" else TOOL6, "-s", str(size), count=3)
    tool.stop()
    capture.stop()
    assert result.returncode == 0 and "3 received, 0% packet loss" in result.stdout, (
        result.stdout + tool.output)
    assert result.stdout.count(f"{size + 8} bytes from") == 3  # whole replies
    assert kinds(tool.output)["icmp echo" if family == "-4" else "icmp6 echo"] == 3
    tagged = [line for line in from_tool(capture.output) if "vlan 0, p 0" in line]
    if size > 1472:
        assert "fragmented requests: 3 reassembled, 0 dropped" in tool.output
        assert len(tagged) > 6  # every fragment of every reply is tagged
    lengths = [int(re.search(r", length (\d+):", line).group(1)) for line in tagged]
    assert max(lengths) <= 1518


def test_ping_with_ip_options_is_answered_without_them(lab):
    tool = lab.start_tool("-4")
    result = ping(lab, "-R", TOOL_IP)
    tool.stop()
    assert "2 received" in result.stdout, result.stdout
    assert stats(tool.output)[3] == 2


def test_statistics_account_for_every_fragment(lab, tmp_path):
    # frames seen = replies sent + ignored + fragments held: with ping -s 4000
    # each request is three fragments, two held and the last one answered.
    summary = tmp_path / "summary.json"
    tool = lab.start_tool("-q", "--json", str(summary))
    assert "3 received" in ping(lab, "-4", TOOL_IP, "-s", "4000", count=3).stdout
    assert "3 received" in ping(lab, "-6", TOOL6, "-s", "4000", count=3).stdout
    tool.stop()
    seen, replied, _, _, ignored = stats(tool.output)
    held = int(re.search(r"(\d+) fragments held", tool.output).group(1))
    assert held == 12 and seen == replied + ignored + held, tool.output
    assert "fragmented requests: 6 reassembled, 0 dropped" in tool.output
    total = json.loads(summary.read_text())["total"]
    assert total["frames_seen"] == (total["replies_sent"] + total["ignored"]
                                    + total["fragments_held"]) == seen


def test_pcap_records_are_in_time_order(lab, tmp_path):
    # A flood makes requests queue while a reply is built: the file must
    # still read in the order frames crossed the wire.
    pcap = tmp_path / "order.pcap"
    tool = lab.start_tool("-q", "-4", "-w", str(pcap))
    lab.in_guest("ping", "-f", "-c", "2000", "-s", "3000", TOOL_IP, check=False, timeout=60)
    lab.in_guest("ping", "-f", "-c", "2000", TOOL_IP, check=False, timeout=60)
    tool.stop()
    stamps = [float(packet.time) for packet in PcapReader(str(pcap))]
    recorded = int(re.search(r"recording: (\d+) frames written", tool.output).group(1))
    seen, replied, _, _, _ = stats(tool.output)
    assert len(stamps) == recorded >= seen + replied - 1  # fragments of replies count too
    backwards = [(a, b) for a, b in zip(stamps, stamps[1:]) if b < a]
    assert not backwards, backwards[:5]
