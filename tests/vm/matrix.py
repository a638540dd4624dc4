#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which virtual NICs accept priority-tagged frames: the whole matrix.

USAGE: sudo python3 tests/vm/matrix.py [--nics e1000,virtio-net-pci,...] [--json FILE]

For every qemu NIC model with a Linux driver, every guest mode (normal, NIC
in promiscuous mode, 8021q loaded) and both framings (the tool's default
VLAN-0 tag, and --untagged as the baseline), boots a guest on a TAP in a
throwaway namespace, pings the tool three times and records how many whole
replies arrived. Prints a table (about 8 s a boot under TCG: 54 boots take
some 7 minutes) and writes the results as JSON.
"""

import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guest import NIC_DRIVERS, kernel, make_tap, result_of, run_guest, start_tool  # noqa: E402
from netlab import run  # noqa: E402

MODES = ("normal", "promisc", "8021q")
FRAMINGS = (("tagged", []), ("untagged", ["--untagged"]))


def one(nic, mode, options):
    namespace = f"avzm-{os.urandom(4).hex()}"
    run("ip", "netns", "add", namespace)
    try:
        make_tap(namespace, "tapvm")
        tool = start_tool(namespace, "tapvm", "-q", *options)
        console = run_guest(namespace, "tapvm", nic, mode)
        tool.stop()
        driver = re.search(r"AVZ-DRIVER (\S+)", console)
        result = result_of(console)
        return {"nic": nic, "mode": mode, "framing": "untagged" if options else "tagged",
                "driver": driver.group(1) if driver else None,
                "whole_replies": result[1] if result else None}
    finally:
        run("ip", "netns", "del", namespace, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nics", default=",".join(NIC_DRIVERS))
    parser.add_argument("--json", default="nic-matrix.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("matrix.py: error: needs root: sudo python3 tests/vm/matrix.py")
    vmlinuz, _ = kernel()
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    print(f"{qemu}; guest kernel {os.path.basename(vmlinuz)}; TCG", flush=True)
    results = []
    for nic in args.nics.split(","):
        for _, options in FRAMINGS:
            for mode in MODES:
                results.append(one(nic, mode, options))
                print(json.dumps(results[-1]), flush=True)
    header = ["NIC model (driver)"] + [f"{f} {m}" for f, _ in FRAMINGS for m in MODES]
    rows = [header]
    for nic in args.nics.split(","):
        cells = {(r["framing"], r["mode"]): r for r in results if r["nic"] == nic}
        driver = next((r["driver"] for r in cells.values() if r["driver"]), "?")
        rows.append([f"{nic} ({driver})"] + [
            "-" if cells[(f, m)]["whole_replies"] is None
            else f"{cells[(f, m)]['whole_replies']}/3" for f, _ in FRAMINGS for m in MODES])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    with open(args.json, "w") as out:
        json.dump({"qemu": qemu, "kernel": os.path.basename(vmlinuz), "results": results},
                  out, indent=1)


if __name__ == "__main__":
    main()
