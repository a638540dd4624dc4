#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which network-boot firmware accepts priority-tagged offers: the table.

USAGE: sudo python3 tests/vm/firmware.py [--firmware seabios-ipxe,ovmf-ipxe,ovmf-edk2]
                                         [--nics e1000,e1000e,virtio-net-pci,rtl8139]
                                         [--rom NAME=FILE] [--timeout S] [--json FILE]

For every firmware (SeaBIOS with qemu's own iPXE ROMs; OVMF with the same
ROMs, whose EFI driver is iPXE's "UEFI PXEv4"; OVMF alone, `romfile=` on
the NIC, so that EDK2's own PXE boots), every NIC and both framings (the
tool's VLAN-0 tag, and --untagged as the control), boots qemu -boot n (no
disk, no kernel: the firmware alone) on a TAP in a throwaway namespace,
beside the tool as

    arp_icmp_vlan0.py --ip 198.51.100.2/24 --dhcp --boot-file snponly.efi
        --boot-file ipxe=boot.ipxe --until-verdict --timeout S tapfw

so that "accepts" means the boot file arrived: a BIOS iPXE and a UEFI iPXE
get the script boot.ipxe (it prints AVZ-BOOT-FILE-RAN on the console), EDK2
gets Debian's snponly.efi (the ipxe package), which then asks for the script
as iPXE. Records the tool's exit status, each stage's verdict and line, the
seconds to the verdict, and whether the console shows the script ran.
--rom NAME=FILE adds a row: SeaBIOS with FILE as the e1000's option ROM
(an iPXE bin/8086100e.rom), e.g. one built with VLAN 0 treated as untagged
(README: "A machine that boots from the network").

Needs qemu-system-x86, ovmf (OVMF.fd) and ipxe (snponly.efi); about 10 to
60 s a boot under TCG, one at a time.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guest import GUEST_MAC, tap_namespace  # noqa: E402
from netlab import TOOL, Process, command_line, json_path, names_from, require  # noqa: E402
from netlab import text_table  # noqa: E402
from qemu import command as qemu_command  # noqa: E402

OVMF = "/usr/share/ovmf/OVMF.fd"
SNPONLY = "/usr/lib/ipxe/snponly.efi"
SCRIPT = "#!ipxe\necho AVZ-BOOT-FILE-RAN\n"
RAN = "AVZ-BOOT-FILE-RAN"
NICS = ("e1000", "e1000e", "virtio-net-pci", "rtl8139")
# name -> (what it is, qemu options, the NIC's romfile: None for qemu's own)
FIRMWARES = {
    "seabios-ipxe": ("SeaBIOS + iPXE", ["-device", "sga"], None),
    "ovmf-ipxe": ("OVMF + iPXE's EFI driver", ["-bios", OVMF], None),
    "ovmf-edk2": ("OVMF, EDK2's own PXE", ["-bios", OVMF], ""),
}
FRAMINGS = (("tagged", []), ("untagged", ["--untagged"]))
SERVER = "198.51.100.2"


def boot_files(directory):
    """The script (boot.ipxe) and snponly.efi (if there is one), in
    `directory`: the tool's --boot-file options."""
    script = os.path.join(directory, "boot.ipxe")
    with open(script, "w") as out:
        out.write(SCRIPT)
    options = ["--boot-file", f"ipxe={script}"]
    if os.path.exists(SNPONLY):
        options += ["--boot-file", SNPONLY]
    return options


def boot(namespace, tap, firmware, nic, framing=(), timeout=60, rom=None, files=None,
         directory=None):
    """Boot `firmware` (a FIRMWARES key, or None with `rom`: SeaBIOS and
    that option ROM) with NIC `nic` on `tap`, beside the tool serving
    `files` (--boot-file options; default: boot_files()); the tool's
    exit status, output and --json record, the console and the seconds."""
    directory = directory or tempfile.mkdtemp(prefix="avz-fw-")
    summary = os.path.join(directory, "summary.json")
    recording = os.path.join(directory, "run.pcap")
    if files is None:
        files = boot_files(directory)
    if rom is not None:
        options, romfile = ["-device", "sga"], rom
    else:
        _, options, romfile = FIRMWARES[firmware]
    rom_option = "" if romfile is None else f",romfile={romfile}"
    tool = Process(["ip", "netns", "exec", namespace, sys.executable, TOOL, "--ip",
                    f"{SERVER}/24", "--dhcp", *files, "--until-verdict", "--timeout",
                    str(timeout), "--json", summary, "-w", recording, *framing, tap])
    tool.wait_for("Hit Ctrl-C")
    accel = os.environ.get("ARP_ICMP_VLAN0_VM_ACCEL", "tcg")
    started = time.monotonic()
    guest = Process(["ip", "netns", "exec", namespace, *qemu_command(), "-accel", accel,
                     "-m", "256", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
                     *options, "-boot", "n",
                     "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
                     "-device", f"{nic},netdev=net0,mac={GUEST_MAC}{rom_option}"])
    try:
        status = tool.wait(timeout=timeout + 15)
        seconds = time.monotonic() - started
        if status == 0:  # the file arrived: the console says whether it ran
            deadline = time.monotonic() + 15
            while RAN not in guest.output and time.monotonic() < deadline \
                    and guest.popen.poll() is None:
                time.sleep(0.2)
    finally:
        tool.stop()
        guest.stop()
    record = {}
    if os.path.exists(summary):
        with open(summary) as file:
            record = json.load(file)
    return {"status": status, "seconds": round(seconds, 1), "tool": tool.output,
            "console": guest.output, "ran": RAN in guest.output, "record": record,
            "recording": recording}


def stages(record):
    """[(stage, service, verdict, line)] of every DHCP and TFTP client."""
    found = []
    for service in ("dhcp", "tftp"):
        for client in record.get(service, {}).get("clients", []):
            found.append((client.get("stage") or "os", service, client["verdict"],
                          client["line"]))
    return found


def cell(result):
    """A table cell: the exit status, the verdicts by stage, ran or not."""
    verdicts = " ".join(f"{stage}/{service}:{verdict or 'none'}"
                        for stage, service, verdict, _ in stages(result["record"])) \
        or "no DHCP client heard"
    ran = ", ran" if result["ran"] else ""
    return f"{result['status']} ({verdicts}{ran}; {result['seconds']:g} s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firmware", type=names_from(FIRMWARES, "firmware"),
                        default=list(FIRMWARES),
                        help=f"which, comma-separated (default: {','.join(FIRMWARES)})")
    parser.add_argument("--nics", type=names_from(NICS, "NIC"), default=list(NICS),
                        help=f"which NIC models, comma-separated (default: {','.join(NICS)})")
    parser.add_argument("--rom", action="append", default=[], metavar="NAME=FILE",
                        help="a row more: SeaBIOS with FILE as the e1000's option ROM")
    parser.add_argument("--timeout", type=int, default=60,
                        help="the tool's --timeout for each boot (default 60)")
    parser.add_argument("--json", type=json_path, default="firmware.json",
                        help="where the results go (default firmware.json)")
    args = parser.parse_args()
    require({"qemu-system-x86_64": "qemu-system-x86", "ip": "iproute2"})
    missing = [path for path in (OVMF, SNPONLY) if not os.path.exists(path)]
    if missing:
        sys.exit(f"firmware.py: error: needs {', '.join(missing)} (apt install ovmf ipxe)")
    rows = [[c for c in ("firmware", "NIC", *[name for name, _ in FRAMINGS])]]
    results = []
    runs = [(name, FIRMWARES[name][0], None) for name in args.firmware]
    for text in args.rom:
        name, _, path = text.partition("=")
        if not path or not os.path.exists(path):
            sys.exit(f"firmware.py: error: --rom {text!r}: NAME=FILE, an existing file")
        runs.append((name, f"SeaBIOS + {name}", os.path.abspath(path)))
    with tap_namespace("avzt-fw", "tapfw") as namespace:
        for name, title, rom in runs:
            for nic in (["e1000"] if rom else args.nics):
                row = [title, nic]
                for framing, options in FRAMINGS:
                    result = boot(namespace, "tapfw", None if rom else name, nic, options,
                                  args.timeout, rom=rom)
                    row.append(cell(result))
                    results.append({"firmware": name, "nic": nic, "framing": framing,
                                    "rom": rom, **{k: result[k] for k in
                                                   ("status", "seconds", "ran")},
                                    "stages": stages(result["record"]),
                                    "console_tail": re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "",
                                                           result["console"])[-1500:]})
                    print(f"{title} {nic} {framing}: {row[-1]}", flush=True)
                rows.append(row)
    print(command_line())
    print(text_table(rows))
    with open(args.json, "w") as out:
        json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
