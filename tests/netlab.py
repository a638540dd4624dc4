# SPDX-License-Identifier: GPL-2.0-only
"""Throwaway network namespaces for the root-only tests.

A Lab is the tool's own VethPair (the one --self-test uses): two namespaces,
"host" (where the tool runs) and "guest" (the real Linux stack standing in
for a VM), joined by a veth pair, deleted on exit, on failure and on Ctrl-C.
The Lab adds the documentation addresses and the helpers the tests share.
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "arp_icmp_vlan0.py")
sys.path.insert(0, REPO)

from arp_icmp_vlan0 import Process, VethPair  # noqa: E402,F401 (Process: for the tests)
from arp_icmp_vlan0 import run_command as run  # noqa: E402

GUEST_IP = "198.51.100.1"
TOOL_IP = "198.51.100.2"
HOST_IF, GUEST_IF = "veth-host", "veth-guest"


def text_table(rows):
    """Rows of cells as aligned text, two spaces between columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def command_line():
    """The command that made a figures script's output, for its report."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    return f"command: sudo python3 {script} {' '.join(sys.argv[1:])}".rstrip()


def report(rows, results, path):
    """A figures script's end: the command, the table, the JSON file."""
    print(command_line())
    print(text_table(rows))
    with open(path, "w") as out:
        json.dump(results, out, indent=1)


class Lab(VethPair):
    def __init__(self, prefix="avzt", ipv6=False):
        """With ipv6=False the guest end has IPv6 disabled, so that its
        autoconfiguration chatter (DAD, MLD) does not reach the tool."""
        super().__init__(prefix, HOST_IF, GUEST_IF)
        self.ipv6 = ipv6

    def __enter__(self):
        super().__enter__()
        try:
            if not self.ipv6:
                self.in_guest("sysctl", "-qw", f"net.ipv6.conf.{GUEST_IF}.disable_ipv6=1")
            self.in_guest("ip", "addr", "add", f"{GUEST_IP}/24", "dev", GUEST_IF)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start_tool(self, *args, interface=HOST_IF):
        """The tool on the host end; returns once it is answering."""
        tool = self.start(self.host, sys.executable, TOOL, *args, interface)
        tool.wait_for("Hit Ctrl-C")
        return tool

    def start_capture(self, *expression, interface=GUEST_IF, ns=None):
        """tcpdump -n -e on the guest end; returns once it is listening."""
        capture = self.start(ns or self.guest, "tcpdump", "-n", "-e", "-l",
                             "--immediate-mode", "-i", interface, *expression)
        capture.wait_for("listening on")
        return capture


# -- argparse types shared by the figures scripts

def at_least(low):
    """argparse type: a whole number of at least `low`."""
    def whole_number(text):
        number = int(text)  # a ValueError is argparse's "invalid whole_number value"
        if number < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
        return number
    return whole_number


def above_zero(kind):
    """argparse type: a number of `kind` (int, float) above 0."""
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse's "invalid int value" on a typo
    return parse


def json_path(text):
    """argparse type: a file that can be created, checked before the runs
    (minutes) rather than after them."""
    folder = os.path.dirname(os.path.abspath(text))
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {folder} is not a "
                                         "writable folder")
    return text


def names_from(choices, what, split=lambda text: text.split(",")):
    """argparse type: 'a,b' -> ['a', 'b'] (or what `split` makes of it),
    each one of `choices` (before any ",property=value"), each once."""
    def parse(text):
        names = split(text)
        unknown = [name for name in names if name.split(",")[0] not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown[0]!r}: choose from "
                                             f"{', '.join(choices)}")
        if len(set(names)) < len(names):
            raise argparse.ArgumentTypeError(f"a {what} named twice: {text!r}")
        return names
    return parse
