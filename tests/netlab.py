# SPDX-License-Identifier: GPL-2.0-only
"""Throwaway network namespaces for the root-only tests.

A Lab is two namespaces, "host" (where the tool runs) and "guest" (the real
Linux stack standing in for a VM), joined by a veth pair, with documentation
addresses. Names carry a random suffix; everything is deleted on exit, on
failure and on Ctrl-C (and, as a last resort, at interpreter exit).
"""

import atexit
import os
import select
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "arp_icmp_vlan0.py")

GUEST_IP = "198.51.100.1"
TOOL_IP = "198.51.100.2"
HOST_IF, GUEST_IF = "veth-host", "veth-guest"

_live_namespaces = set()


def _delete_namespace(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _live_namespaces.discard(name)


atexit.register(lambda: [_delete_namespace(ns) for ns in list(_live_namespaces)])


def run(*cmd, check=True, timeout=30):
    return subprocess.run(cmd, check=check, capture_output=True, text=True,
                          timeout=timeout)


class Process:
    """A background command whose output is collected; stop() by PID."""

    def __init__(self, cmd):
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        os.set_blocking(self.popen.stdout.fileno(), False)
        self.output = ""

    def _read(self, timeout):
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        chunk = self.popen.stdout.read() if ready else ""
        self.output += chunk or ""
        return chunk

    def wait_for(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} after {timeout}s in:\n{self.output}")
            if not self._read(remaining) and self.popen.poll() is not None:
                self._read(0)
                if text not in self.output:
                    raise AssertionError(f"exited {self.popen.returncode} "
                                         f"before {text!r}:\n{self.output}")
        return self.output

    def wait(self, timeout=10):
        """Wait for the process to end by itself; return its exit status."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        if self.popen.poll() is None:
            raise AssertionError(f"still running after {timeout}s:\n{self.output}")
        self._read(0)
        return self.popen.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.wait(timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()


class Lab:
    def __init__(self, prefix="avzt", ipv6=False):
        """With ipv6=False the guest end has IPv6 disabled, so that its
        autoconfiguration chatter (DAD, MLD) does not reach the tool."""
        self.ipv6 = ipv6
        suffix = os.urandom(4).hex()
        self.host, self.guest = f"{prefix}-h-{suffix}", f"{prefix}-g-{suffix}"
        self.processes = []

    def __enter__(self):
        try:
            for ns in (self.host, self.guest):
                run("ip", "netns", "add", ns)
                _live_namespaces.add(ns)
            run("ip", "link", "add", HOST_IF, "netns", self.host, "type", "veth",
                "peer", "name", GUEST_IF, "netns", self.guest)
            run("ip", "-n", self.guest, "addr", "add", f"{GUEST_IP}/24",
                "dev", GUEST_IF)
            if not self.ipv6:
                self.in_guest("sysctl", "-qw",
                              f"net.ipv6.conf.{GUEST_IF}.disable_ipv6=1")
            for ns, dev in ((self.host, HOST_IF), (self.guest, GUEST_IF),
                            (self.host, "lo"), (self.guest, "lo")):
                run("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.stop(signal.SIGKILL)
        for ns in (self.host, self.guest):
            _delete_namespace(ns)

    def in_host(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.host, *cmd, **kw)

    def in_guest(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.guest, *cmd, **kw)

    def start(self, ns, *cmd):
        process = Process(["ip", "netns", "exec", ns, *cmd])
        self.processes.append(process)
        return process

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
