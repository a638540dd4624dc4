# SPDX-License-Identifier: GPL-2.0-only
"""--dhcp6, --pppoe and --dot1x against the real clients, each run by hand
in the Lab's guest namespace (tests/lib/access_runners.py): ISC dhclient -6,
dhcpcd -6 and systemd-networkd (an address, a delegated prefix), RP-PPPoE's
pppoe -d, wpa_supplicant -D wired with EAP-MD5. Each binds, discovers or
authenticates from answers tagged vlan 0 (and p 6) and untagged, and the
tool says "accepts" (status 0); behind the nftables rule that drops VLAN 0
(tests/lib/netlab.py, drop_vlan0) each keeps asking, and the tool says
"drops" (status 3). RP-PPPoE at vlan 5 is reported as it behaves. Then the
guest's own framing as the tool reads it, and a guest on another interface
that attacks one of these clients' sessions, leases and budget."""

import ipaddress
import json
import os
import subprocess
import sys
import time

import pytest
from scapy.layers.dhcp6 import (DUID_LL, DHCP6_Release, DHCP6_Solicit, DHCP6OptIA_NA,
                                DHCP6OptIAAddress, DHCP6OptServerId)
from scapy.layers.l2 import Dot1Q, Ether

import access_runners
from access_runners import against_the_tool
from conftest import need
from frames import dhcp6_message, eapol, pppoe_discovery
from netlab import TOOL, run

pytestmark = pytest.mark.lab("ip", "nft", prefix="avzt-acc")

TAGGED = ("tagged vlan 0, p 6", ("--prio", "6"))
FRAMINGS = {"vlan0-p6": TAGGED, "untagged": ("untagged", ("--untagged",))}
# What each asks for, and the client's own options.
CASES = {"dhclient6": {"address": True, "prefix": True},
         "dhcpcd6": {"address": True, "prefix": True},
         "networkd6": {"address": True, "prefix": True},
         "networkmanager6": {"address": True, "prefix": False},
         "pppoe": {}, "wpa_supplicant": {}}
ANSWERS = {"dhcp6": "DHCPv6 Advertises", "pppoe": "PPPoE PADOs", "dot1x": "EAP-Requests"}
# What a drop is of: networkd and NetworkManager ask for Rapid Commit, so a Reply
# answers their Solicits.
DROPPED = {"dhclient6": "DHCPv6 Advertises", "dhcpcd6": "DHCPv6 Advertises",
           "networkd6": "DHCPv6 Replies", "networkmanager6": "DHCPv6 Replies",
           "pppoe": "PPPoE PADOs", "wpa_supplicant": "EAP-Requests"}


def need_client(client):
    missing = access_runners.missing(client)
    need(missing is None, missing or "")


def got(run):
    """What the client itself says it got."""
    result = run.result
    if run.service == "dhcp6":
        return result.address and (result.prefix or not CASES[run.client]["prefix"])
    if run.service == "pppoe":
        return result.session
    return result.authenticated


def assert_accepts(run, tagged):
    assert got(run) and run.status == 0 and run.verdicts() == ["accepts"], run.said()
    line = run.clients()[0]["line"]
    assert f"accepts {ANSWERS[run.service]}" in line and tagged in line, run.said()
    assert line.endswith("; its own frames: untagged"), run.said()
    assert run.summary["exit_status"] == 0, run.said()


@pytest.mark.parametrize("client", list(CASES))
@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_each_client_gets_what_it_asks_for_and_accepts(lab, client, framing):
    need_client(client)
    tagged, options = FRAMINGS[framing]
    run = against_the_tool(lab, client, *options, timeout=20, **CASES[client])
    assert_accepts(run, tagged)
    if run.service == "dhcp6":  # what the client took is what the tool handed out
        bound = {binding["value"] for binding in run.summary["dhcp6"]["bindings"]
                 if binding["bound"]}
        took = {run.result.address.split("/")[0]} | (
            {run.result.prefix} if CASES[client]["prefix"] else set())
        assert took <= bound, run.said()
        if CASES[client]["prefix"]:
            assert ipaddress.ip_network(run.result.prefix).subnet_of(
                ipaddress.ip_network("2001:db8:100::/40")), run.said()


@pytest.mark.parametrize("client", list(CASES))
def test_behind_the_vlan0_drop_rule_each_client_keeps_asking_and_drops(lab, client):
    need_client(client)
    dropped = lab.drop_vlan0_at_the_guest()
    run = against_the_tool(lab, client, tool_timeout=70, timeout=65, **CASES[client])
    assert not got(run) and run.status == 3 and run.verdicts() == ["drops"], run.said()
    line = run.clients()[0]["line"]
    assert f"drops {DROPPED[client]} tagged vlan 0, p 0 (compare with --untagged)" in line, \
        run.said()
    assert dropped() >= 3, run.said()


def test_rp_pppoe_takes_a_pado_tagged_vlan_5(lab):
    # RP-PPPoE reads a packet socket bound to ETH_P_PPP_DISC and never looks
    # at the tag the kernel moved into the packet's metadata (PACKET_AUXDATA's
    # tp_vlan_tci): it takes a PADO from any VLAN. The tool reports what it did.
    need_client("pppoe")
    run = against_the_tool(lab, "pppoe", "--vlan", "5", timeout=20)
    assert run.result.session and run.status == 0 and run.verdicts() == ["accepts"], run.said()
    assert "accepts PPPoE PADOs tagged vlan 5, p 0" in run.output, run.said()


@pytest.mark.parametrize("how", ["-w", "a pattern"])
def test_a_verdict_a_timer_settles_ends_the_run_whatever_the_loop_waits_on(lab, how):
    """pppoe -d sends no session frame: the run ends SESSION_GRACE (3 s)
    after the PADS, on the timer, also where the loop waits in epoll (with
    -w, or interfaces named by a pattern) rather than in a blocking receive.
    It waited for --timeout there until 1.7.0."""
    need_client("pppoe")
    options = ["-w", lab.recording("timer")] if how == "-w" else []
    started = time.monotonic()
    tool = lab.start_tool("--pppoe", "-q", "--until-verdict", "--timeout", "30", *options,
                          interface="veth-h*" if options == [] else "veth-host", summary=True)
    result = access_runners.pppoe(lab, timeout=20)
    status = tool.wait(timeout=40)
    assert result.session and status == 0, tool.output
    assert time.monotonic() - started < 10, tool.output


def test_a_cpe_gets_a_delegated_prefix_through_vlan_0_p_6(lab):
    # A CPE's-eye view: dhcpcd asks only for a prefix, as a router's WAN does.
    need_client("dhcpcd6")
    run = against_the_tool(lab, "dhcpcd6", "--prio", "6", address=False, prefix=True)
    assert run.result.prefix and run.status == 0, run.said()
    line = run.clients()[0]["line"]
    assert f"({run.result.prefix}) accepts DHCPv6 Advertises tagged vlan 0, p 6" in line, \
        run.said()
    assert line.endswith("its own frames: untagged"), run.said()


SENDER = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
for line in sys.stdin:
    sock.send(bytes.fromhex(line.strip()))
"""


def send_from_guest(lab, frames, interface="veth-guest"):
    subprocess.run(["ip", "netns", "exec", lab.guest, sys.executable, "-c", SENDER, interface],
                   input="".join(frame.hex() + "\n" for frame in frames), text=True, check=True,
                   timeout=60)


def test_the_guests_own_tags_are_read_through_the_kernels_metadata(lab):
    # A guest that tags its own frames: the kernel takes the tag off into
    # the packet's metadata before the tool's socket; the line still says it.
    lab.in_guest("ip", "link", "set", "veth-guest", "address", "52:54:00:12:34:56")
    tool = lab.start_tool("--ip", "2001:db8::2/64", "--dhcp6", "--dot1x", "--timeout", "4",
                          summary=True)
    solicit = Ether(dhcp6_message(DHCP6_Solicit(trid=1), DHCP6OptIA_NA(iaid=1)))
    tagged = bytes(Ether(src=solicit.src, dst=solicit.dst) / Dot1Q(vlan=0, prio=6) /
                   solicit.payload)
    send_from_guest(lab, [tagged, eapol(kind=1)])
    tool.wait(timeout=15)
    with open(tool.summary_path) as file:
        summary = json.load(file)
    framing, = summary["framing"]
    assert framing["line"] == "DHCPv6 tagged vlan 0, p 6; EAPOL untagged", tool.output
    assert "its own frames: DHCPv6 tagged vlan 0, p 6; EAPOL untagged" in tool.output


# -- a guest on another interface attacks

def test_a_guest_on_another_interface_cannot_end_take_or_starve_anothers(lab, tmp_path):
    need_client("pppoe")
    need_client("dhclient6")
    attacker = f"{lab.host}-x"
    run("ip", "netns", "add", attacker)
    try:
        run("ip", "link", "add", "vx", "netns", lab.host, "type", "veth", "peer", "name", "eth0",
            "netns", attacker)
        for namespace, interface in ((attacker, "eth0"), (lab.host, "vx")):
            run("ip", "netns", "exec", namespace, "ip", "link", "set", interface, "up")
        victim_mac = access_runners.dhcp_runners.mac_of(lab, "veth-guest")
        run("ip", "netns", "exec", attacker, "ip", "link", "set", "eth0", "address", victim_mac)
        path = os.path.join(lab.scratch, "attack.json")
        tool = lab.start(lab.host, sys.executable, TOOL, "--ip", "2001:db8::2/64", "--dhcp6",
                         "--pppoe", "-q", "--timeout", "40", "--json", path, "veth-host", "vx")
        tool.wait_for("Hit Ctrl-C")
        session = access_runners.pppoe(lab, timeout=15).session
        lease = access_runners.dhclient6(lab, timeout=15)
        assert session and lease.address, tool.output
        address = lease.address.split("/")[0]
        # In the victim's name (its MAC), from the other interface: a PADT of
        # its session, a Release of its address, then a flood of Solicits
        # and PADIs far past the budget.
        server = DHCP6OptServerId(duid=DUID_LL(lladdr="02:76:6c:61:6e:30"))
        forged = [pppoe_discovery(0xA7, dst="02:76:6c:61:6e:30", session=session,
                                  mac=victim_mac),
                  dhcp6_message(DHCP6_Release(trid=9), server, DHCP6OptIA_NA(
                      iaid=1, ianaopts=[DHCP6OptIAAddress(addr=address)]), mac=victim_mac)]
        flood = [dhcp6_message(DHCP6_Solicit(trid=i), DHCP6OptIA_NA(iaid=i), mac=victim_mac)
                 for i in range(300)] + [pppoe_discovery(0x09, (0x0101, b""), mac=victim_mac)
                                         for _ in range(300)]
        subprocess.run(["ip", "netns", "exec", attacker, sys.executable, "-c", SENDER, "eth0"],
                       input="".join(frame.hex() + "\n" for frame in forged + flood),
                       text=True, check=True, timeout=60)
        time.sleep(0.5)
        # The victim is still served, its session and lease stand.
        again = access_runners.pppoe(lab, timeout=15)
        renewed = access_runners.dhclient6(lab, timeout=15)
        assert again.session == session and renewed.address == lease.address, tool.output
        tool.stop()
        with open(path) as file:
            summary = json.load(file)
        sessions = {(s["interface"], s["session"]) for s in summary["pppoe"]["sessions"]}
        assert ("veth-host", session) in sessions, summary["pppoe"]
        bound = [b for b in summary["dhcp6"]["bindings"] if b["interface"] == "veth-host"]
        assert {"value": address, "bound": True} in [
            {"value": b["value"], "bound": b["bound"]} for b in bound], summary["dhcp6"]
        victim = [c for c in summary["dhcp6"]["clients"] if c["interface"] == "veth-host"]
        assert [c["verdict"] for c in victim] == ["accepts"], victim
        assert summary["dhcp6"]["over_budget"].get("vx", 0) > 200, summary["dhcp6"]
        assert "veth-host" not in summary["dhcp6"]["over_budget"], summary["dhcp6"]
        assert summary["pppoe"]["over_budget"].get("vx", 0) > 200, summary["pppoe"]
    finally:
        run("ip", "netns", "del", attacker, check=False)
