#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which virtual NICs accept priority-tagged frames: the whole matrix.

USAGE: sudo python3 tests/vm/matrix.py [--qemu 7.2,10.0,11.1]
                                       [--kernels bullseye,bookworm,trixie,sid]
                                       [--nics e1000,virtio-net-pci,...]
                                       [--do ping,probe,dhcp] [--jobs N] [--json FILE]

For every qemu (the system's 7.2, Debian trixie's 10.0, Debian sid's 11.1:
see qemu.py), every guest kernel (Debian bullseye, bookworm, trixie, sid),
every qemu NIC model
with a Linux driver, every guest mode (normal, NIC in promiscuous mode,
8021q loaded) and three framings (the tool's default 802.1Q VLAN-0 tag, an
802.1ad tag with --tpid 0x88a8, and --untagged as the baseline), boots a
guest on a TAP in a throwaway namespace, pings the tool three times and
records how many whole replies arrived, the kernel the guest printed, and
the tool's own verdict (which must agree). --do probe boots a guest that
only configures its address and stays silent, and records the verdict of
the tool's --probe alone; --do dhcp one that runs busybox udhcpc against
the tool's --dhcp, and records whether it got a lease and the tool's DHCP
verdict (which must agree). Prints one table per qemu and
kernel (about 8 s a boot under TCG, --jobs at a time), with more than one of
either a summary of the 802.1Q normal column, and writes the results, each
with the qemu version that ran it, as JSON.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guest import (NIC_DRIVERS, PACKAGES, RELEASES, kernel, kernel_of, tap_namespace,  # noqa: E402
                   missing_tools, result_of, run_guest, start_tool, wait_for_the_guest_on)
from netlab import at_least, command_line, json_path, names_from, require, text_table  # noqa: E402
from qemu import QEMUS, SYSTEM_QEMU, TREE_TOOLS, tree  # noqa: E402
from qemu import missing_tools as missing_tree_tools, version as qemu_version  # noqa: E402

MODES = ("normal", "promisc", "8021q")
DOINGS = ("ping", "probe", "dhcp")  # what the guest does: --do
# Every model with a Linux driver, and virtio-net with its VLAN filter off.
NICS = list(NIC_DRIVERS) + ["virtio-net-pci,ctrl_vlan=off"]
FRAMINGS = (("802.1Q", []), ("802.1ad", ["--tpid", "0x88a8"]), ("untagged", ["--untagged"]))


def split_nics(text):
    """'e1000,virtio-net-pci,ctrl_vlan=off' -> the models, each with the
    properties (name=value) that follow it."""
    nics = []
    for token in text.split(","):
        if "=" in token and nics:
            nics[-1] += "," + token
        else:
            nics.append(token)
    return nics


def one(qemu, release, nic, mode, framing, do="ping"):
    options = ["-q", "-4", *dict(FRAMINGS)[framing]]
    with tap_namespace("avzm") as namespace, tempfile.TemporaryDirectory() as scratch:
        summary = os.path.join(scratch, "summary.json")
        console = (probe if do == "probe" else serve)(
            namespace, qemu, release, nic, mode, do, [*options, "--json", summary])
        with open(summary) as file:
            record = json.load(file)
    driver = re.search(r"AVZ-DRIVER (\S+)", console)
    result = result_of(console)
    lease = re.search(r"AVZ-LEASE (\S+)", console)
    judged = {"ping": record["guests"], "probe": record["probes"] or [],
              "dhcp": (record["dhcp"] or {}).get("clients", [])}[do]
    return {"qemu": qemu, "qemu_version": qemu_version(qemu),
            "kernel_release": release, "kernel": kernel_of(console), "nic": nic,
            "mode": mode, "framing": framing, "do": do,
            "driver": driver.group(1) if driver else None,
            "whole_replies": result[1] if result else None,
            "lease": None if lease is None else lease.group(1) != "none",
            "verdict": judged[0]["verdict"] if judged else None}


def serve(namespace, qemu, release, nic, mode, do, options):
    """The tool answering (with --dhcp for a DHCP guest) while the guest
    boots, pings and powers off; the guest's console."""
    if do == "dhcp":
        options += ["--ip", "198.51.100.2/24", "--dhcp"]
    tool = start_tool(namespace, "tapvm", *options)
    try:
        return run_guest(namespace, "tapvm", nic, mode, release=release, qemu=qemu, do=do,
                         wait=2 if do == "dhcp" else 20)
    finally:
        tool.stop()


def probe(namespace, qemu, release, nic, mode, do, options):
    """A silent guest, probed once it is up (--probe --until-verdict);
    the guest's console."""
    consoles = []
    guest = threading.Thread(target=lambda: consoles.append(run_guest(
        namespace, "tapvm", nic, mode, release=release, qemu=qemu, do="silent", wait=12)))
    guest.start()
    try:
        wait_for_the_guest_on(namespace, "tapvm")
        tool = start_tool(namespace, "tapvm", *options, "--probe", "198.51.100.1",
                          "--until-verdict", "--timeout", "30")
        tool.wait(timeout=40)
        tool.stop()
    finally:
        guest.join()
    return consoles[0] if consoles else ""


def agrees(result):
    """The tool's verdict agrees with the guest's console: its pings got
    replies, or it got a lease, exactly when the tool says it accepts;
    a probe's verdict has no console to agree with (None)."""
    if result["do"] == "probe":
        return None
    seen = result["lease"] if result["do"] == "dhcp" else result["whole_replies"]
    if seen is None:
        return None
    return result["verdict"] == ("accepts" if seen else "drops")


def replies(result):
    """A cell: whole replies (ping), the probe's verdict, or lease or none
    and the DHCP verdict."""
    if result["do"] == "probe":
        return result["verdict"] or "-"
    if result["do"] == "dhcp":
        return "-" if result["lease"] is None else (
            f"{'lease' if result['lease'] else 'no lease'}, {result['verdict'] or '?'}")
    return "-" if result["whole_replies"] is None else f"{result['whole_replies']}/3"


def table(results, qemu, release, nics, do="ping"):
    header = ["NIC model (driver)"] + [f"{f} {m}" for f, _ in FRAMINGS for m in MODES]
    rows = [header]
    for nic in nics:
        cells = {(r["framing"], r["mode"]): r for r in results
                 if r["nic"] == nic and r["kernel_release"] == release and r["qemu"] == qemu
                 and r["do"] == do}
        driver = next((r["driver"] for r in cells.values() if r["driver"]), "?")
        rows.append([f"{nic} ({driver})"] + [replies(cells[(f, m)])
                                             for f, _ in FRAMINGS for m in MODES])
    return text_table(rows)


def summary(results, qemus, releases, nics, do="ping"):
    """The 802.1Q normal column across qemus (rows, with the NICs) and
    kernels (columns)."""
    rows = [["qemu", "NIC model"] + list(releases)]
    for qemu in qemus:
        for nic in nics:
            cells = {r["kernel_release"]: r for r in results if r["qemu"] == qemu
                     and r["nic"] == nic and r["framing"] == "802.1Q" and r["mode"] == "normal"
                     and r["do"] == do}
            rows.append([qemu, nic] + [replies(cells[release]) for release in releases])
    return text_table(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qemu", type=names_from(QEMUS, "qemu version"), default=SYSTEM_QEMU,
                        help=f"qemu versions, comma-separated, of {', '.join(QEMUS)}: 7.2 is "
                             "the system's qemu-system-x86_64, 10.0 Debian trixie's and 11.1 "
                             "Debian sid's, each installed once into tests/vm/.cache/qemu "
                             "(debootstrap, a few minutes) and run from there "
                             f"(default {SYSTEM_QEMU})")
    parser.add_argument("--kernels", type=names_from(RELEASES, "kernel"), default="bookworm",
                        help=f"guest kernels (Debian releases), comma-separated, of "
                             f"{', '.join(RELEASES)} "
                             "(default bookworm)")
    parser.add_argument("--nics", type=names_from(NIC_DRIVERS, "NIC model", split_nics), default=",".join(NICS),
                        help=f"qemu NIC models, comma-separated, of {', '.join(NIC_DRIVERS)}; "
                             "qemu device properties may follow a model, as in "
                             "virtio-net-pci,ctrl_vlan=off (default: every model, and "
                             "virtio-net-pci with its VLAN filter off)")
    parser.add_argument("--do", type=names_from(DOINGS, "guest action"), default="ping",
                        help="what the guest does, comma-separated, of ping (its address "
                             "configured, it pings the tool), probe (configured, silent: "
                             "the tool's --probe judges it) and dhcp (busybox udhcpc "
                             "against the tool's --dhcp) (default ping)")
    parser.add_argument("--jobs", type=at_least(1), metavar="N", default=2,
                        help="guests at a time (default 2)")
    parser.add_argument("--json", type=json_path, metavar="FILE", default="nic-matrix.json",
                        help="where to write the results (default nic-matrix.json)")
    args = parser.parse_args()
    # Before the root check: a machine without qemu learns it without sudo.
    missing = missing_tools()
    if missing:
        sys.exit(f"matrix.py: error: needs {', '.join(missing)} "
                 f"(apt install {' '.join(PACKAGES[tool] for tool in missing)})")
    missing = missing_tree_tools(args.qemu)
    if missing:
        sys.exit(f"matrix.py: error: --qemu {','.join(args.qemu)} needs {', '.join(missing)} "
                 f"(apt install {' '.join(TREE_TOOLS[tool] for tool in missing)})")
    require({}, "qemu guests on TAPs")
    qemus, releases, nics = args.qemu, args.kernels, args.nics
    for name in qemus:
        if QEMUS[name] and not os.path.isdir(tree(name)):
            print(f"making qemu {name} (Debian {QEMUS[name]}'s) in {tree(name)}, once",
                  file=sys.stderr, flush=True)
    try:
        lines = {name: qemu_version(name) for name in qemus}  # each tree made once
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        sys.exit(f"matrix.py: error: {error}")
    versions = {release: kernel(release).version for release in releases}  # fetched once
    started = time.monotonic()
    cases = [(qemu, release, nic, mode, framing, do) for do in args.do for qemu in qemus
             for release in releases for nic in nics for framing, _ in FRAMINGS
             for mode in MODES]
    results = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(lambda case: one(*case), cases):
            results.append(result)
            print(json.dumps(result), flush=True)
    print(command_line())
    print(f"{'; '.join(lines.values())}; TCG; {len(cases)} boots in "
          f"{time.monotonic() - started:.0f} s")
    cells = {"ping": "whole echo replies", "probe": "the probe's verdict (a silent guest)",
             "dhcp": "the guest's lease and the tool's DHCP verdict"}
    for do in args.do:
        for qemu in qemus:
            for release in releases:
                printed = {r["kernel"] for r in results if r["kernel_release"] == release
                           and r["qemu"] == qemu and r["do"] == do}
                print(f"\n{cells[do]}; qemu {qemu}: {lines[qemu]}\n"
                      f"guest kernel: Debian {release}, {versions[release]} (uname -r in the "
                      f"guests: {', '.join(sorted(p or '?' for p in printed))})")
                print(table(results, qemu, release, nics, do))
        if len(qemus) > 1 or len(releases) > 1:
            print(f"\n802.1Q (VLAN 0), guest in normal mode: {cells[do]} by qemu and guest "
                  "kernel")
            print(summary(results, qemus, releases, nics, do))
    judged = [r for r in results if agrees(r) is not None]
    disagree = [r for r in judged if not agrees(r)]
    print(f"\nthe tool's verdict agreed with the guest's console in "
          f"{len(judged) - len(disagree)} of {len(judged)} boots")
    for r in disagree:
        print(f"  disagreement: {json.dumps(r)}")
    with open(args.json, "w") as out:
        json.dump({"qemu": lines, "kernels": versions, "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
