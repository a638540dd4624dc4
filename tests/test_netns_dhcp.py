# SPDX-License-Identifier: GPL-2.0-only
"""--dhcp against five real DHCP clients (tests/dhcp_clients.py: ISC
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

import pytest

import dhcp_clients
from conftest import need
from dhcp_clients import against_the_tool, drop_vlan0_at_ingress, drop_vlan0_on_the_wire

pytestmark = pytest.mark.lab("ip", "nft", "unshare")

FRAMINGS = {"vlan0": ((), "tagged vlan 0, p 0"), "untagged": (("--untagged",), "untagged"),
            "vlan5": (("--vlan", "5"), "tagged vlan 5, p 0")}
# The clients' retry pace is theirs, but dhclient's (4-8 s, then 8-15 s
# between DISCOVERs here) is shortened by its private config to 1-2 s
# where it must send three.
FAST = {"dhclient": {"fast": True}}


# Every client with every framing but dhclient with vlan 5 (the test after).
BINDS = [(client, framing) for client in dhcp_clients.CLIENTS for framing in FRAMINGS
         if (client, framing) != ("dhclient", "vlan5")]


def need_client(client):
    lacking = dhcp_clients.missing(client)
    need(lacking is None, f"{dhcp_clients.NAMES[client]}: {lacking}")


def assert_accepts(run, tagged):
    address = run.lease.address
    assert address and address.startswith("198.51.100.") and run.status == 0, run.said()
    bare = address.split("/")[0]
    assert address.endswith("/24") and bare != "198.51.100.2", run.said()
    assert (f"({bare}) accepts DHCP offers {tagged}: " in run.output
            and f"after the answer it requested {bare}" in run.output
            and run.verdicts() == ["accepts"] and run.summary["exit_status"] == 0
            and run.summary["dhcp"]["leases"][run.mac] == {"address": bare, "state": "bound"}
            ), run.said()


def assert_drops(run, tagged, took=30):
    assert (run.lease.address is None and run.status == 3 and run.verdicts() == ["drops"]
            and "sent 3 DHCPDISCOVERs in " in run.output
            and f"and every one was answered: it drops DHCP offers {tagged}" in run.output
            and run.lease.seconds < took and run.summary["exit_status"] == 3), run.said()


@pytest.mark.parametrize("client, framing", BINDS, ids=[f"{c}-{f}" for c, f in BINDS])
def test_each_client_binds_the_offered_address_and_accepts(lab, client, framing):
    need_client(client)
    options, tagged = FRAMINGS[framing]
    run = against_the_tool(lab, client, *options, timeout=20)
    assert_accepts(run, tagged)
    assert run.lease.seconds < (12 if client == "dhcpcd" else 5), run.said()


def test_dhclient_refuses_offers_tagged_vlan_5(lab):
    # dhclient's LPF reader drops a frame whose auxdata tci has a VID
    # (tci & 0xfff != 0): its DISCOVERs go on, each answered, so the tool
    # judges it "drops" (status 3), not "no verdict" (4).
    need_client("dhclient")
    run = against_the_tool(lab, "dhclient", "--vlan", "5", fast=True)
    assert_drops(run, "tagged vlan 5, p 0", took=10)


@pytest.mark.parametrize("client", ["udhcpc", "networkd", "networkmanager"])
def test_behind_the_ingress_rule_an_ip_socket_client_never_binds_and_drops(lab, client):
    need_client(client)
    dropped = drop_vlan0_at_ingress(lab)
    run = against_the_tool(lab, client, **FAST.get(client, {}))
    assert_drops(run, "tagged vlan 0, p 0 (compare with --untagged)", took=20)
    assert dropped() >= 3, run.said()  # the three OFFERs reached the guest and went no further


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


@pytest.mark.parametrize("client", ["dhclient", "udhcpc", "dhcpcd"])
def test_behind_a_filter_before_its_interface_a_client_never_binds_and_drops(lab, client):
    need_client(client)
    interface, dropped = drop_vlan0_on_the_wire(lab)
    run = against_the_tool(lab, client, interface=interface, **FAST.get(client, {}))
    assert_drops(run, "tagged vlan 0, p 0 (compare with --untagged)", took=20)
    assert dropped() >= 3, run.said()


def test_behind_that_filter_untagged_offers_bind(lab):
    # The control: the filter drops tagged frames alone, as the verdict suggests.
    need_client("udhcpc")
    interface, dropped = drop_vlan0_on_the_wire(lab)
    run = against_the_tool(lab, "udhcpc", "--untagged", interface=interface, timeout=20)
    assert_accepts(run, "untagged")
    assert dropped() == 0, run.said()
