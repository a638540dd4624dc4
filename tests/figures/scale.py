#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Many guests, one tool: how far one process serving 'vh*' goes.

USAGE: sudo python3 tests/figures/scale.py [--guests 16,64,256,1000] [--pings 10]
                                           [--churn 200] [--storm 250] [--json FILE]
                                           [--fleet-interval SECONDS] [--tool PATH]

Three measurements, each in namespaces of its own, removed on every exit path
(not part of the pytest run: minutes):

serve   For each count N: one host namespace and N guest namespaces, each
        guest on its own veth pair (vh0..vhN-1 in the host, the same
        documentation address 198.51.100.1/24 in every guest), the tool
        started once on the pattern 'vh*' (start-up: from its start to its
        start-up line). Every guest pings 198.51.100.2 (ping -i 0.2): how
        many got every reply, round trips (avg, p99, max) once every ping
        runs (ping_all(): and p99 while they start), the tool's CPU time
        per reply and peak RSS; then how long the tool took to serve a new
        interface, from 'ip link set up' to the first ARP reply to a guest
        asking every 5 ms (tests/figures/benchmark.py's generator); and how
        long it took to stop (SIGTERM to its exit).
churn   On the largest of those testbeds, still served: --churn veth pairs
        added (vhc0..., their far ends in one namespace), up, served, then
        deleted, while guest 0 pings every 10 ms; its largest round trip
        and its lost pings say what serving and letting go cost the others.
storm   --storm guests on as many interfaces, no address, the tool with
        --dhcp --ra on 198.51.100.2/24 and 2001:db8::2/64; every guest's
        busybox udhcpc starts at the same moment (all wait on one pipe):
        each one's time from its start (its first DISCOVER follows at
        once) to its lease (the script's "bound"), and how many were leased.

--churn 0 or --storm 0 skips one; --guests '' skips serve (and churn).
"""

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))  # netlab

from netlab import BENCHMARK, TOOL, Process, at_least, json_path, report, require, run  # noqa: E402

GUEST_IP, TOOL_IP = "198.51.100.1", "198.51.100.2"

# What the script runs -> the Debian package that has it.
PACKAGES = {"ip": "iproute2", "ping": "iputils-ping", "nsenter": "util-linux",
            "busybox": "busybox"}


def batch(lines, namespace=None):
    """`ip -batch` of `lines` (in `namespace`): a thousand commands in one
    process, not a thousand processes."""
    with tempfile.NamedTemporaryFile("w", prefix="avz-scale-", suffix=".batch") as file:
        file.write("\n".join(lines) + "\n")
        file.flush()
        run("ip", *(["-n", namespace] if namespace else []), "-batch", file.name, timeout=600)


class Testbed:
    """A host namespace and N guests, each on its own veth pair: vhN in the
    host namespace, eth0 in guest N's; made with `ip -batch`, deleted on
    every exit path with every process started in them (by PID)."""

    def __init__(self, guests, address=GUEST_IP):
        suffix = os.urandom(3).hex()
        self.prefix, self.count, self.address = f"avzs{suffix}", guests, address
        self.host = f"{self.prefix}-h"
        self.guests, self.namespaces, self.processes = [], [], []
        self.stack = contextlib.ExitStack()

    def guest(self, number):
        return f"{self.prefix}-g{number}"

    def __enter__(self):
        self.stack.callback(self._delete)
        try:
            self.add_namespaces([self.host])
            run("ip", "-n", self.host, "link", "set", "lo", "up")
            self.add_guests(self.count, up=True)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        self.stack.close()

    def add_namespaces(self, names):
        self.namespaces += names  # first: a half-made batch is deleted too
        batch([f"netns add {name}" for name in names])

    def add_guests(self, count, up):
        """`count` more guests (their host ends left down unless `up`)."""
        first = len(self.guests)
        names = [self.guest(n) for n in range(first, first + count)]
        self.add_namespaces(names)
        batch([f"link add vh{n} netns {self.host} type veth peer name eth0 netns {name}"
               for n, name in zip(range(first, first + count), names)])
        for name in names:
            batch((["addr add %s/24 dev eth0" % self.address] if self.address else [])
                  + ["link set lo up", "link set eth0 up"], name)
        self.guests += names
        if up:
            self.set_up(range(first, first + count))
        return names

    def set_up(self, numbers, state="up"):
        batch([f"link set vh{n} {state}" for n in numbers], self.host)

    def start(self, namespace, *cmd, sysfs=False):
        """`cmd` in `namespace`, stopped with the testbed: by nsenter, as
        cheap as a fork, or if it reads /sys/class/net (`sysfs`: the tool),
        by ip netns exec, which mounts the namespace's own /sys."""
        enter = (["ip", "netns", "exec", namespace] if sysfs
                 else ["nsenter", f"--net=/run/netns/{namespace}"])
        process = Process(enter + list(cmd))
        self.processes.append(process)
        return process

    def _delete(self):
        for process in self.processes:  # each one, whatever another did
            with contextlib.suppress(RuntimeError, OSError):
                # A tool killed with 1,000 sockets open takes the kernel 12 s
                # to close them (a grace period each, one after the other).
                process.stop(signal.SIGKILL, timeout=60)
        if self.namespaces:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                batch([f"netns del {name}" for name in self.namespaces])
            for name in self.namespaces:  # whatever the batch left
                if os.path.exists(f"/run/netns/{name}"):
                    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def tool_usage(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/status") as status:
        rss = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024


def start_tool(bed, *options):
    """The tool (--tool) on 'vh*' in the host namespace, and its start-up:
    from its start to its start-up line."""
    started = time.monotonic()
    tool = bed.start(bed.host, sys.executable, TOOL_PATH[0], "-q", *options, "vh*", sysfs=True)
    tool.wait_for("Hit Ctrl-C", timeout=120)
    return tool, time.monotonic() - started


TOOL_PATH = [TOOL]  # --tool


def stop_tool(tool):
    stopping = time.monotonic()
    tool.stop(timeout=120)
    return time.monotonic() - stopping


def ping_all(guests, pings):
    """Every guest pings the tool every 0.2 s (ping -D: each reply stamped).
    Starting a thousand pings takes this 2-core machine about two seconds,
    which would be measured too: each ping runs WARM_UP seconds longer, and
    the round trips measured are each guest's first `pings` replies once
    every ping is running. What every ping said of itself: whether all its
    requests were answered (all of them, the warm-up's included)."""
    count = pings + int(WARM_UP / 0.2)
    processes = [subprocess.Popen(["nsenter", f"--net=/run/netns/{guest}", "ping", "-D", "-n",
                                   "-c", str(count), "-i", "0.2", "-W", "2", TOOL_IP],
                                  stdout=subprocess.PIPE, text=True) for guest in guests]
    all_running = time.time()  # ping -D stamps with the wall clock
    outputs = [p.communicate(timeout=count * 0.2 + 120)[0] for p in processes]
    steady, starting, complete = [], [], 0
    for out in outputs:
        stamped = [(float(stamp), float(rtt)) for stamp, rtt in
                   re.findall(r"\[([\d.]+)\] 64 bytes from .* time=([\d.]+) ms", out)]
        steady += [rtt for stamp, rtt in stamped if stamp > all_running + 0.2][:pings]
        starting += [rtt for stamp, rtt in stamped if stamp <= all_running + 0.2]
        complete += re.search(rf"\b{count} packets transmitted, {count} received", out) is not None
    return sorted(steady), sorted(starting), complete


WARM_UP = 4.0  # seconds each ping runs before it is measured (ping_all())


def percentile(times, share):
    return round(times[min(len(times) - 1, int(len(times) * share))], 3) if times else None


def serve(bed, tool, startup, pings):
    count = bed.count
    cpu_before, _ = tool_usage(tool.popen.pid)
    times, starting, complete = ping_all(bed.guests, pings)
    cpu_after, rss = tool_usage(tool.popen.pid)
    replies = count * (pings + int(WARM_UP / 0.2))
    # A new guest: from its interface coming up to the tool's first reply.
    new, = bed.add_guests(1, up=False)
    # The benchmark's generator asks every 5 ms and prints when the reply came.
    asker = bed.start(new, sys.executable, BENCHMARK, "--generate", "first-reply",
                      "--interface", "eth0", sysfs=True)
    asker.wait_for("ready")
    up_at = time.monotonic()
    bed.set_up([count])
    asker.wait(timeout=40)
    answered = json.loads(asker.output.strip().splitlines()[-1])
    return {
        "guests": count, "pings_each": pings, "start_up_s": round(startup, 2),
        "guests_with_every_reply": complete, "rtts_measured": len(times),
        "rtt_avg_ms": round(statistics.mean(times), 3) if times else None,
        "rtt_p99_ms": percentile(times, 0.99), "rtt_max_ms": times[-1] if times else None,
        "rtt_p99_while_pings_start_ms": percentile(starting, 0.99),
        "tool_cpu_us_per_reply": round((cpu_after - cpu_before) * 1e6 / max(1, replies), 1),
        "tool_peak_rss_mib": round(rss, 1),
        "new_interface_served_ms": round((answered - up_at) * 1000, 1) if answered else None,
    }


def churn(bed, tool, pairs):
    """`pairs` veth pairs added, up, served and deleted while guest 0 pings
    the tool every 10 ms; what guest 0 saw, and beside it, as the control,
    what a guest pinging the kernel of the tool's namespace saw (through
    ctl0, which 'vh*' does not match: the tool leaves it alone)."""
    far, control = f"{bed.prefix}-c", f"{bed.prefix}-k"
    bed.add_namespaces([far, control])
    run("ip", "link", "add", "ctl0", "netns", bed.host, "type", "veth", "peer", "name", "eth0",
        "netns", control)
    batch(["addr add 198.51.100.3/24 dev ctl0", "link set ctl0 up"], bed.host)
    batch([f"addr add {GUEST_IP}/24 dev eth0", "link set eth0 up"], control)
    pingers = [bed.start(bed.guests[0], "ping", "-n", "-i", "0.01", "-W", "1", TOOL_IP),
               bed.start(control, "ping", "-n", "-i", "0.01", "-W", "1", "198.51.100.3")]
    time.sleep(1)
    before = tool.output.count(": serving (matches")
    started = time.monotonic()
    batch([f"link add vhc{n} netns {bed.host} type veth peer name p{n} netns {far}"
           for n in range(pairs)])
    bed.set_up([f"c{n}" for n in range(pairs)])
    while tool.output.count(": serving (matches") < before + pairs:
        if time.monotonic() - started > 60:
            break
        time.sleep(0.01)
    served = time.monotonic() - started
    served_count = tool.output.count(": serving (matches") - before
    let_go_before = tool.output.count("; let go")
    deleting = time.monotonic()
    batch([f"link del vhc{n}" for n in range(pairs)], bed.host)
    while tool.output.count("; let go") < let_go_before + pairs:
        if time.monotonic() - deleting > 60:
            break
        time.sleep(0.01)
    let_go = time.monotonic() - deleting
    time.sleep(1)
    seen = []
    for pinger in pingers:
        pinger.stop(signal.SIGINT)
        out = pinger.output
        times = sorted(float(t) for t in re.findall(r"time=([\d.]+) ms", out))
        sent = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        seen.append((int(sent.group(1)) if sent else None,
                     int(sent.group(1)) - int(sent.group(2)) if sent else None,
                     times[-1] if times else None, percentile(times, 0.99)))
    (pings, lost, rtt_max, rtt_p99), (_, kernel_lost, kernel_max, kernel_p99) = seen
    return {
        "pairs": pairs, "served": served_count, "all_served_s": round(served, 2),
        "let_go": tool.output.count("; let go") - let_go_before, "all_let_go_s": round(let_go, 2),
        "other_guest_pings": pings, "other_guest_lost": lost,
        "other_guest_rtt_max_ms": rtt_max, "other_guest_rtt_p99_ms": rtt_p99,
        "kernel_lost": kernel_lost, "kernel_rtt_max_ms": kernel_max,
        "kernel_rtt_p99_ms": kernel_p99,
    }


UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in bound) date +%s.%N > "$AVZ_OUT/bound";; esac
exit 0
"""


def storm(guests, timeout):
    """`guests` udhcpc at once against --dhcp --ra; each one's time to its lease."""
    with Testbed(guests, address=None) as bed, \
            tempfile.TemporaryDirectory(prefix="avz-storm-") as home:
        tool, startup = start_tool(bed, "--ip", f"{TOOL_IP}/24", "--ip", "2001:db8::2/64",
                                   "--dhcp", "--ra")
        script = os.path.join(home, "script")
        with open(script, "w") as file:
            file.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o700)
        gate = os.path.join(home, "gate")
        os.mkfifo(gate)
        clients = []
        for n, guest in enumerate(bed.guests):
            out = os.path.join(home, str(n))
            os.mkdir(out)
            udhcpc = ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
                      "-s", script]
            clients.append(bed.start(guest, "env", f"AVZ_OUT={out}", "sh", "-c",
                                     f"cat {shlex.quote(gate)} >/dev/null; "
                                     f"date +%s.%N > \"$AVZ_OUT/start\"; "
                                     f"exec {shlex.join(udhcpc)}"))
        time.sleep(2)  # every client waiting at the gate
        with open(gate, "w"):
            pass  # opened and closed: every waiting cat reads its end at once
        for client in clients:
            with contextlib.suppress(RuntimeError):
                client.wait(timeout=timeout)
        times = []
        for n in range(guests):
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(home, str(n), "start")) as start, \
                        open(os.path.join(home, str(n), "bound")) as bound:
                    times.append(float(bound.read()) - float(start.read()))
        _, rss = tool_usage(tool.popen.pid)
        stop_tool(tool)
        lines = [line for line in tool.output.splitlines() if "budget" in line or "refused" in line]
        times.sort()
        return {
            "guests": guests, "start_up_s": round(startup, 2), "leased": len(times),
            "within_5s": sum(t <= 5 for t in times),
            "lease_s_median": round(statistics.median(times), 3) if times else None,
            "lease_s_p99": percentile(times, 0.99),
            "lease_s_max": round(times[-1], 3) if times else None,
            "tool_peak_rss_mib": round(rss, 1), "budget_or_cap_lines": lines,
        }


def guest_counts(text):
    """argparse type: '16,64,256' -> [16, 64, 256]; '' -> []."""
    try:
        return [at_least(1)(count) for count in text.split(",") if count]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of positive "
                                         f"integers: {text!r}") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=guest_counts, metavar="N,N,...", default="16,64,256",
                        help="guest counts to measure, one run each (default 16,64,256)")
    parser.add_argument("--pings", type=at_least(1), default=10,
                        help="echo requests from each guest (default 10)")
    parser.add_argument("--churn", type=at_least(0), default=200, metavar="PAIRS",
                        help="veth pairs added and removed on the largest testbed "
                             "(default 200; 0: none)")
    parser.add_argument("--storm", type=at_least(0), default=250, metavar="GUESTS",
                        help="guests whose DHCP clients start at once (default 250, at most "
                             "250: the /24's addresses; 0: none)")
    parser.add_argument("--json", type=json_path, metavar="FILE", default="scale.json",
                        help="where to write the results (default scale.json)")
    parser.add_argument("--fleet-interval", type=float, metavar="SECONDS",
                        help="serve with --metrics, --json and --json-interval SECONDS "
                             "(their files in a folder of the script's): what the "
                             "rewrites cost the guests")
    parser.add_argument("--tool", metavar="PATH", default=TOOL,
                        help="the tool to measure (default: this checkout's; another "
                             "version's file for a before and after)")
    args = parser.parse_args()
    TOOL_PATH[0] = os.path.abspath(args.tool)
    if args.storm > 250:
        parser.error("--storm: at most 250 (198.51.100.0/24 leases 253 addresses)")
    require(PACKAGES)
    results = {"serve": [], "churn": None, "storm": None}
    for number, count in enumerate(args.guests):
        print(f"{count} guests ...", flush=True)
        with Testbed(count) as bed, tempfile.TemporaryDirectory(prefix="avz-fleet-") as home:
            fleet = ("--metrics", os.path.join(home, "avz.prom"), "--json",
                     os.path.join(home, "avz.json"), "--json-interval",
                     str(args.fleet_interval)) if args.fleet_interval else ()
            try:
                tool, startup = start_tool(bed, *fleet)
            except RuntimeError as exc:  # it did not start: its last line says why
                why = str(exc).strip().splitlines()[-1]
                print(f"{count} guests: the tool did not start: {why}", flush=True)
                results["serve"].append({"guests": count, "did_not_start": why})
                continue
            results["serve"].append(serve(bed, tool, startup, args.pings))
            if args.churn and number == len(args.guests) - 1:
                print(f"churn: {args.churn} veth pairs beside {count + 1} guests ...", flush=True)
                results["churn"] = churn(bed, tool, args.churn)
                print(json.dumps(results["churn"]), flush=True)
            results["serve"][-1]["stop_s"] = round(stop_tool(tool), 2)
            results["serve"][-1]["replies_counted"] = sum(
                int(n) for n in re.findall(r"(\d+) replies sent", tool.output)[-1:])
        print(json.dumps(results["serve"][-1]), flush=True)
    if args.storm:
        print(f"storm: {args.storm} DHCP clients at once ...", flush=True)
        results["storm"] = storm(args.storm, timeout=30)
        print(json.dumps(results["storm"]), flush=True)
    header = ("guests", "every reply", "RTT avg ms", "RTT p99 ms", "RTT max ms",
              "p99 as pings start", "tool CPU us/reply", "tool peak RSS MiB",
              "new interface served ms", "start-up s", "stop s")
    rows = [header] + [(str(r["guests"]), f"{r['guests_with_every_reply']}/{r['guests']}",
                        str(r["rtt_avg_ms"]), str(r["rtt_p99_ms"]), str(r["rtt_max_ms"]),
                        str(r["rtt_p99_while_pings_start_ms"]),
                        str(r["tool_cpu_us_per_reply"]), str(r["tool_peak_rss_mib"]),
                        str(r["new_interface_served_ms"]), str(r["start_up_s"]),
                        str(r["stop_s"])) if "did_not_start" not in r else
                       (str(r["guests"]), "did not start",
                        *[""] * (len(header) - 3), r["did_not_start"][:70])
                       for r in results["serve"]]
    report(rows, results, args.json)
    if results["churn"]:
        c = results["churn"]
        print(f"churn: {c['served']}/{c['pairs']} served in {c['all_served_s']} s, "
              f"{c['let_go']} let go in {c['all_let_go_s']} s; the other guest: "
              f"{c['other_guest_pings']} pings, {c['other_guest_lost']} lost, RTT max "
              f"{c['other_guest_rtt_max_ms']} ms, p99 {c['other_guest_rtt_p99_ms']} ms; the "
              f"kernel's (the control): {c['kernel_lost']} lost, RTT max "
              f"{c['kernel_rtt_max_ms']} ms, p99 {c['kernel_rtt_p99_ms']} ms")
    if results["storm"]:
        s = results["storm"]
        print(f"storm: {s['leased']}/{s['guests']} leased, {s['within_5s']} within 5 s; "
              f"lease time median {s['lease_s_median']} s, p99 {s['lease_s_p99']} s, max "
              f"{s['lease_s_max']} s; tool start-up {s['start_up_s']} s, peak RSS "
              f"{s['tool_peak_rss_mib']} MiB; budget or cap lines: "
              f"{len(s['budget_or_cap_lines'])}")


if __name__ == "__main__":
    main()
