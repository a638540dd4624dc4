# SPDX-License-Identifier: GPL-2.0-only
"""IPv6 against the real Linux stack in namespaces each test creates: the
guest resolves the tool by NDP, pings it, and its own DAD still succeeds."""

import re
import time

import pytest

from arp_icmp_vlan0 import DEFAULT_MAC, tool_link_local
from netlab import GUEST6, GUEST_IF, TOOL6, assert_whole_replies, ping, summary, tagged_lines

pytestmark = pytest.mark.lab("ip", "ping", "tcpdump", ipv6=True)


def add_guest_address(lab, *flags):
    lab.in_guest("ip", "-6", "addr", "add", f"{GUEST6}/64", "dev", GUEST_IF, *flags)


def test_ping6_resolves_by_ndp_and_gets_tagged_replies(lab):
    add_guest_address(lab, "nodad")
    capture = lab.start_capture("ip6")
    tool = lab.start_tool(summary=True)
    result = ping(lab, "-6", TOOL6)
    neighbour = lab.in_guest("ip", "-6", "neigh", "show", TOOL6).stdout
    tool.stop()
    capture.stop()
    assert_whole_replies(result, 3, address=TOOL6)
    assert re.search(rf"lladdr {DEFAULT_MAC} (REACHABLE|STALE|DELAY)", neighbour), neighbour
    tagged = tagged_lines(capture.output)
    advertisements = [line for line in tagged if f"neighbor advertisement, tgt is {TOOL6}" in line]
    echo_replies = [line for line in tagged if f"{TOOL6} > {GUEST6}: ICMP6, echo reply" in line]
    solicitations = [line for line in capture.output.splitlines()
                     if f"neighbor solicitation, who has {TOOL6}" in line]
    assert len(advertisements) == len(solicitations) >= 1
    assert len(echo_replies) == 3
    assert all("ethertype 802.1Q (0x8100)" in line and "vlan 0, p 0," in line
               for line in advertisements + echo_replies)
    counts = summary(tool)["total"]["replies"]
    assert (counts["ndp"], counts["icmp6 echo"]) == (len(advertisements), 3)


def test_guest_dad_completes_without_dadfailed(lab):
    tool = lab.start_tool(summary=True)
    add_guest_address(lab)  # with DAD: the guest solicits its own address
    deadline = time.monotonic() + 10
    while "tentative" in (state := lab.in_guest("ip", "-6", "addr", "show", "dev",
                                                GUEST_IF).stdout):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    tool.stop()
    assert "dadfailed" not in state
    assert GUEST6 in state
    total = summary(tool)["total"]
    assert total["replies"]["ndp"] == 0
    assert total["ignored"] > 0  # DAD reached it


@pytest.mark.parametrize("asked", [False, True], ids=["default", "answer-multicast-ping"])
def test_multicast_ping_answered_only_when_asked(lab, asked):
    add_guest_address(lab, "nodad")
    tool = lab.start_tool(*(["--answer-multicast-ping"] if asked else []), summary=True)
    result = ping(lab, "-6", f"ff02::1%{GUEST_IF}", count=2)
    tool.stop()
    from_tool = f"from {tool_link_local(DEFAULT_MAC)}%{GUEST_IF}"
    assert (from_tool in result.stdout) is asked, result.stdout
    assert summary(tool)["total"]["replies"]["icmp6 echo"] == (2 if asked else 0)


def test_family_options(lab):
    add_guest_address(lab, "nodad")
    tool = lab.start_tool("-6", summary=True)
    assert ping(lab, "-6", TOOL6, count=1).returncode == 0
    tool.stop()
    assert "arp" not in summary(tool)["total"]["replies"]
    tool = lab.start_tool("-4", summary=True)  # the guest still knows the MAC: echo alone
    assert ping(lab, "-6", TOOL6, count=1).returncode != 0
    tool.stop()
    assert "icmp6 echo" not in summary(tool)["total"]["replies"]


@pytest.mark.parametrize("owner, duplicate", [
    ("kernel", True), (["--ip", TOOL6], True), (["--ip", "2001:db8::/64"], False),
    ([], False)], ids=["kernel", "single-ip", "prefix", "any-address"])
def test_an_address_given_singly_is_defended_against_dad(lab, owner, duplicate):
    # The guest takes the tool's own address, with DAD: the owner must answer
    # the solicitation from :: with an advertisement to all nodes (RFC 4861
    # 7.2.4), and the guest's address then ends "dadfailed".
    if owner == "kernel":
        lab.in_host("ip", "-6", "addr", "add", f"{TOOL6}/64", "dev", "veth-host", "nodad")
    else:
        tool = lab.start_tool(*owner, summary=True)
    lab.in_guest("ip", "-6", "addr", "add", f"{TOOL6}/64", "dev", GUEST_IF)
    deadline = time.monotonic() + 10
    while "tentative" in (state := lab.in_guest("ip", "-6", "addr", "show", "dev",
                                                GUEST_IF).stdout) and "dadfailed" not in state:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert ("dadfailed" in state) is duplicate, state
    if owner != "kernel":
        tool.stop()
        assert summary(tool)["total"]["replies"]["ndp"] == (1 if duplicate else 0)
