# SPDX-License-Identifier: GPL-2.0-only
"""--probe against the real Linux stack, in namespaces each test creates: a
guest that only configured its address and sends nothing answers the
tagged ARP requests, Neighbor Solicitations and pings (status 0); the same
guest behind the nftables rule that drops VLAN-0-tagged frames answers only
the untagged control (status 3); an address nobody holds gets no answer
(status 4, never 3). tcpdump on the guest's side confirms the tags."""

import json
import time

import pytest

from netlab import DEFAULT_MAC, GUEST6, GUEST_IP, TOOL_IP, ping, tagged_lines

pytestmark = pytest.mark.lab("ip", "ping", "nft", "tcpdump", guest6=True)

ADDRESS = {4: GUEST_IP, 6: GUEST6}
ASKED = {4: "ARP requests", 6: "Neighbor Solicitations"}


def probe(lab, tmp_path, *options, capture=True):
    """The tool probing with --until-verdict --timeout 30 -q; (status,
    seconds, output, JSON summary, what tcpdump saw on the guest's end)."""
    summary = tmp_path / "summary.json"
    sniffer = lab.start_capture() if capture else None
    started = time.monotonic()
    if "-w" not in options:
        options += ("-w", lab.recording("probe"))
    tool = lab.start_tool("--until-verdict", "--timeout", "30", "--json", str(summary), "-q",
                          *options)
    status = tool.wait(timeout=40)
    took = time.monotonic() - started
    seen = ""
    if sniffer:
        time.sleep(0.2)
        sniffer.stop()
        seen = sniffer.output
    return status, took, tool.output, json.loads(summary.read_text()), seen


@pytest.mark.parametrize("family", [4, 6])
def test_a_silent_guest_answers_tagged_requests_and_pings(lab, tmp_path, family):
    ip = ["--ip", "198.51.100.2/24"] if family == 4 else []
    status, took, output, summary, seen = probe(lab, tmp_path, *ip, f"-{family}", "--probe",
                                                ADDRESS[family])
    assert status == 0, output
    assert took < 10, output
    line = (f"({ADDRESS[family]}) answers {ASKED[family]} and pings tagged vlan 0, p 0")
    assert output.count(line) == 2, output  # when it formed, and in the statistics
    assert summary["guests"] == []  # the guest asked nothing: the probe alone judged it
    [record] = summary["probes"]
    assert (record["verdict"], record["family"], record["address"]) == (
        "answers", family, ADDRESS[family])
    events = [(e["event"], e.get("framing") or e.get("tagged")) for e in record["evidence"]]
    assert events == [("probe sent", "vlan 0, p 0"), ("probe answered", True),
                      ("probe sent", "vlan 0, p 0"), ("probe answered", True)], events
    total = summary["total"]
    assert (total["probes_sent"], total["probe_answers"]) == (2, 2), total
    request = "Request who-has 198.51.100.1 tell 198.51.100.2" if family == 4 else \
        f"who has {GUEST6}"
    assert any(request in line for line in tagged_lines(seen)), seen
    assert any("echo request" in line for line in tagged_lines(seen)), seen


def test_without_an_ipv4_address_the_probe_is_arp_alone(lab, tmp_path):
    status, _, output, summary, seen = probe(lab, tmp_path, "-4", "--probe", GUEST_IP)
    assert status == 0, output
    assert "(no pings: the tool has no IPv4 address" in output
    assert any("who-has 198.51.100.1 tell 0.0.0.0" in line for line in tagged_lines(seen)), seen
    assert summary["total"]["probes_sent"] == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_guest_that_drops_vlan0_frames_answers_only_the_untagged_control(
        lab, tmp_path, family):
    lab.drop_vlan0_at_the_guest()
    ip = ["--ip", "198.51.100.2/24"] if family == 4 else []
    status, took, output, summary, seen = probe(lab, tmp_path, *ip, f"-{family}", "--probe",
                                                ADDRESS[family])
    assert status == 3, output
    assert took < 15, output
    assert (f"({ADDRESS[family]}) does not answer {ASKED[family]} tagged vlan 0, p 0 but "
            "answers untagged ones: it drops frames tagged vlan 0, p 0") in output
    [record] = summary["probes"]
    assert record["verdict"] == "drops"
    sent = [e["framing"] for e in record["evidence"] if e["event"] == "probe sent"]
    assert sent == ["vlan 0, p 0"] * 3 + ["untagged"], record["evidence"]
    answered = [e["tagged"] for e in record["evidence"] if e["event"] == "probe answered"]
    assert answered == [False]
    assert len(tagged_lines(seen)) == 3, seen  # the three tagged ones did reach the guest's end


@pytest.mark.parametrize("family", [4, 6])
def test_an_address_nobody_holds_is_no_answer_never_a_drop(lab, tmp_path, family):
    nobody = "198.51.100.77" if family == 4 else "2001:db8::77"
    status, took, output, summary, _ = probe(lab, tmp_path, f"-{family}", "--probe", nobody,
                                             capture=False)
    assert status == 4, output
    assert took < 15, output  # the probe's end, not --timeout
    assert f"nobody answered at {nobody}:" in output
    assert f"no probe verdict for {nobody} on " in output
    [record] = summary["probes"]
    assert record["verdict"] == "no answer" and record["mac"] is None


def test_probe_without_addresses_learns_the_guests_from_its_own_asks(lab, tmp_path):
    summary = tmp_path / "summary.json"
    tool = lab.start_tool("--until-verdict", "--timeout", "30", "--json", str(summary), "-q",
                          "-4", "--probe")
    result = ping(lab, TOOL_IP)
    status = tool.wait(timeout=40)
    assert status == 0, tool.output
    assert " bytes from " in result.stdout
    record = json.loads(summary.read_text())
    assert [g["verdict"] for g in record["guests"]] == ["accepts"]
    [learnt] = record["probes"]
    assert (learnt["address"], learnt["learnt"], learnt["verdict"]) == (GUEST_IP, True,
                                                                         "answers")
    # Pinged from the address the guest asked for, which it deems on its link.
    assert f"({GUEST_IP}) answers ARP requests and pings tagged vlan 0, p 0" in tool.output


def test_the_recording_has_the_probes_and_their_answers(lab, tmp_path):
    from scapy.utils import rdpcap
    pcap = tmp_path / "probe.pcap"
    status, _, output, summary, _ = probe(lab, tmp_path, "-4", "--ip", "198.51.100.2/24",
                                          "--probe", GUEST_IP, "-w", str(pcap), capture=False)
    assert status == 0, output
    frames = [frame for frame in rdpcap(str(pcap)) if "ARP" in frame or "IP" in frame]
    # The tagged ARP request, its answer, the tagged ping, its answer.
    assert [(frame.src == DEFAULT_MAC, frame.haslayer("Dot1Q")) for frame in frames] == [
        (True, True), (False, False), (True, True), (False, False)], frames
    assert summary["recording"]["frames_written"] >= 4
