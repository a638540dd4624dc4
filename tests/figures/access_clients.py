#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which access clients take the tool's tagged answers, as a router's or
CPE's WAN port meets them: DHCPv6 (an address and a delegated prefix),
PPPoE discovery and 802.1X, against --dhcp6, --pppoe and --dot1x tagged
vlan 0, vlan 0 p 6, vlan 5, untagged, and behind two filters that drop
VLAN-0-tagged frames.

USAGE: sudo python3 tests/figures/access_clients.py [--clients dhclient6,pppoe,...]
                                                    [--cases vlan0,vlan0p6,...]
                                                    [--timeout 40] [--json FILE]

Each run makes a Lab (tests/lib/netlab.py: a veth pair between a host and a
guest namespace, documentation addresses, deleted on every exit path), runs
the tool on the host end (--ip 2001:db8::2/64 --dhcp6 --delegate
2001:db8:100::/40; --pppoe; or --dot1x, with -q --until-verdict --timeout
SECONDS --json) and one client in the guest namespace, by hand, with private
files (tests/lib/access_runners.py says how for each): ISC dhclient -6 -N
-P, dhcpcd -6 (ia_na and ia_pd), systemd-networkd (DHCP=ipv6, a prefix
hint, a downstream interface), NetworkManager's internal DHCPv6 client (an
address: its initrd mode runs no shared downstream connection, which is what
asks for a prefix), RP-PPPoE's pppoe -d and wpa_supplicant -D wired with
EAP-MD5.

The cases:

  vlan0     the tool's default tag, vlan 0, p 0
  vlan0p6   --prio 6: what ISPs that want priority 6 on the access link send
  vlan5     --vlan 5: a VLAN the client was not configured for
  untagged  --untagged (the baseline)
  nft       vlan 0, the guest's interface behind the nftables netdev ingress
            rule 'vlan id 0 drop'; a client on an ETH_P_ALL packet socket
            gets its copy before it (none of these: dhclient -6, dhcpcd -6
            and networkd use UDP sockets; pppoe and wpa_supplicant packet
            sockets of their own protocol, which the rule precedes)
  wire      vlan 0, the same rule on the veth before the client's interface
            (a second veth pair): as a NIC's VLAN filter, nothing sees the frame

For each client and case, the client's own truth (what it says it got, and
how many seconds after its start) beside the tool's verdict and exit status
(0 accepts, 3 drops, 4 no verdict): "address and prefix 0.3 s: accepts
(0)", "nothing: drops (3)". A client missing here is listed as not run,
with why. Takes about six minutes; not part of the pytest run.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import access_runners  # noqa: E402
import dhcp_runners  # noqa: E402
from netlab import GUEST_IF, Lab, clients_parser, clients_table, require  # noqa: E402

CLIENTS = ("dhclient6", "dhcpcd6", "networkd6", "networkmanager6", "pppoe", "wpa_supplicant")
# What each DHCPv6 client is asked for: what a CPE asks its ISP for.
ASKS = {"dhclient6": {"address": True, "prefix": True},
        "dhcpcd6": {"address": True, "prefix": True},
        "networkd6": {"address": True, "prefix": True},
        "networkmanager6": {"address": True, "prefix": False}}  # its initrd mode: no PD
# case -> (the column's title, the tool's framing options, the guest's filter)
CASES = {"vlan0": ("vlan 0", (), None), "vlan0p6": ("vlan 0, p 6", ("--prio", "6"), None),
         "vlan5": ("vlan 5", ("--vlan", "5"), None),
         "untagged": ("untagged", ("--untagged",), None),
         "nft": ("vlan 0, nft ingress drop", (), "ingress"),
         "wire": ("vlan 0, dropped before the NIC", (), "wire")}
PACKAGES = {"ip": "iproute2", "nft": "nftables"}


def truth(run):
    """What the client says it got, as the table words it; "" for nothing."""
    result = run.result
    if run.service == "dhcp6":
        got = [what for what, value in (("address", result.address), ("prefix", result.prefix))
               if value]
        return " and ".join(got)
    if run.service == "pppoe":
        return "a session" if result.session else ""
    return "EAP success" if result.authenticated else ""


def one_run(client, case, timeout):
    """One client, one case, in a Lab of its own: the result's dict."""
    _, options, hiding = CASES[case]
    with Lab(prefix="avza") as lab:
        interface = GUEST_IF
        if hiding == "ingress":
            dhcp_runners.drop_vlan0_at_ingress(lab)
        elif hiding == "wire":
            interface, _ = dhcp_runners.drop_vlan0_on_the_wire(lab)
        run = access_runners.against_the_tool(lab, client, *options, interface=interface,
                                              tool_timeout=timeout, timeout=timeout,
                                              **ASKS.get(client, {}))
    records = run.clients()
    return {"got": truth(run), "seconds": run.result.seconds, "status": run.status,
            "verdict": records[0]["verdict"] if records else None,
            "line": records[0]["line"] if records else None}


def cell(result):
    if "not_run" in result:
        return f"not run: {result['not_run']}"
    verdict = result["verdict"] or "no verdict"
    got = f"{result['got']} {result['seconds']:.1f} s" if result["got"] else "nothing"
    return f"{got}: {verdict} ({result['status']})"


def main():
    args = clients_parser(__doc__, CLIENTS, CASES, 40,
                          "gets (default 40: wpa_supplicant's second EAPOL-Start comes 30 s "
                          "after its first)", "access-clients.json").parse_args()
    require(PACKAGES)  # the clients may be missing: they are listed as not run
    clients_table(args, access_runners.NAMES, access_runners.missing, access_runners.version,
                  one_run, cell, {case: title for case, (title, _, _) in CASES.items()})


if __name__ == "__main__":
    main()
