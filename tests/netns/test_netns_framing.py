# SPDX-License-Identifier: GPL-2.0-only
"""Tag and frame fidelity against the real Linux stack, in namespaces each
test creates: tag settings as tcpdump -e shows them, the untagged baseline,
padding, full-MTU and fragmented pings, IP options."""

import re

import pytest
from scapy.utils import PcapReader

from netlab import HOST_IF, TOOL6, TOOL_IP, from_tool, ping, summary

pytestmark = pytest.mark.lab("ip", "ping", "tcpdump", guest6=True)


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
    result = ping(lab, TOOL_IP, count=2)
    result6 = ping(lab, "-6", TOOL6, count=2)
    tool.stop()
    capture.stop()
    assert "2 received" in result.stdout and "2 received" in result6.stdout
    lines = from_tool(capture.output)
    assert len(lines) == 6  # ARP, NA and four echo replies
    assert not any("802.1Q" in line or "vlan" in line for line in lines), lines


def test_every_frame_from_the_tool_is_at_least_60_bytes(lab):
    capture = lab.start_capture()
    tool = lab.start_tool()
    ping(lab, TOOL_IP, "-s", "0", count=2)
    ping(lab, "-6", TOOL6, "-s", "0", count=2)
    tool.stop()
    capture.stop()
    lengths = [int(re.search(r", length (\d+):", line).group(1))
               for line in from_tool(capture.output)]
    assert len(lengths) == 6 and min(lengths) >= 60, lengths


@pytest.mark.parametrize("family, size", [
    ("-4", 1472), ("-4", 3000), ("-4", 8000), ("-6", 1452), ("-6", 3000), ("-6", 8000)])
def test_full_mtu_and_fragmented_pings(lab, family, size):
    capture = lab.start_capture()
    tool = lab.start_tool("-q", summary=True)
    result = ping(lab, family, TOOL_IP if family == "-4" else TOOL6, "-s", str(size), count=3,
                  timeout=60)
    tool.stop()
    capture.stop()
    assert result.returncode == 0 and "3 received, 0% packet loss" in result.stdout, (
        result.stdout + tool.output)
    assert result.stdout.count(f"{size + 8} bytes from") == 3  # whole replies
    record = summary(tool)
    assert record["total"]["replies"]["icmp echo" if family == "-4" else "icmp6 echo"] == 3
    tagged = [line for line in from_tool(capture.output) if "vlan 0, p 0" in line]
    if size > 1472:
        fragmented = record["fragmented_requests"]
        assert (fragmented["reassembled"], fragmented["dropped"]) == (3, 0), fragmented
        assert len(tagged) > 6  # every fragment of every reply is tagged
    lengths = [int(re.search(r", length (\d+):", line).group(1)) for line in tagged]
    assert max(lengths) <= 1518


def test_ping_with_ip_options_is_answered_without_them(lab):
    tool = lab.start_tool("-4", summary=True)
    result = ping(lab, "-R", TOOL_IP, count=2)
    tool.stop()
    assert "2 received" in result.stdout, result.stdout
    assert summary(tool)["total"]["replies"]["icmp echo"] == 2


def test_the_statistics_as_printed_account_for_every_fragment(lab, tmp_path):
    """The statistics block is a promise to its readers: the one test of
    its lines as printed (the others read --json), each with the counts of
    the JSON summary. frames seen = replies sent + ignored + fragments
    held: with ping -s 4000 each request is three fragments, two held and
    the last one answered."""
    pcap = tmp_path / "seen.pcap"
    tool = lab.start_tool("-q", "-w", str(pcap), summary=True)
    assert "3 received" in ping(lab, "-4", TOOL_IP, "-s", "4000", count=3, timeout=60).stdout
    assert "3 received" in ping(lab, "-6", TOOL6, "-s", "4000", count=3, timeout=60).stdout
    tool.stop()
    record = summary(tool)
    total, replies = record["total"], record["total"]["replies"]
    assert total["fragments_held"] == 12, total
    assert total["frames_seen"] == (total["replies_sent"] + total["ignored"]
                                    + total["fragments_held"])
    assert total["replies_sent"] == sum(replies.values())
    lines = tool.output.splitlines()
    at = lines.index(f"--- {HOST_IF} arp_icmp_vlan0 statistics ---")
    assert re.fullmatch(
        re.escape(f"{total['frames_seen']} frames seen, {total['replies_sent']} replies sent "
                  f"({replies['arp']} arp, {replies['icmp echo']} icmp echo, "
                  f"{replies['ndp']} ndp, {replies['icmp6 echo']} icmp6 echo), "
                  f"{total['ignored']} ignored, {total['fragments_held']} fragments held")
        + r", time \d+\.\ds", lines[at + 1]), lines[at:]
    assert record["fragmented_requests"] == {"reassembled": 6, "dropped": 0, "incomplete": 0}
    assert lines[at + 2] == ("fragmented requests: 6 reassembled, 0 dropped (overlapping, "
                             "oversized or timed out), 0 incomplete"), lines[at:]
    written = record["recording"]["frames_written"]
    assert lines[at + 3] == f"recording: {written} frames written to {pcap}", lines[at:]


def test_pcap_records_are_in_time_order(lab, tmp_path):
    # A flood makes requests queue while a reply is built: the file must
    # still read in the order frames crossed the wire.
    pcap = tmp_path / "order.pcap"
    tool = lab.start_tool("-q", "-4", "-w", str(pcap), summary=True)
    lab.in_guest("ping", "-f", "-c", "2000", "-s", "3000", TOOL_IP, check=False, timeout=60)
    lab.in_guest("ping", "-f", "-c", "2000", TOOL_IP, check=False, timeout=60)
    tool.stop()
    stamps = [float(packet.time) for packet in PcapReader(str(pcap))]
    record = summary(tool)
    recorded, total = record["recording"]["frames_written"], record["total"]
    # Fragments of replies count too.
    assert len(stamps) == recorded >= total["frames_seen"] + total["replies_sent"] - 1
    backwards = [(a, b) for a, b in zip(stamps, stamps[1:]) if b < a]
    assert not backwards, backwards[:5]
