# SPDX-License-Identifier: GPL-2.0-only
"""--ra and --dhcp --probe against the real Linux stack, in namespaces each
test creates: the kernel's SLAAC takes its address from the tagged Router
Advertisement (vlan 0; not vlan 5, which it ignores); behind the nftables
rule that drops VLAN-0 frames it keeps soliciting and is judged "drops";
a DHCP client's lease makes the guest known to the probe, so that both
directions are judged with nothing typed in the guest. (The five DHCP
clients: test_netns_dhcp.py.)"""

import json
import time

import pytest

from netlab import GUEST_IF, tagged_lines

pytestmark = pytest.mark.lab("ip", "ping", "nft", "tcpdump", ipv6=True)

PREFIX_ADDRESS = "2001:db8::2/64"


def slaac_addresses(lab):
    shown = lab.in_guest("ip", "-6", "-o", "addr", "show", "dev", GUEST_IF, "scope",
                         "global").stdout
    return [word.split("/")[0] for word in shown.split() if word.startswith("2001:db8:")]


def advertise(lab, tmp_path, *options):
    """The tool with --ra --until-verdict while the guest's link comes up
    (its Router Solicitations begin); (status, seconds, output, JSON)."""
    summary = tmp_path / "summary.json"
    lab.in_guest("ip", "link", "set", GUEST_IF, "down")
    tool = lab.start_tool("-6", "--ip", PREFIX_ADDRESS, "--ra", "--until-verdict", "--timeout",
                          "30", "--json", str(summary), "-q", *options)
    started = time.monotonic()
    lab.in_guest("ip", "link", "set", GUEST_IF, "up")
    status = tool.wait(timeout=40)
    return status, time.monotonic() - started, tool.output, json.loads(summary.read_text())


def test_the_kernel_takes_its_address_from_the_tagged_advertisement(lab, tmp_path):
    sniffer = lab.start_capture("icmp6")
    status, took, output, summary = advertise(lab, tmp_path)
    time.sleep(0.3)
    sniffer.stop()
    assert status == 0, output
    assert took < 15, output
    [client] = summary["ra"]
    assert client["verdict"] == "accepts", output
    assert client["address"] in slaac_addresses(lab), output
    assert "accepts Router Advertisements tagged vlan 0, p 0" in output
    assert any("router advertisement" in line for line in tagged_lines(sniffer.output)), \
        sniffer.output


def test_an_advertisement_tagged_vlan_5_is_ignored_and_the_guest_keeps_soliciting(
        lab, tmp_path):
    status, _, output, summary = advertise(lab, tmp_path, "--vlan", "5")
    assert status == 3, output
    assert slaac_addresses(lab) == []
    [client] = summary["ra"]
    assert client["verdict"] == "drops"
    assert "Router Solicitations in" in output and "it drops Router Advertisements tagged " \
        "vlan 5, p 0 (compare with --untagged)" in output


def test_behind_a_vlan0_filter_it_keeps_soliciting_and_drops(lab, tmp_path):
    lab.drop_vlan0_at_the_guest()
    status, _, output, summary = advertise(lab, tmp_path)
    assert status == 3, output
    assert slaac_addresses(lab) == []
    assert [c["verdict"] for c in summary["ra"]] == ["drops"]


UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
    bound|renew) ip addr add "$ip/$mask" dev "$interface";;
esac
"""


@pytest.mark.lab("ip", "ping", "nft", "busybox")
def test_dhcp_and_probe_judge_both_directions_of_a_guest_that_only_asked_for_a_lease(
        lab, tmp_path):
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    lab.in_guest("ip", "addr", "flush", "dev", GUEST_IF)  # nothing typed in: DHCP gives it
    summary = tmp_path / "summary.json"
    tool = lab.start_tool("-4", "--ip", "198.51.100.2/24", "--dhcp", "--probe",
                          "--until-verdict", "--timeout", "30", "--json", str(summary), "-q")
    lease = lab.in_guest("busybox", "udhcpc", "-i", GUEST_IF, "-f", "-q", "-n", "-t", "4",
                         "-T", "2", "-s", str(script), timeout=30)
    status = tool.wait(timeout=40)
    assert status == 0, tool.output + lease.stdout + lease.stderr
    record = json.loads(summary.read_text())
    [client] = record["dhcp"]["clients"]
    [probe] = record["probes"]
    assert client["verdict"] == "accepts" and probe["verdict"] == "answers", tool.output
    assert probe["address"] == client["address"] and probe["learnt"], record
    assert f"({client['address']}) answers ARP requests and pings tagged vlan 0, p 0" in \
        tool.output
    assert record["dhcp"]["leases"][client["mac"]] == {"address": client["address"],
                                                       "state": "bound"}
    shown = lab.in_guest("ip", "-4", "-o", "addr", "show", "dev", GUEST_IF).stdout
    assert f"inet {client['address']}/24" in shown, shown  # the lease the tool judged
