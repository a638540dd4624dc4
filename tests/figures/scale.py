#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Many guests, one tool: how far one process serving 'vh*' goes.

USAGE: sudo python3 tests/figures/scale.py [--guests 16,64,256] [--pings 10] [--json FILE]

For each count N: one host namespace and N guest namespaces, each guest on
its own veth pair (vh0..vhN-1 in the host, the same documentation address
198.51.100.1/24 in every guest), the tool started once on the pattern 'vh*'.
Then every guest pings 198.51.100.2 at once (ping -i 0.2) and the script
reports: how many guests got every reply, round trips (avg, p99) over all
pings, the tool's CPU time per reply and peak RSS, and how long the tool
took to serve a new interface: from 'ip link set up' to the first ARP reply
to a guest asking every 5 ms (tests/figures/benchmark.py's generator).
Everything is removed on every exit path. Not part of the pytest run: it
takes minutes.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))  # netlab

from netlab import BENCHMARK, TOOL, VethPair, at_least, json_path, report, require, run  # noqa: E402

GUEST_IP, TOOL_IP = "198.51.100.1", "198.51.100.2"

# What the script runs -> the Debian package that has it.
PACKAGES = {"ip": "iproute2", "ping": "iputils-ping"}


class Testbed:
    """A host namespace and N guests, each on its own veth pair: vhN in the
    host namespace, eth0 in guest N's. Each pair is a VethPair (the tool's,
    as netlab's Lab), deleted on every exit path; as a VethPair joins two
    namespaces of its own, pair N's host end is moved into pair 0's host
    namespace, the one the tool serves, and pair N's own stays empty."""

    def __init__(self, guests):
        self.count, self.pairs = guests, []
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            for _ in range(self.count):
                self.add_guest(up=True)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        self.stack.close()  # the pairs, the last one made first, their processes stopped

    @property
    def host(self):
        return self.pairs[0].host

    @property
    def guests(self):
        return [pair.guest for pair in self.pairs]

    def add_guest(self, up):
        """Guest number len(pairs), on vhN; vhN left down unless `up`."""
        number = len(self.pairs)
        pair = self.stack.enter_context(VethPair("avzs", f"vh{number}", "eth0"))
        self.pairs.append(pair)
        run("ip", "-n", pair.guest, "addr", "add", f"{GUEST_IP}/24", "dev", "eth0")
        if number:  # into the tool's namespace, which takes it down
            run("ip", "-n", pair.host, "link", "set", f"vh{number}", "netns", self.host)
        run("ip", "-n", self.host, "link", "set", f"vh{number}", "up" if up else "down")
        return pair

    def start(self, ns, *cmd):
        """`cmd` in namespace `ns`, stopped with the testbed."""
        return self.pairs[0].start(ns, *cmd)


def tool_usage(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/status") as status:
        rss = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024


def measure(count, pings):
    with Testbed(count) as bed:
        started = time.monotonic()
        tool = bed.start(bed.host, sys.executable, TOOL, "-q", "vh*")
        tool.wait_for("Hit Ctrl-C", timeout=60)
        startup = time.monotonic() - started
        cpu_before, _ = tool_usage(tool.popen.pid)
        ping = [subprocess.Popen(["ip", "netns", "exec", guest, "ping", "-n", "-c", str(pings),
                                  "-i", "0.2", "-W", "2", TOOL_IP], stdout=subprocess.PIPE,
                                 text=True) for guest in bed.guests]
        outputs = [p.communicate(timeout=pings + 60)[0] for p in ping]
        cpu_after, rss = tool_usage(tool.popen.pid)
        times = [float(t) for out in outputs for t in re.findall(r"time=([\d.]+) ms", out)]
        complete = sum(out.count(f"64 bytes from {TOOL_IP}") == pings for out in outputs)
        # A new guest: from its interface coming up to the tool's first reply.
        new = bed.add_guest(up=False)
        # The benchmark's generator asks every 5 ms and prints when the reply came.
        asker = bed.start(new.guest, sys.executable, BENCHMARK, "--generate",
                          "first-reply", "--interface", "eth0")
        asker.wait_for("ready")
        up_at = time.monotonic()
        run("ip", "-n", bed.host, "link", "set", f"vh{count}", "up")
        asker.wait(timeout=40)
        answered = json.loads(asker.output.strip().splitlines()[-1])
        tool.stop()
        replies = sum(int(n) for n in re.findall(r"(\d+) replies sent", tool.output)[-1:])
        times.sort()
        return {
            "guests": count, "pings_each": pings, "start_up_s": round(startup, 2),
            "guests_with_every_reply": complete,
            "rtt_avg_ms": round(statistics.mean(times), 3) if times else None,
            "rtt_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)
            if times else None,
            "tool_cpu_us_per_reply": round((cpu_after - cpu_before) * 1e6
                                           / max(1, len(times)), 1),
            "tool_peak_rss_mib": round(rss, 1),
            "new_interface_served_ms": round((answered - up_at) * 1000, 1)
            if answered else None,
            "replies_counted": replies,
        }


def guest_counts(text):
    """argparse type: '16,64,256' -> [16, 64, 256]."""
    try:
        return [at_least(1)(count) for count in text.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of positive "
                                         f"integers: {text!r}") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=guest_counts, metavar="N,N,...", default="16,64,256",
                        help="guest counts to measure, one run each (default 16,64,256)")
    parser.add_argument("--pings", type=at_least(1), default=10,
                        help="echo requests from each guest (default 10)")
    parser.add_argument("--json", type=json_path, metavar="FILE", default="scale.json",
                        help="where to write the results (default scale.json)")
    args = parser.parse_args()
    require(PACKAGES)
    results = []
    for count in args.guests:
        print(f"{count} guests ...", flush=True)
        results.append(measure(count, args.pings))
        print(json.dumps(results[-1]), flush=True)
    header = ("guests", "every reply", "RTT avg ms", "RTT p99 ms", "tool CPU us/reply",
              "tool peak RSS MiB", "new interface served ms", "start-up s")
    rows = [header] + [(str(r["guests"]), f"{r['guests_with_every_reply']}/{r['guests']}",
                        str(r["rtt_avg_ms"]), str(r["rtt_p99_ms"]),
                        str(r["tool_cpu_us_per_reply"]), str(r["tool_peak_rss_mib"]),
                        str(r["new_interface_served_ms"]), str(r["start_up_s"]))
                       for r in results]
    report(rows, results, args.json)


if __name__ == "__main__":
    main()
