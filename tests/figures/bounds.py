#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What a guest's volume costs the tool: interfaces that come and go, and
the largest guest table.

USAGE: sudo python3 tests/figures/bounds.py [--churn N] [--rounds R] [--guests N]
                                            [--asks N] [--tool PATH] [--json FILE]

churn: one host namespace, the tool serving 'v*' there with -q; guest B on
its own veth (vb, 203.0.113.1/24) pings the tool every 50 ms while N more
veth pairs (vc0..) are added in the host namespace, set up, and deleted,
R rounds. Reports B's replies, their average and highest round trip, the
tool's peak RSS and the lines its statistics keep for the interfaces that
went away.

table: the tool serving 'v*' with -q --json on 16 veths; from each, a
guest namespace's packet socket sends ARP requests from N/16 made-up MACs,
each asking for --asks addresses (so each guest keeps its evidence full),
then the tool is ended (SIGTERM) and writes its JSON: its peak RSS (the
kernel's count for the process, ru_maxrss) and the JSON's size.

Documentation addresses only; everything is removed on every exit path.
Not part of the pytest run: it takes a minute or two.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from netlab import TOOL, at_least, command_line, json_path, require, run  # noqa: E402

PACKAGES = {"ip": "iproute2", "ping": "iputils-ping"}
SENDER = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
data = sys.stdin.buffer.read()
import time
for n, at in enumerate(range(0, len(data), 60)):
    sock.send(data[at:at + 60])
    if n % 40 == 39:
        time.sleep(0.001)  # about 40,000 a second: what the tool takes in without loss
"""


class Namespaces:
    """Namespaces made with a random suffix, deleted on every exit path."""

    def __init__(self):
        self.suffix, self.made = os.urandom(4).hex(), []

    def add(self, role):
        name = f"avzf-{role}-{self.suffix}"
        run("ip", "netns", "add", name)
        self.made.append(name)
        return name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def veth(host, host_if, guest, guest_if="eth0", address=None):
    run("ip", "link", "add", host_if, "netns", host, "type", "veth", "peer", "name", guest_if,
        "netns", guest)
    run("ip", "netns", "exec", guest, "sysctl", "-qw", f"net.ipv6.conf.{guest_if}.disable_ipv6=1")
    if address:
        run("ip", "-n", guest, "addr", "add", address, "dev", guest_if)
    run("ip", "-n", guest, "link", "set", guest_if, "up")
    run("ip", "-n", host, "link", "set", host_if, "up")


def start_tool(tool, host, *args):
    """The tool, its output read as it comes by a thread (a full pipe would
    stop it); returns once it answers."""
    process = subprocess.Popen(["ip", "netns", "exec", host, sys.executable, tool, "-q", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    process.lines = []
    process.reader = threading.Thread(target=lambda: process.lines.extend(process.stdout),
                                      daemon=True)
    process.reader.start()
    deadline = time.monotonic() + 30
    while not any("Hit Ctrl-C" in line for line in list(process.lines)):
        if time.monotonic() > deadline:
            raise RuntimeError("the tool did not start:\n" + "".join(process.lines))
        time.sleep(0.05)
    return process, "".join(process.lines)


def end(process):
    """SIGTERM; the tool's output and its peak RSS in MiB (ru_maxrss)."""
    process.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    process.reader.join(timeout=10)
    return "".join(process.lines), round(usage.ru_maxrss / 1024, 1)


def churn(tool, count, rounds):
    with Namespaces() as ns:
        host, guest_b, far = ns.add("h"), ns.add("b"), ns.add("far")
        veth(host, "vb", guest_b, address="203.0.113.1/24")
        process, output = start_tool(tool, host, "--ip", "203.0.113.2/24", "v*")
        ping = subprocess.Popen(["ip", "netns", "exec", guest_b, "ping", "-n", "-i", "0.05",
                                 "-W", "1", "203.0.113.2"], stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        for round_ in range(rounds):
            names = [f"vc{round_}x{n}" for n in range(count)]
            for name in names:  # the far ends in a namespace of their own, never up
                run("ip", "link", "add", name, "netns", host, "type", "veth", "peer", "name",
                    f"p{name}", "netns", far)
                run("ip", "-n", host, "link", "set", name, "up")
            for name in names:
                run("ip", "-n", host, "link", "del", name)
        took = time.monotonic() - started
        ping.send_signal(signal.SIGINT)
        pinged = ping.communicate(timeout=10)[0]
        output, rss = end(process)
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", pinged)]
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", pinged)
    gone = re.search(r"([\d,]+) more that went away", output)
    return {"interfaces": count * rounds, "seconds": round(took, 1),
            "pings_sent": int(counts[1]), "pings_received": int(counts[2]),
            "rtt_avg_ms": round(statistics.mean(times), 3) if times else None,
            "rtt_max_ms": max(times) if times else None, "peak_rss_mib": rss,
            "statistics_lines": len([line for line in output.splitlines()
                                     if re.match(r"v\w+: \d+ frames seen", line)]),
            "summed_as_gone": int(gone[1].replace(",", "")) if gone else 0}


def table(tool, guests, asks, path):
    interfaces = 16
    with Namespaces() as ns:
        host = ns.add("h")
        senders = []
        for n in range(interfaces):
            guest = ns.add(f"g{n}")
            veth(host, f"v{n}", guest)
            senders.append(guest)
        process, _ = start_tool(tool, host, "--json", path, "v*")
        started = time.monotonic()
        per = guests // interfaces
        for n, guest in enumerate(senders):
            frames = bytearray()
            for g in range(per):
                mac = b"\x02\x00" + (n * per + g).to_bytes(4, "big")
                for k in range(asks):  # each ask for another address, 10 s "apart" is moot
                    target = bytes([198, 51, 100, 2 + k % 250])
                    frames += (b"\xff" * 6 + mac + b"\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01"
                               + mac + bytes([198, 51, 100, 1]) + bytes(6) + target
                               + bytes(18))
            subprocess.run(["ip", "netns", "exec", guest, sys.executable, "-c", SENDER, "eth0"],
                           input=bytes(frames), check=True, timeout=300)
        time.sleep(2)  # the last frames answered
        output, rss = end(process)
        took = time.monotonic() - started
    with open(path) as file:
        record = json.load(file)
    return {"guests": guests, "asks_each": asks, "interfaces": interfaces,
            "seconds": round(took, 1), "peak_rss_mib": rss, "json_bytes": os.path.getsize(path),
            "guests_kept": len(record["guests"]),
            "guests_not_tracked": record.get("guests_not_tracked"),
            "guests_forgotten": record.get("guests_forgotten"),  # before 1.4.0
            "frames_seen": record["total"]["frames_seen"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--churn", type=at_least(1), default=200, metavar="N",
                        help="veth pairs added and deleted each round (default 200)")
    parser.add_argument("--rounds", type=at_least(1), default=3, metavar="R",
                        help="rounds of them (default 3)")
    parser.add_argument("--guests", type=at_least(16), default=4096, metavar="N",
                        help="made-up guests in the table, over 16 interfaces (default 4096)")
    parser.add_argument("--asks", type=at_least(1), default=32, metavar="N",
                        help="asks each, for as many addresses (default 32)")
    parser.add_argument("--tool", default=TOOL, metavar="PATH",
                        help="the arp_icmp_vlan0.py to measure (default: this repository's)")
    parser.add_argument("--json", type=json_path, default="bounds.json", metavar="FILE",
                        help="where to write the figures (default bounds.json)")
    args = parser.parse_args()
    require(PACKAGES)
    results = {"churn": churn(args.tool, args.churn, args.rounds),
               "table": table(args.tool, args.guests, args.asks,
                              os.path.abspath(args.json) + ".tool.json")}
    print(command_line())
    print(json.dumps(results, indent=1))
    with open(args.json, "w") as out:
        json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
