# SPDX-License-Identifier: GPL-2.0-only
"""The guest's verdict against the real Linux stack, in namespaces each test
creates: a plain guest namespace accepts the tagged replies; one whose
ingress drops VLAN-0-tagged frames (an nftables netdev rule on its veth, as
a NIC's VLAN filter would) drops them. --until-verdict ends the run with the
status that says which, and --json keeps the evidence."""

import json
import time

import pytest

from netlab import GUEST6, GUEST_IF, GUEST_IP, TOOL6, TOOL_IP, ping

pytestmark = pytest.mark.lab("ip", "ping", "nft", guest6=True)

TARGET = {4: TOOL_IP, 6: TOOL6}
RESOLVER = {4: "ARP replies", 6: "Neighbor Advertisements"}


def run_until_verdict(lab, tmp_path, family, *options):
    """The tool with --until-verdict --timeout 30 while the guest pings;
    (exit status, seconds it ran, its output, its JSON summary, ping)."""
    summary = tmp_path / "summary.json"
    tool = lab.start_tool("--until-verdict", "--timeout", "30", "--json", str(summary), "-q",
                          "-w", lab.recording("verdict"), f"-{family}", *options)
    started = time.monotonic()
    result = ping(lab, f"-{family}", TARGET[family])
    status = tool.wait(timeout=40)
    return status, time.monotonic() - started, tool.output, json.loads(summary.read_text()), result


@pytest.mark.parametrize("family", [4, 6])
def test_a_plain_guest_accepts_and_the_run_ends_with_status_0(lab, tmp_path, family):
    status, took, output, summary, result = run_until_verdict(lab, tmp_path, family)
    assert status == 0, output
    assert took < 10, output  # at the verdict, not at --timeout
    assert f" bytes from {TARGET[family]}" in result.stdout  # the guest did get a reply
    guest_ip = GUEST_IP if family == 4 else GUEST6
    line = f"({guest_ip}) accepts {RESOLVER[family]} tagged vlan 0, p 0: "
    assert output.count(line) == 2, output  # when it formed, and in the statistics
    [guest] = summary["guests"]
    assert (guest["verdict"], guest["family"], guest["addresses"]) == ("accepts", family,
                                                                         [guest_ip])
    events = [event["event"] for event in guest["evidence"]]
    assert events == ["asked", "sent"], guest["evidence"]
    assert guest["evidence"][0]["time"] <= guest["evidence"][1]["time"]
    assert summary["exit_status"] == 0


@pytest.mark.parametrize("family", [4, 6])
def test_a_guest_that_drops_vlan0_frames_drops_and_the_run_ends_with_status_3(
        lab, tmp_path, family):
    dropped = lab.drop_vlan0_at_the_guest()
    status, took, output, summary, result = run_until_verdict(lab, tmp_path, family)
    assert status == 3, output
    assert took < 10, output  # three asks a second apart, not --timeout
    assert result.returncode != 0 and " bytes from " not in result.stdout
    assert dropped() >= 3  # the guest's side did throw the tagged replies away
    assert f"and every {'request' if family == 4 else 'solicitation'} was answered: it " \
           f"drops {RESOLVER[family]} tagged vlan 0, p 0 (compare with --untagged)" in output
    [guest] = summary["guests"]
    assert guest["verdict"] == "drops"
    assert [event["event"] for event in guest["evidence"]] == ["asked"] * 3
    assert summary["exit_status"] == 3


def test_the_same_guest_accepts_untagged_replies(lab, tmp_path):
    # The control: the rule drops tagged frames only, as the verdict line suggests.
    lab.drop_vlan0_at_the_guest()
    status, _, output, summary, result = run_until_verdict(lab, tmp_path, 4, "--untagged")
    assert status == 0, output
    assert "accepts ARP replies untagged: " in output
    assert summary["guests"][0]["verdict"] == "accepts"


def test_no_verdict_before_the_timeout_is_status_4(lab, tmp_path):
    summary = tmp_path / "summary.json"
    tool = lab.start_tool("--until-verdict", "--timeout", "2", "--json", str(summary), "-4")
    # One answered ask and nothing more: arping -c 1 sends a single request.
    lab.in_guest("arping", "-c", "1", "-w", "1", "-I", GUEST_IF, TOOL_IP, check=False)
    assert tool.wait(timeout=10) == 4, tool.output
    assert "no verdict on ARP replies tagged vlan 0, p 0 yet: 1 answered ask for " \
           f"{TOOL_IP}" in tool.output
    assert json.loads(summary.read_text())["guests"][0]["verdict"] is None
    assert tool.output.strip().splitlines()[-1].startswith(
        "arp_icmp_vlan0: no verdict for "), tool.output  # the status said in one line


def test_nothing_heard_is_status_4_too_and_says_so(lab):
    tool = lab.start_tool("--until-verdict", "--timeout", "1", "-4")
    assert tool.wait(timeout=10) == 4, tool.output
    assert tool.output.strip().splitlines()[-1] == (
        "arp_icmp_vlan0: no verdict: no guest was heard (no ARP request or Neighbor "
        "Solicitation was answered)"), tool.output


def test_without_until_verdict_a_drop_still_ends_with_status_0(lab):
    lab.drop_vlan0_at_the_guest()
    tool = lab.start_tool("-4")
    ping(lab, "-4", TOOL_IP)
    assert tool.stop() == 0
    assert "it drops ARP replies tagged vlan 0, p 0" in tool.output
