#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which DHCP clients take the tool's tagged DHCP offers: five real clients
against --dhcp, tagged vlan 0, tagged vlan 5, untagged, and behind two
filters that drop VLAN-0-tagged frames.

USAGE: sudo python3 tests/figures/dhcp_clients.py [--clients dhclient,udhcpc,...]
                                                  [--cases vlan0,vlan5,...]
                                                  [--timeout 30] [--json FILE]

Each run makes a Lab (tests/lib/netlab.py: a veth pair between a host and a
guest namespace, documentation addresses, deleted on every exit path), runs
the tool on the host end with --ip 198.51.100.2/24 --dhcp --until-verdict
--timeout SECONDS --json, and one client in the guest namespace, by hand,
with private files (tests/lib/dhcp_runners.py says how for each): ISC dhclient,
dhcpcd, busybox udhcpc, systemd-networkd and NetworkManager's internal
client (NetworkManager is not installed: its packages are fetched with
apt-get download into tests/figures/.cache/networkmanager and run from
there). The clients run with their default retry pace, but udhcpc
(-T 2: DISCOVERs 2 s apart) and dhcpcd (-L: no IPv4LL fallback).

The cases:

  vlan0     the tool's default tag, vlan 0, p 0
  vlan5     --vlan 5
  untagged  --untagged (the baseline)
  nft       vlan 0, the guest's interface behind the nftables netdev ingress
            rule 'vlan id 0 drop' (what tests/netns/test_netns_verdict.py uses); a
            client on an ETH_P_ALL packet socket gets its copy before it
  wire      vlan 0, the same rule on the veth before the client's interface
            (a second veth pair): as a NIC's VLAN filter, nothing sees the frame

For each client and case: whether it bound an address (ip -4 addr in the
namespace) and how many seconds after its start, then the tool's verdict
and exit status (0 accepts, 3 drops, 4 no verdict): "bound 0.1 s: accepts
(0)", "no lease: drops (3)"; and in the last column the client's
retry pace: the seconds between the DHCPDISCOVERs the tool answered in the
runs where it dropped them. A client missing here is listed as not run,
with why. Takes about three minutes; not part of the pytest run.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# tests/lib: the clients' runners (dhcp_runners) and netlab.
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import dhcp_runners  # noqa: E402
from dhcp_runners import CLIENTS, NAMES  # noqa: E402
from netlab import GUEST_IF, Lab, clients_parser, clients_table, require  # noqa: E402

# case -> (the column's title, the tool's framing options, the guest's filter)
CASES = {"vlan0": ("vlan 0", (), None), "vlan5": ("vlan 5", ("--vlan", "5"), None),
         "untagged": ("untagged", ("--untagged",), None),
         "nft": ("vlan 0, nft ingress drop", (), "ingress"),
         "wire": ("vlan 0, dropped before the NIC", (), "wire")}
PACKAGES = {"ip": "iproute2", "nft": "nftables"}  # unshare: missing() says, per client


def one_run(client, case, timeout):
    """One client, one case, in a Lab of its own: the result's dict."""
    _, options, hiding = CASES[case]
    with Lab(prefix="avzd") as lab:
        interface = GUEST_IF
        if hiding == "ingress":
            dhcp_runners.drop_vlan0_at_ingress(lab)
        elif hiding == "wire":
            interface, _ = dhcp_runners.drop_vlan0_on_the_wire(lab)
        run = dhcp_runners.against_the_tool(lab, client, *options, interface=interface,
                                            tool_timeout=timeout, timeout=timeout)
    lines = [c["line"] for c in (run.summary.get("dhcp") or {}).get("clients", [])
             if c["mac"] == run.mac]
    verdicts = run.verdicts()
    return {"address": run.lease.address, "seconds": run.lease.seconds,
            "status": run.status, "verdict": verdicts[0] if verdicts else None,
            "discover_gaps": run.discover_gaps(), "line": lines[0] if lines else None}


def cell(result):
    if "not_run" in result:
        return f"not run: {result['not_run']}"
    verdict = result["verdict"] or "no verdict"
    if result["address"]:
        return f"bound {result['seconds']:.1f} s: {verdict} ({result['status']})"
    return f"no lease: {verdict} ({result['status']})"


def pace(results):
    """The seconds between answered DISCOVERs, run by run ("4.0, 7.7 /
    4.8, 12.6": two runs of three DISCOVERs each)."""
    runs = [", ".join(f"{gap:.1f}" for gap in result["discover_gaps"])
            for result in results.values() if result.get("discover_gaps")]
    return " / ".join(runs) if runs else "-"


def main():
    args = clients_parser(__doc__, CLIENTS, CASES, 30, "gets to bind (default 30)",
                          "dhcp-clients.json").parse_args()
    require(PACKAGES)  # the clients may be missing: they are listed as not run
    clients_table(args, NAMES, dhcp_runners.missing, dhcp_runners.version, one_run, cell,
                  {case: title for case, (title, _, _) in CASES.items()},
                  extra=("retry pace (s between DISCOVERs)", pace))


if __name__ == "__main__":
    main()
