#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Soak: a million echo requests through the tool; its memory before, during
and after.

USAGE: sudo python3 tests/figures/soak.py [--requests N] [--rate PPS]

Builds its own namespaces (removed on every exit path), starts the tool with
-q on the host end of a veth, and has the benchmark's load generator send N
echo requests (default 1,000,000) at PPS a second (default 40,000) from the
guest end, in ten chunks. After each chunk it prints the tool's resident set
size (VmRSS) and the replies so far. Memory should stay flat.
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))  # netlab

from netlab import BENCHMARK, GUEST_IF, HOST_IF, Lab, at_least, require  # noqa: E402

GUEST_MAC = "02:00:00:00:00:01"
TOOL_MAC = "02:76:6c:61:6e:30"
# What the script runs -> the Debian package that has it.
PACKAGES = {"ip": "iproute2", "sysctl": "procps"}


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # At least one request in each of the ten chunks.
    parser.add_argument("--requests", type=at_least(10), metavar="N", default=1_000_000,
                        help="echo requests to send, in ten chunks (default 1,000,000)")
    parser.add_argument("--rate", type=at_least(1), metavar="PPS", default=40_000,
                        help="requests a second (default 40,000)")
    args = parser.parse_args()
    require(PACKAGES)
    with Lab(prefix="avzs") as lab:
        lab.in_guest("ip", "link", "set", "dev", GUEST_IF, "address", GUEST_MAC)
        lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_IF}.disable_ipv6=1")
        tool = lab.start_tool("-q", "-4")
        pid = tool.popen.pid
        print(f"start: RSS {rss_mib(pid):.1f} MiB", flush=True)
        chunk, sent, received = args.requests // 10, 0, 0
        for _ in range(10):
            result = lab.in_guest(sys.executable, BENCHMARK,
                                  "--generate", "flood", "--peer-mac", TOOL_MAC,
                                  "--count", str(chunk), "--rate", str(args.rate),
                                  timeout=600)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            sent, received = sent + figures["sent"], received + figures["received"]
            print(f"after {sent:>9,} requests: RSS {rss_mib(pid):.1f} MiB, "
                  f"{received:,} replies ({figures['achieved_pps']:,} pps)", flush=True)
        tool.stop()
        print(tool.output.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
