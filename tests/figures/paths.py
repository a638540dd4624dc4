#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""What lies between the switch and the guest: which paths keep, strip or
change the tool's VLAN-0 tag, and what the tool's verdict says behind each.

USAGE: sudo python3 tests/figures/paths.py [--paths direct,bridge,...] [--timeout 15]
                                           [--vm-timeout 120] [--json FILE]

The tool runs in a "tool" namespace, the guest in a "guest" namespace (for
every path but the direct one, a "switch" namespace in between), all made
here with documentation addresses (the guest 198.51.100.1/24 pings the
tool's 198.51.100.2) and deleted on every exit path. The paths:

  direct         the tool's veth straight to the guest (the control)
  bridge         a Linux bridge (vlan_filtering 0)
  bridge-vf      the same with vlan_filtering 1: needs CONFIG_BRIDGE_VLAN_FILTERING,
                 reported as not run where the kernel lacks it
  macvlan        a macvlan (mode bridge) on the switch end of the tool's veth, in
                 the guest namespace
  ovs, ovs-never, ovs-if-nonzero, ovs-always
                 Open vSwitch's userspace datapath (datapath_type=netdev, the
                 bridge's default flow: actions=NORMAL), with the guest port's
                 other_config:priority-tags unset or set to that value. OVS is
                 not installed: its Debian packages are fetched with apt-get
                 download into tests/figures/.cache/ovs and run from there,
                 ovsdb-server and ovs-vswitchd inside the switch namespace with
                 private directories, stopped by PID
  macvtap-e1000, macvtap-virtio
                 a qemu guest (TCG, tests/vm/guest.py's kernel and initramfs) on a
                 macvtap (mode bridge) as libvirt's <interface type='direct'>
                 attaches it: -netdev tap,fd=3 on its /dev/tapN, NIC e1000 or
                 virtio-net-pci

For each path, with the tool at --prio 0 and --prio 5 (VLAN 0): what the
guest receives (tcpdump -n -e on its interface: the tag kept, stripped or
changed) and the tool's verdict (--until-verdict --timeout, exit status) for
two namespace guests: the Linux stack as it is, which takes a VLAN-0 frame
as untagged and so accepts whether the tag arrived or not, and the same with
an nftables netdev ingress rule 'vlan id 0 drop', which drops every
priority-tagged frame it sees. For a VM, the tool runs until the guest has
powered off (without --until-verdict) and the guest's own count of echo
replies is shown beside the verdict. A path whose prerequisites are
missing (the OVS download, qemu, a guest kernel) is listed as not run,
with why. Takes a few minutes; not part of the pytest run.
"""

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "lib"))  # netlab, which adds the tool's folder

from netlab import (GUEST_IP, TOOL, TOOL_IP, Process, Unavailable, above_zero,  # noqa: E402
                    from_tool, json_path, library_path, names_from, report, require, run,
                    unpacked)

CACHE = os.path.join(HERE, ".cache")
TOOL_IF, GUEST_IF = "veth-tool", "veth-guest"
NFT_TABLE = "avzp"
PRIOS = (0, 5)
# The two namespace guests: name -> what the table calls it.
GUESTS = {"linux": "Linux guest", "nft": "guest dropping VID 0 (nft)"}
PATHS = {
    "direct": "veth, tool to guest (control)",
    "bridge": "Linux bridge, vlan_filtering 0",
    "bridge-vf": "Linux bridge, vlan_filtering 1",
    "macvlan": "macvlan, mode bridge",
    "ovs": "OVS netdev, NORMAL",
    "ovs-never": "OVS netdev, priority-tags=never",
    "ovs-if-nonzero": "OVS netdev, priority-tags=if-nonzero",
    "ovs-always": "OVS netdev, priority-tags=always",
    "macvtap-e1000": "macvtap, mode bridge: qemu e1000",
    "macvtap-virtio": "macvtap, mode bridge: qemu virtio-net-pci",
}
VM_NICS = {"macvtap-e1000": "e1000", "macvtap-virtio": "virtio-net-pci"}
# What the script runs -> the Debian package that has it (qemu, apt-get and
# dpkg-deb are needed by some paths only: without them those are not run).
PACKAGES = {"ip": "iproute2", "ping": "iputils-ping", "tcpdump": "tcpdump", "nft": "nftables"}

# Open vSwitch, unpacked, never installed (its postinst would start the
# host's daemons): the packages, and those of libraries the system may lack.
OVS_PACKAGES = ("openvswitch-switch", "openvswitch-common", "libxdp1")
OVS_LIBRARIES = {"libxdp.so.1": "libxdp1", "libbpf.so.1": "libbpf1",
                 "libunbound.so.8": "libunbound8", "libcap-ng.so.0": "libcap-ng0",
                 "libnuma.so.1": "libnuma1", "libssl.so.3": "libssl3",
                 "libcrypto.so.3": "libssl3", "libevent-2.1.so.7": "libevent-2.1-7"}
OVS_BINARIES = {"ovs-vswitchd": "usr/lib/openvswitch-switch/ovs-vswitchd",
                "ovsdb-server": "usr/sbin/ovsdb-server", "ovsdb-tool": "usr/bin/ovsdb-tool",
                "ovs-vsctl": "usr/bin/ovs-vsctl", "ovs-appctl": "usr/bin/ovs-appctl",
                "ovs-ofctl": "usr/bin/ovs-ofctl"}
OVS_SCHEMA = "usr/share/openvswitch/vswitch.ovsschema"

TAG = re.compile(r"ethertype 802\.1Q \(0x8100\), length \d+: vlan (\d+), p (\d+)")


class NotRun(Exception):
    """A path's prerequisite is missing: the row says "not run: <why>"."""


def _terminate(signum, frame):
    # SystemExit, not death: every `finally` below runs, so the namespaces
    # and the processes go on SIGTERM and SIGHUP as on Ctrl-C.
    sys.exit(128 + signum)


def gist(text):
    """The last non-empty line of `text` (an error's own words)."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "?"


# -- namespaces and links

class Net:
    """Three throwaway namespaces, tool, switch and guest (avzp-HEX-t/-s/-g),
    and the processes started in them, stopped by PID, then the namespaces
    deleted, on every exit path."""

    def __init__(self):
        suffix = os.urandom(4).hex()
        self.tool, self.switch, self.guest = (f"avzp-{suffix}-{role}" for role in "tsg")
        self.made, self.processes = [], []
        self.scratch = None
        self.ovs = None  # an OVS path's switch

    def __enter__(self):
        try:
            self.scratch = tempfile.mkdtemp(prefix=f"avzp-{self.tool[5:13]}-")
            for ns in (self.tool, self.switch, self.guest):
                run("ip", "netns", "add", ns)
                self.made.append(ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        try:
            for process in reversed(self.processes):
                process.stop()
        finally:
            for ns in self.made:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def start(self, ns, *cmd, env=()):
        """`cmd` in `ns`; `env`: NAME=VALUE words for its environment. The
        PID is the command's own (env and ip netns exec exec it)."""
        process = Process(["env", *env, "ip", "netns", "exec", ns, *cmd] if env else
                          ["ip", "netns", "exec", ns, *cmd])
        self.processes.append(process)
        return process

    def quiet(self):
        """No IPv6 on any interface: no DAD, MLD or router solicitations."""
        for ns in self.made:
            run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")


def veth(ns_a, name_a, ns_b, name_b):
    run("ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b,
        "netns", ns_b)
    for ns, name in ((ns_a, name_a), (ns_b, name_b)):
        run("ip", "-n", ns, "link", "set", name, "up")


# -- the paths: each builds its links in `net` and returns the guest's interface

def direct(net):
    veth(net.tool, TOOL_IF, net.guest, GUEST_IF)
    return GUEST_IF


def bridge(net, filtering):
    veth(net.tool, TOOL_IF, net.switch, "sw-tool")
    veth(net.switch, "sw-guest", net.guest, GUEST_IF)
    # No vlan_filtering word at all when it is to stay 0: a kernel without
    # CONFIG_BRIDGE_VLAN_FILTERING refuses even "vlan_filtering 0".
    run("ip", "-n", net.switch, "link", "add", "br0", "type", "bridge")
    if filtering:
        tried = run("ip", "-n", net.switch, "link", "set", "br0", "type", "bridge",
                    "vlan_filtering", "1", check=False)
        if tried.returncode != 0:
            # A kernel without CONFIG_BRIDGE_VLAN_FILTERING, as this one.
            raise NotRun(f"vlan_filtering 1 unsupported here ({gist(tried.stderr)})")
    for port in ("sw-tool", "sw-guest"):
        run("ip", "-n", net.switch, "link", "set", port, "master", "br0")
    run("ip", "-n", net.switch, "link", "set", "br0", "up")
    return GUEST_IF


def macvlan(net):
    veth(net.tool, TOOL_IF, net.switch, "sw-tool")
    run("ip", "-n", net.switch, "link", "add", "link", "sw-tool", "name", "mv-guest", "type",
        "macvlan", "mode", "bridge")
    run("ip", "-n", net.switch, "link", "set", "mv-guest", "netns", net.guest)
    run("ip", "-n", net.guest, "link", "set", "mv-guest", "up")
    return "mv-guest"


# -- Open vSwitch, from its Debian packages, unpacked into the cache

def ovs_tree():
    """The unpacked OVS tree (netlab.unpacked); NotRun if it cannot be had."""
    try:
        return unpacked(os.path.join(CACHE, "ovs"), OVS_PACKAGES, list(OVS_BINARIES.values()),
                        OVS_LIBRARIES)
    except Unavailable as why:
        raise NotRun(str(why)) from None


class OVS:
    """ovsdb-server and ovs-vswitchd started by hand in `net`'s switch
    namespace, every file of theirs in a private folder; net stops them."""

    def __init__(self, net, root):
        self.net, self.root = net, root
        self.home = os.path.join(net.scratch, "ovs")
        self.dirs = {name: os.path.join(self.home, name) for name in ("run", "db", "log", "etc")}
        for folder in self.dirs.values():
            os.makedirs(folder)
        self.env = [f"LD_LIBRARY_PATH={library_path(root)}",
                    f"OVS_RUNDIR={self.dirs['run']}", f"OVS_DBDIR={self.dirs['db']}",
                    f"OVS_LOGDIR={self.dirs['log']}", f"OVS_SYSCONFDIR={self.dirs['etc']}",
                    f"OVS_PKGDATADIR={os.path.join(root, 'usr', 'share', 'openvswitch')}"]
        self.socket = os.path.join(self.dirs["run"], "db.sock")
        database = os.path.join(self.dirs["db"], "conf.db")
        self.run("ovsdb-tool", "create", database, os.path.join(root, OVS_SCHEMA))
        run_dir, log_dir = self.dirs["run"], self.dirs["log"]
        self.db = net.start(net.switch, self.binary("ovsdb-server"), database,
                            f"--remote=punix:{self.socket}",
                            f"--unixctl={run_dir}/ovsdb-server.ctl",
                            f"--pidfile={run_dir}/ovsdb-server.pid",
                            f"--log-file={log_dir}/ovsdb-server.log", env=self.env)
        self._wait_for(self.socket, self.db)
        self.vsctl("--no-wait", "init")
        self.control = f"{run_dir}/ovs-vswitchd.ctl"
        self.switchd = net.start(net.switch, self.binary("ovs-vswitchd"), f"unix:{self.socket}",
                                 f"--unixctl={self.control}",
                                 f"--pidfile={run_dir}/ovs-vswitchd.pid",
                                 f"--log-file={log_dir}/ovs-vswitchd.log", env=self.env)
        self._wait_for(self.control, self.switchd)

    def binary(self, name):
        return os.path.join(self.root, OVS_BINARIES[name])

    def _wait_for(self, path, process, timeout=15):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not appear:\n{process.output}")
            time.sleep(0.05)

    def run(self, name, *args):
        return run("env", *self.env, "ip", "netns", "exec", self.net.switch,
                   self.binary(name), *args)

    def vsctl(self, *args):
        return self.run("ovs-vsctl", f"--db=unix:{self.socket}", "--timeout=15", *args).stdout

    def appctl(self, *args):
        return self.run("ovs-appctl", "-t", self.control, *args).stdout


def ovs(net, priority_tags):
    veth(net.tool, TOOL_IF, net.switch, "sw-tool")
    veth(net.switch, "sw-guest", net.guest, GUEST_IF)
    switch = OVS(net, ovs_tree())
    switch.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                 "--", "add-port", "br0", "sw-tool", "--", "add-port", "br0", "sw-guest")
    if priority_tags:
        switch.vsctl("set", "port", "sw-guest", f"other_config:priority-tags={priority_tags}")
    net.ovs = switch
    return GUEST_IF


# -- one run: the tool, a capture on the guest's interface, the guest's ping

def describe(lines, prio):
    """What the guest received of the tool's frames (tcpdump -n -e lines)."""
    if not lines:
        return "nothing"
    kinds = {}
    for line in lines:
        found = TAG.search(line)
        kind = f"vlan {found.group(1)}, p {found.group(2)}" if found else "untagged"
        kinds[kind] = kinds.get(kind, 0) + 1
    if len(kinds) > 1:
        return ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    kind = next(iter(kinds))
    sent = f"vlan 0, p {prio}"
    return (f"{kind} (stripped)" if kind == "untagged" else
            f"{kind} (kept)" if kind == sent else f"{kind} (changed from {sent})")


def capture(net, ns, interface):
    process = net.start(ns, "tcpdump", "-n", "-e", "-l", "--immediate-mode", "-i", interface,
                        "not", "ip6")
    process.wait_for("listening on")
    return process


def guest_run(net, guest_if, prio, guest, timeout):
    """The tool at --prio `prio` with --until-verdict, the guest (`guest`, a
    key of GUESTS) pinging it; what the guest's tcpdump saw and the verdict."""
    run("ip", "-n", net.guest, "neigh", "flush", "dev", guest_if)
    if guest == "nft":
        nft = ("ip", "netns", "exec", net.guest, "nft")
        run(*nft, "add", "table", "netdev", NFT_TABLE)
        run(*nft, "add", "chain", "netdev", NFT_TABLE, "ingress",
            f"{{ type filter hook ingress device {guest_if} priority 0; }}")
        run(*nft, "add", "rule", "netdev", NFT_TABLE, "ingress", "vlan", "id", "0", "drop")
    if net.ovs:  # no datapath flow left from the run before
        net.ovs.appctl("dpctl/del-flows")
    summary = os.path.join(net.scratch, f"summary-{prio}-{guest}.json")
    seen = capture(net, net.guest, guest_if)
    try:
        tool = net.start(net.tool, sys.executable, TOOL, "-q", "--prio", str(prio), "--ip",
                         TOOL_IP, "--until-verdict", "--timeout", str(timeout), "--json",
                         summary, TOOL_IF)
        tool.wait_for("Hit Ctrl-C")
        pinger = net.start(net.guest, "ping", "-n", "-c", str(int(timeout * 2) + 2), "-i", "0.5",
                           "-W", "1", TOOL_IP)
        try:
            status = tool.wait(timeout + 20)
        finally:
            pinger.stop()
        time.sleep(0.3)  # the capture's last lines
    finally:
        seen.stop()
        if guest == "nft":
            run("ip", "netns", "exec", net.guest, "nft", "delete", "table", "netdev", NFT_TABLE,
                check=False)
    if status not in (0, 3, 4):
        raise RuntimeError(f"the tool exited {status}:\n{tool.output}")
    with open(summary) as file:
        guests = json.load(file)["guests"]
    lines = from_tool(seen.output)
    return {"received": describe(lines, prio), "frames": lines, "exit_status": status,
            "verdict": guests[0]["verdict"] if guests else None,
            "line": guests[0]["line"] if guests else None}


def namespace_row(name, prio, timeout, built):
    """Both namespace guests behind path `name` at --prio `prio`."""
    net, guest_if = built
    results = {guest: guest_run(net, guest_if, prio, guest, timeout) for guest in GUESTS}
    received = {results[guest]["received"] for guest in GUESTS}
    row = {"path": name, "what": PATHS[name], "prio": prio,
           "received": received.pop() if len(received) == 1 else
           "; ".join(f"{guest}: {results[guest]['received']}" for guest in GUESTS),
           "guests": results}
    if name.startswith("ovs"):
        row["openflow"] = net.ovs.run("ovs-ofctl", "dump-flows", f"unix:{net.ovs.dirs['run']}"
                                      "/br0.mgmt", "--no-stats").stdout.strip()
    return row


def build(name, net):
    builders = {"direct": direct, "bridge": lambda n: bridge(n, False),
                "bridge-vf": lambda n: bridge(n, True), "macvlan": macvlan,
                "ovs": lambda n: ovs(n, None),
                "ovs-never": lambda n: ovs(n, "never"),
                "ovs-if-nonzero": lambda n: ovs(n, "if-nonzero"),
                "ovs-always": lambda n: ovs(n, "always")}
    guest_if = builders[name](net)
    net.quiet()
    run("ip", "-n", net.guest, "addr", "add", f"{GUEST_IP}/24", "dev", guest_if)
    return guest_if


# -- a qemu guest on a macvtap

def vm_prerequisites():
    """tests/vm/guest.py's module, its kernel and initramfs; NotRun if a
    piece is missing."""
    if not shutil.which("qemu-system-x86_64"):
        raise NotRun("needs qemu-system-x86_64 (apt install qemu-system-x86)")
    if not os.path.exists("/bin/busybox"):
        raise NotRun("needs /bin/busybox (apt install busybox-static)")
    sys.path.insert(0, os.path.join(TESTS, "vm"))
    try:
        import guest
        guest_kernel = guest.kernel()
        return guest, guest_kernel, guest.initramfs(guest_kernel.modules)
    except Exception as error:  # noqa: BLE001 - whatever it is, the row says it
        raise NotRun(f"the guest kernel or initramfs: {gist(error)}") from None


def vm_row(name, prio, timeout, vm):
    guest, guest_kernel, initrd = vm
    nic = VM_NICS[name]
    with Net() as net:
        veth(net.tool, TOOL_IF, net.switch, "sw-tool")
        run("ip", "-n", net.switch, "link", "add", "link", "sw-tool", "name", "mvt-guest",
            "address", guest.GUEST_MAC, "type", "macvtap", "mode", "bridge")
        run("ip", "-n", net.switch, "link", "set", "mvt-guest", "up")
        net.quiet()
        # /dev/tapN (N: its ifindex) is the kernel's; a node of our own for
        # the same device, as an ifindex is only unique in its namespace.
        sysfs = ("ip", "netns", "exec", net.switch, "cat")
        index = run(*sysfs, "/sys/class/net/mvt-guest/ifindex").stdout.strip()
        major, minor = run(*sysfs, f"/sys/class/net/mvt-guest/macvtap/tap{index}/dev"
                           ).stdout.strip().split(":")
        node = os.path.join(net.scratch, f"tap{index}")
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(int(major), int(minor)))
        summary = os.path.join(net.scratch, "summary.json")
        seen = capture(net, net.switch, "mvt-guest")
        tool = net.start(net.tool, sys.executable, TOOL, "-q", "-4", "--prio", str(prio), "--ip",
                         TOOL_IP, "--timeout", str(timeout + 30), "--json", summary, TOOL_IF)
        tool.wait_for("Hit Ctrl-C")
        accel = os.environ.get("ARP_ICMP_VLAN0_VM_ACCEL", "tcg")
        qemu = ["qemu-system-x86_64", "-accel", accel, "-m", "256", "-nographic", "-no-reboot",
                "-nodefaults", "-serial", "stdio", "-kernel", guest_kernel.vmlinuz,
                "-initrd", initrd, "-append",
                "console=ttyS0 panic=-1 quiet ipv6.disable=1 avz.mode=normal avz.family=4 "
                "avz.do=ping avz.wait=20",
                "-netdev", "tap,id=net0,fd=3",
                "-device", f"{nic},netdev=net0,mac={guest.GUEST_MAC},romfile="]
        # In the (empty) guest namespace: qemu reaches the macvtap by its fd alone.
        machine = net.start(net.guest, "sh", "-c", f"exec {shlex.join(qemu)} "
                            f"3<>{shlex.quote(node)} </dev/null")
        machine.wait(timeout)
        tool.stop()
        time.sleep(0.3)
        seen.stop()
        with open(summary) as file:
            guests = json.load(file)["guests"]
    console = machine.output
    result = guest.result_of(console)
    lines = from_tool(seen.output)
    verdict = guests[0]["verdict"] if guests else None
    replies = f"{result[1]}/3 whole replies" if result else "no result line"
    return {"path": name, "what": PATHS[name], "prio": prio, "nic": nic,
            "kernel": guest.kernel_of(console), "received": describe(lines, prio),
            "guests": {"vm": {"verdict": verdict, "whole_replies": result and result[1],
                              "received": describe(lines, prio), "frames": lines,
                              "line": guests[0]["line"] if guests else None,
                              "summary": f"{verdict or 'no verdict'}, {replies}"}}}


# -- the table

def cell(result):
    if "summary" in result:
        return result["summary"]
    return f"{result['verdict'] or 'no verdict'} (exit {result['exit_status']})"


def table(results):
    header = ["path", "--prio", "the guest receives"] + list(GUESTS.values())
    rows = [header]
    for row in results:
        prio = "-" if row["prio"] is None else str(row["prio"])
        if "not_run" in row or "error" in row:
            why = f"not run: {row['not_run']}" if "not_run" in row else f"failed: {row['error']}"
            rows.append([row["what"], prio, why, "-", "-"])
        elif "vm" in row["guests"]:
            rows.append([row["what"], prio, row["received"], cell(row["guests"]["vm"]), "-"])
        else:
            rows.append([row["what"], prio, row["received"]] +
                        [cell(row["guests"][guest]) for guest in GUESTS])
    return rows


NOTES = """\
notes: the guest receives: tcpdump -n -e on the guest's interface (for a VM, on
the macvtap), frames from the tool's MAC; kept/stripped/changed against the
tag sent (vlan 0, p PRIO). A Linux stack takes a VLAN-0 frame as untagged, so
the Linux guest accepts whether the tag arrived or not; the nft guest drops
every VID-0 frame it sees, so it shows the tool's verdict: behind a path that
strips the tag it too is judged "accepts" - the verdict says nothing about a
tag the guest never saw. VM rows: the tool runs until the guest powers off
(no --until-verdict); the guest's own count of whole echo replies beside it."""


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="paths: " + "; ".join(f"{name}: {what}" for name, what in PATHS.items()))
    parser.add_argument("--paths", type=names_from(list(PATHS), "path"),
                        default=list(PATHS), metavar="LIST",
                        help=f"the paths to run, comma-separated, of {', '.join(PATHS)} "
                             "(default: all, in that order)")
    parser.add_argument("--timeout", type=above_zero(float), metavar="SECONDS", default=15,
                        help="the tool's --timeout for each namespace guest, with "
                             "--until-verdict (default 15)")
    parser.add_argument("--vm-timeout", type=above_zero(float), metavar="SECONDS", default=120,
                        help="how long a VM guest may take to boot, ping and power off "
                             "(default 120)")
    parser.add_argument("--json", type=json_path, metavar="FILE", default="paths.json",
                        help="where to write the results (default paths.json)")
    args = parser.parse_args()
    require(PACKAGES)
    if importlib.util.find_spec("scapy") is None:
        sys.exit(f"paths.py: error: the tool needs Scapy under {sys.executable} "
                 "(apt install python3-scapy)")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    results, vm = [], None
    for name in args.paths:
        for prio in PRIOS:
            row = {"path": name, "what": PATHS[name], "prio": prio}
            try:
                if name in VM_NICS:
                    if vm is None:
                        vm = vm_prerequisites()
                    if isinstance(vm, NotRun):
                        raise vm
                    row = vm_row(name, prio, args.vm_timeout, vm)
                else:
                    with Net() as net:
                        row = namespace_row(name, prio, args.timeout, (net, build(name, net)))
            except NotRun as why:
                row.update(prio=None, not_run=str(why))
                if name in VM_NICS:
                    vm = why  # the same for the other VM paths
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                detail = getattr(error, "stderr", None) or error
                row["error"] = f"{type(error).__name__}: {gist(detail)}"
            results.append(row)
            print(json.dumps({key: row[key] for key in ("path", "prio", "received", "not_run",
                                                         "error") if key in row}), flush=True)
            if "not_run" in row:
                break  # the same reason at the other priority
    report(table(results), results, args.json)
    print(NOTES)
    return 1 if any("error" in row for row in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the namespaces and processes are gone by now
        sys.exit(130)
