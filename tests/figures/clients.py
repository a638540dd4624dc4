#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which common client tools see VLAN-0-tagged replies.

USAGE: sudo python3 tests/figures/clients.py [--json FILE]

Runs each client in a guest namespace (a veth pair from the tests' Lab,
documentation addresses) against three peers on the host end: the tool with
its default VLAN 0 tag, the tool with --untagged, and the Linux kernel with
the address configured (the control). A client "sees" the peer when it
reports every answer it asked for. Prints a table with the clients'
versions; a client missing on this machine is listed as not run, with what
to install. Debian's own arping package conflicts with iputils-arping, so it
is fetched with apt-get download into tests/figures/.cache and run from there.
Takes a minute or two; not part of the pytest run.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))  # netlab, which adds the tool's folder

from netlab import GUEST_IF, HOST_IF, TOOL_IP, Lab, json_path, report, require  # noqa: E402

GUEST6, TOOL6 = "2001:db8::1", "2001:db8::2"
CACHE = os.path.join(HERE, ".cache")
PEERS = (("the tool, tagged (vlan 0)", ["-q"]), ("the tool, --untagged", ["-q", "--untagged"]),
         ("the kernel (control)", None))

SCAPY_ARP = f"""
from scapy.all import ARP, Ether, conf, srp1
conf.verb = 0
print("answered" if srp1(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="{TOOL_IP}"),
                         iface="{GUEST_IF}", timeout=2) else "silence")
"""
SCAPY_NS = f"""
from scapy.all import Ether, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6, conf, get_if_hwaddr, srp1
conf.verb = 0
mac = get_if_hwaddr("{GUEST_IF}")
print("answered" if srp1(Ether(src=mac, dst="33:33:ff:00:00:02") /
                         IPv6(src="{GUEST6}", dst="ff02::1:ff00:2") /
                         ICMPv6ND_NS(tgt="{TOOL6}") / ICMPv6NDOptSrcLLAddr(lladdr=mac),
                         iface="{GUEST_IF}", timeout=2) else "silence")
"""
SCAPY_ECHO = f"""
from scapy.all import ICMP, IP, conf, sr1
conf.verb = 0
print("answered" if sr1(IP(dst="{TOOL_IP}") / ICMP(), timeout=2) else "silence")
"""


def debian_arping():
    """Debian's arping (not iputils'), unpacked with its libnet; or None."""
    root = os.path.join(CACHE, "debian-arping")
    if not os.path.isdir(root):
        if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
            return None
        scratch = os.path.join(CACHE, "debs")
        os.makedirs(scratch, exist_ok=True)
        fetched = subprocess.run(["apt-get", "download", "arping", "libnet1"], cwd=scratch,
                                 capture_output=True)
        if fetched.returncode != 0:
            return None
        for deb in glob.glob(os.path.join(scratch, "*.deb")):
            subprocess.run(["dpkg-deb", "-x", deb, root + ".partial"], check=True)
        shutil.rmtree(scratch)
        os.rename(root + ".partial", root)
    binary = glob.glob(os.path.join(root, "usr", "sbin", "arping"))
    libraries = os.path.dirname(glob.glob(os.path.join(root, "usr", "lib", "*", "libnet.so*"))[0])
    return ["env", f"LD_LIBRARY_PATH={libraries}", binary[0]] if binary else None


def clients():
    """(name, install hint, version command, command, what proves every answer)."""
    arping = debian_arping()
    python = [sys.executable, "-c"]
    return [
        ("iputils ping", "iputils-ping", ["ping", "-V"],
         ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", TOOL_IP], r"^3 packets.* 3 received"),
        ("iputils ping -6", "iputils-ping", ["ping", "-V"],
         ["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", TOOL6], r" 3 received"),
        ("iputils ping -s 3000 (fragments)", "iputils-ping", ["ping", "-V"],
         ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000", TOOL_IP],
         r"(?s)(3008 bytes from.*){3}.* 3 received"),
        ("iputils ping -f (flood, 500)", "iputils-ping", ["ping", "-V"],
         ["ping", "-n", "-f", "-c", "500", "-W", "1", TOOL_IP], r" 500 received"),
        ("iputils arping", "iputils-arping", ["arping", "-V"],
         ["arping", "-c", "3", "-w", "5", "-I", GUEST_IF, TOOL_IP], r"Received 3 response"),
        ("busybox ping", "busybox", ["busybox"],
         ["busybox", "ping", "-c", "3", "-W", "2", TOOL_IP], r"3 packets received"),
        ("busybox ping6", "busybox", ["busybox"],
         ["busybox", "ping6", "-c", "3", "-W", "2", TOOL6], r"3 packets received"),
        ("busybox arping", "busybox", ["busybox"],
         ["busybox", "arping", "-c", "3", "-w", "5", "-I", GUEST_IF, TOOL_IP],
         r"Received 3 response"),
        ("fping", "fping", ["fping", "-v"], ["fping", "-c", "3", "-p", "200", TOOL_IP],
         r"xmt/rcv/%loss = 3/3/0%"),
        ("fping -6", "fping", ["fping", "-v"], ["fping", "-6", "-c", "3", "-p", "200", TOOL6],
         r"xmt/rcv/%loss = 3/3/0%"),
        ("arp-scan", "arp-scan", ["arp-scan", "--version"],
         ["arp-scan", "-I", GUEST_IF, "-r", "1", TOOL_IP], r"1 responded"),
        ("ndisc6", "ndisc6", ["ndisc6", "-V"], ["ndisc6", "-r", "3", TOOL6, GUEST_IF],
         r"Target link-layer address"),
        ("nmap -sn -PR (ARP)", "nmap", ["nmap", "--version"],
         ["nmap", "-n", "-sn", "-PR", TOOL_IP], r"Host is up"),
        ("nmap -6 -sn (NDP)", "nmap", ["nmap", "--version"], ["nmap", "-n", "-6", "-sn", TOOL6],
         r"Host is up"),
        ("nmap -sn -PE --send-ip (ICMP)", "nmap", ["nmap", "--version"],
         ["nmap", "-n", "-sn", "-PE", "--send-ip", TOOL_IP], r"Host is up"),
        ("hping3 -1 (ICMP)", "hping3", ["hping3", "-v"],
         ["hping3", "-1", "-c", "3", "-i", "u200000", TOOL_IP], r"3 packets received"),
        ("Debian's arping package", "arping (apt-get download)",
         [*arping, "--help"] if arping else None,
         [*arping, "-c", "3", "-i", GUEST_IF, TOOL_IP] if arping else None,
         r"3 packets received"),
        ("Scapy sr1(IP()/ICMP())", "python3-scapy", [sys.executable, "-c",
                                                     "import scapy; print(scapy.__version__)"],
         [*python, SCAPY_ECHO], r"answered"),
        ("Scapy srp1(Ether()/ARP())", "python3-scapy", [sys.executable, "-c",
                                                        "import scapy; print(scapy.__version__)"],
         [*python, SCAPY_ARP], r"answered"),
        ("Scapy srp1(Ether()/IPv6()/ICMPv6ND_NS())", "python3-scapy",
         [sys.executable, "-c", "import scapy; print(scapy.__version__)"],
         [*python, SCAPY_NS], r"answered"),
    ]


def version(command):
    if command is None or not shutil.which(command[0]):
        return None
    result = subprocess.run(command, capture_output=True, text=True)
    text = (result.stdout + result.stderr).strip()
    found = re.search(r"(\d+(?:\.\d+)+(?:[-~+][\w.+~-]+)?|\d{8})", text)
    return found.group(1) if found else text.splitlines()[0][:30]


def start_peer(lab, options):
    lab.in_guest("ip", "neigh", "flush", "dev", GUEST_IF)
    lab.in_guest("ip", "-6", "neigh", "flush", "dev", GUEST_IF)
    if options is None:
        lab.in_host("ip", "addr", "add", f"{TOOL_IP}/24", "dev", HOST_IF)
        lab.in_host("ip", "-6", "addr", "add", f"{TOOL6}/64", "dev", HOST_IF, "nodad")
        return None
    return lab.start_tool(*options)


def stop_peer(lab, tool):
    if tool is None:
        lab.in_host("ip", "addr", "flush", "dev", HOST_IF, "scope", "global")
    else:
        tool.stop()



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=json_path, metavar="FILE", default="clients.json",
                        help="where to write the results (default clients.json)")
    args = parser.parse_args()
    require({"ip": "iproute2"})  # the clients may be missing: they are listed as not run
    results = []
    with Lab(prefix="avzc", ipv6=True) as lab:
        lab.in_guest("ip", "-6", "addr", "add", f"{GUEST6}/64", "dev", GUEST_IF, "nodad")
        for name, package, version_command, command, proof in clients():
            row = {"client": name, "version": version(version_command), "results": {}}
            for peer, options in PEERS:
                if command is None or row["version"] is None:
                    row["results"][peer] = f"not run (install {package})"
                    continue
                tool = start_peer(lab, options)
                try:
                    ran = lab.in_guest(*command, check=False, timeout=60)
                finally:
                    stop_peer(lab, tool)
                seen = re.search(proof, ran.stdout + ran.stderr, re.MULTILINE)
                row["results"][peer] = "sees it" if seen else "misses it"
            results.append(row)
            print(json.dumps(row), flush=True)
    header = ["client", "version"] + [peer for peer, _ in PEERS]
    rows = [header] + [[r["client"], r["version"] or "-"] + [r["results"][p] for p, _ in PEERS]
                       for r in results]
    report(rows, results, args.json)


if __name__ == "__main__":
    main()
