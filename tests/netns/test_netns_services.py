# SPDX-License-Identifier: GPL-2.0-only
"""--ra and --dhcp against the real Linux stack and real clients, in
namespaces each test creates.

The kernel's SLAAC takes its address from the tagged Router Advertisement
(vlan 0; not vlan 5, which it ignores); behind the nftables rule that drops
VLAN-0 frames it keeps soliciting and is judged "drops"; a DHCP client's
lease makes the guest known to the probe, so that both directions are
judged with nothing typed in the guest.

Then --dhcp against five real DHCP clients (tests/lib/dhcp_runners.py: ISC
dhclient, dhcpcd, busybox udhcpc, systemd-networkd, NetworkManager's
internal client), each run by hand in the guest namespace with private
files. Each binds the offered address, tagged vlan 0, untagged or tagged
vlan 5, and is judged "accepts" (status 0); but dhclient, which reads the
tag (PACKET_AUXDATA) and throws away a frame with a nonzero VID, refuses
vlan 5: the tool says it drops them (status 3). Behind the nftables ingress
rule that drops VLAN-0-tagged frames, the clients with an ETH_P_IP packet
socket (udhcpc, networkd, NetworkManager) never bind and are judged
"drops"; dhclient and dhcpcd, whose ETH_P_ALL packet socket gets its copy
of a frame before that hook runs, bind regardless. With the rule before
their interface (drop_vlan0_on_the_wire: as a NIC's VLAN filter) they
drop too, and untagged offers still bind there.
"""

import json
import time

import pytest

import dhcp_runners
from conftest import need
from dhcp_runners import against_the_tool, drop_vlan0_at_ingress, drop_vlan0_on_the_wire
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
                          "30", "--json", str(summary), "-q", "-w", lab.recording("ra"),
                          *options)
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
                          "--until-verdict", "--timeout", "30", "--json", str(summary), "-q",
                          "-w", lab.recording("dhcp-probe"))
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
    assert record["dhcp"]["leases"] == [{"interface": client["interface"], "mac": client["mac"],
                                         "address": client["address"], "state": "bound"}]
    shown = lab.in_guest("ip", "-4", "-o", "addr", "show", "dev", GUEST_IF).stdout
    assert f"inet {client['address']}/24" in shown, shown  # the lease the tool judged


# -- five DHCP clients

# The five DHCP clients: each runs by hand under unshare --mount.
BY_HAND = pytest.mark.lab("ip", "nft", "unshare")

FRAMINGS = {"vlan0": ((), "tagged vlan 0, p 0"), "untagged": (("--untagged",), "untagged"),
            "vlan5": (("--vlan", "5"), "tagged vlan 5, p 0")}
# The clients' retry pace is theirs, but dhclient's (4-8 s, then 8-15 s
# between DISCOVERs here) is shortened by its private config to 1-2 s
# where it must send three.
FAST = {"dhclient": {"fast": True}}


# Every client with every framing but dhclient with vlan 5 (the test after).
BINDS = [(client, framing) for client in dhcp_runners.CLIENTS for framing in FRAMINGS
         if (client, framing) != ("dhclient", "vlan5")]


def need_client(client):
    lacking = dhcp_runners.missing(client)
    need(lacking is None, f"{dhcp_runners.NAMES[client]}: {lacking}")


def assert_accepts(run, tagged):
    address = run.lease.address
    assert address and address.startswith("198.51.100.") and run.status == 0, run.said()
    bare = address.split("/")[0]
    assert address.endswith("/24") and bare != "198.51.100.2", run.said()
    assert (f"({bare}) accepts DHCP offers {tagged}: " in run.output
            and f"after the answer it requested {bare}" in run.output
            and run.verdicts() == ["accepts"] and run.summary["exit_status"] == 0
            and {"interface": run.summary["dhcp"]["clients"][0]["interface"], "mac": run.mac,
                 "address": bare, "state": "bound"} in run.summary["dhcp"]["leases"]
            ), run.said()


def assert_drops(run, tagged, took=30):
    assert (run.lease.address is None and run.status == 3 and run.verdicts() == ["drops"]
            and "sent 3 DHCPDISCOVERs in " in run.output
            and f"and every one was answered: it drops DHCP offers {tagged}" in run.output
            and run.lease.seconds < took and run.summary["exit_status"] == 3), run.said()


@BY_HAND
@pytest.mark.parametrize("client, framing", BINDS, ids=[f"{c}-{f}" for c, f in BINDS])
def test_each_client_binds_the_offered_address_and_accepts(lab, client, framing):
    need_client(client)
    options, tagged = FRAMINGS[framing]
    run = against_the_tool(lab, client, *options, timeout=20)
    assert_accepts(run, tagged)
    assert run.lease.seconds < (12 if client == "dhcpcd" else 5), run.said()


@BY_HAND
def test_dhclient_refuses_offers_tagged_vlan_5(lab):
    # dhclient's LPF reader drops a frame whose auxdata tci has a VID
    # (tci & 0xfff != 0): its DISCOVERs go on, each answered, so the tool
    # judges it "drops" (status 3), not "no verdict" (4).
    need_client("dhclient")
    run = against_the_tool(lab, "dhclient", "--vlan", "5", fast=True)
    assert_drops(run, "tagged vlan 5, p 0", took=10)


@BY_HAND
@pytest.mark.parametrize("client", ["udhcpc", "networkd", "networkmanager"])
def test_behind_the_ingress_rule_an_ip_socket_client_never_binds_and_drops(lab, client):
    need_client(client)
    dropped = drop_vlan0_at_ingress(lab)
    run = against_the_tool(lab, client, **FAST.get(client, {}))
    assert_drops(run, "tagged vlan 0, p 0 (compare with --untagged)", took=20)
    assert dropped() >= 3, run.said()  # the three OFFERs reached the guest and went no further


@BY_HAND
@pytest.mark.parametrize("client", ["dhclient", "dhcpcd"])
def test_a_packet_socket_client_binds_through_the_ingress_rule(lab, client):
    # Not a flaw of the tool: an ETH_P_ALL packet socket gets its copy of a
    # frame before the netdev ingress hook drops it. So this rule hides
    # nothing from these two; a NIC's filter does (the test below).
    need_client(client)
    dropped = drop_vlan0_at_ingress(lab)
    run = against_the_tool(lab, client, timeout=20)
    assert_accepts(run, "tagged vlan 0, p 0")
    assert dropped() >= 2, run.said()  # the OFFER and the ACK, thrown away after the tap


@BY_HAND
@pytest.mark.parametrize("client", ["dhclient", "udhcpc", "dhcpcd"])
def test_behind_a_filter_before_its_interface_a_client_never_binds_and_drops(lab, client):
    need_client(client)
    interface, dropped = drop_vlan0_on_the_wire(lab)
    run = against_the_tool(lab, client, interface=interface, **FAST.get(client, {}))
    assert_drops(run, "tagged vlan 0, p 0 (compare with --untagged)", took=20)
    assert dropped() >= 3, run.said()


@BY_HAND
def test_behind_that_filter_untagged_offers_bind(lab):
    # The control: the filter drops tagged frames alone, as the verdict suggests.
    need_client("udhcpc")
    interface, dropped = drop_vlan0_on_the_wire(lab)
    run = against_the_tool(lab, "udhcpc", "--untagged", interface=interface, timeout=20)
    assert_accepts(run, "untagged")
    assert dropped() == 0, run.said()
