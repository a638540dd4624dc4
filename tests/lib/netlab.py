# SPDX-License-Identifier: GPL-2.0-only
"""Throwaway network namespaces for the root-only tests and the figures
scripts (tests/figures, tests/vm/matrix.py).

A Lab is the tool's own VethPair (the one --self-test uses): two namespaces,
"host" (where the tool runs) and "guest" (the real Linux stack standing in
for a VM), joined by a veth pair, deleted on exit, on failure and on Ctrl-C.
The Lab adds the documentation addresses, the tool's --json summary, and the
helpers the namespace tests share: ping, what tcpdump saw from the tool, a
TAP for a "VM". No pytest here (conftest.py makes the `lab` fixture of it).
"""

import argparse
import contextlib
import ctypes
import fcntl
import glob
import io
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

LIB = os.path.dirname(os.path.abspath(__file__))  # these helpers
TESTS = os.path.dirname(LIB)
REPO = os.path.dirname(TESTS)
TOOL = os.path.join(REPO, "arp_icmp_vlan0.py")
# The benchmark's load generator, which the tests and the other scripts run too.
BENCHMARK = os.path.join(TESTS, "figures", "benchmark.py")
sys.path.insert(0, REPO)

import arp_icmp_vlan0  # noqa: E402
from arp_icmp_vlan0 import DEFAULT_MAC, Process, VethPair  # noqa: E402
from arp_icmp_vlan0 import run_command as run  # noqa: E402

__all__ = ["BENCHMARK", "DEFAULT_MAC", "GUEST6", "GUEST_IF", "GUEST_IP", "HOST_IF", "Lab",
           "LIB", "Process", "REPO", "TESTS", "TOOL", "TOOL6", "TOOL_IP", "VethPair", "above_zero",
           "assert_whole_replies", "at_least", "command_line", "drop_vlan0", "entered", "from_tool", "json_path",
           "judge_capture", "library_path", "names_from", "open_tap_in", "ping", "read_reply",
           "replayed", "report", "require", "run", "summary", "verdicts_in",
           "tagged_lines", "text_table", "Unavailable", "unpacked"]

GUEST_IP = "198.51.100.1"
TOOL_IP = "198.51.100.2"
GUEST6, TOOL6 = "2001:db8::1", "2001:db8::2"
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


def _terminate(signum, frame):
    # SystemExit, not death: a Lab's `with` deletes its namespaces and ends
    # its processes by PID on SIGTERM and SIGHUP as on Ctrl-C.
    sys.exit(128 + signum)


def clients_parser(doc, clients, cases, timeout, timeout_help, json):
    """A clients' table script's command line: --clients, --cases (of
    `clients` and `cases`), --timeout (default `timeout`; `timeout_help`
    after "the tool's --timeout in each run, and how long the client "),
    --json (default `json`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--clients", type=names_from(clients, "client"), default=list(clients),
                        metavar="LIST",
                        help=f"the clients to run, comma-separated (default all: "
                             f"{','.join(clients)})")
    parser.add_argument("--cases", type=names_from(list(cases), "case"), default=list(cases),
                        metavar="LIST",
                        help=f"the cases, comma-separated (default all: {','.join(cases)})")
    parser.add_argument("--timeout", type=above_zero(int), default=timeout, metavar="SECONDS",
                        help="the tool's --timeout in each run, and how long the client "
                             + timeout_help)
    parser.add_argument("--json", type=json_path, metavar="FILE", default=json,
                        help=f"where to write the results (default {json})")
    return parser


def clients_table(args, names, missing, version, one_run, cell, titles, extra=None):
    """A clients' table (dhcp_clients.py, access_clients.py): each client of
    args.clients in each case of args.cases, one_run(client, case,
    args.timeout) -> a result's dict, a client missing here not run (with
    missing(client)'s why); a line per client as it goes, then report():
    columns client, version, `titles`[case] with cell(result), and, if
    given, extra = (title, function of a row's results) last."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    results = []
    for client in args.clients:
        lacking = missing(client)
        row = {"client": client, "name": names[client],
               "version": None if lacking else version(client), "results": {}}
        for case in args.cases:
            row["results"][case] = {"not_run": lacking} if lacking else \
                one_run(client, case, args.timeout)
        results.append(row)
        print(f"{names[client]}: " + "; ".join(
            f"{case}: {cell(result)}" for case, result in row["results"].items()), flush=True)
    header = ["client", "version"] + [titles[case] for case in args.cases] + (
        [extra[0]] if extra else [])
    rows = [header] + [[row["name"], row["version"] or "-"] +
                       [cell(row["results"][case]) for case in args.cases] +
                       ([extra[1](row["results"])] if extra else []) for row in results]
    report(rows, results, args.json)


class Lab(VethPair):
    def __init__(self, prefix="avzt", ipv6=False, guest6=False):
        """With ipv6=False the guest end has IPv6 disabled, so that its
        autoconfiguration chatter (DAD, MLD) does not reach the tool; with
        guest6=True (and ipv6) it has GUEST6/64 as well, without DAD."""
        super().__init__(prefix, HOST_IF, GUEST_IF)
        self.ipv6, self.guest6 = ipv6 or guest6, guest6
        self.scratch = None  # a folder for the tools' --json summaries
        self.recordings = []  # (pcap, the tool) of each run with -w: judge_recordings()

    def __enter__(self):
        super().__enter__()
        try:
            self.scratch = tempfile.mkdtemp(prefix=f"{self.host}-")
            if not self.ipv6:
                self.in_guest("sysctl", "-qw", f"net.ipv6.conf.{GUEST_IF}.disable_ipv6=1")
            self.in_guest("ip", "addr", "add", f"{GUEST_IP}/24", "dev", GUEST_IF)
            if self.guest6:
                self.in_guest("ip", "-6", "addr", "add", f"{GUEST6}/64", "dev", GUEST_IF,
                              "nodad")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        try:
            super().__exit__(*exc)
        finally:
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def start_tool(self, *args, interface=HOST_IF, summary=False):
        """The tool on the host end; returns once it is answering. With
        summary=True it writes its --json summary as well, which summary()
        reads once the tool has ended."""
        path = None
        recording = args[args.index("-w") + 1] if "-w" in args else None
        if "--json" in args:
            path = args[args.index("--json") + 1]
        elif summary or recording:  # a recording is judged again from its file, and compared
            path = os.path.join(self.scratch, f"summary-{len(self.processes)}.json")
            args = ("--json", path, *args)
        tool = self.start(self.host, sys.executable, TOOL, *args, interface)
        tool.summary_path = path
        if recording:
            self.recordings.append((recording, tool, "--until-verdict" in args))
        tool.wait_for("Hit Ctrl-C")
        return tool

    def recording(self, name):
        """A path for a run's -w recording, in the Lab's scratch folder."""
        return os.path.join(self.scratch, f"{name}-{len(self.processes)}.pcap")

    def judge_recordings(self):
        """Every -w recording of the tools start_tool() started, judged
        again with -r once they have ended: the same guests and verdicts
        (replayed())."""
        for pcap, tool, until_verdict in self.recordings:
            if tool.popen.poll() is None:
                tool.stop()
            replayed(pcap, summary(tool), until_verdict)

    def drop_vlan0_at_the_guest(self):
        """What a NIC that filters VLAN 0 does (drop_vlan0), on the guest's
        end; returns a function that reads the rule's counter."""
        return drop_vlan0(self.in_guest, GUEST_IF)

    def start_capture(self, *expression, interface=GUEST_IF, ns=None):
        """tcpdump -n -e on the guest end; returns once it is listening."""
        capture = self.start(ns or self.guest, "tcpdump", "-n", "-e", "-l",
                             "--immediate-mode", "-i", interface, *expression)
        capture.wait_for("listening on")
        return capture


def drop_vlan0(in_namespace, interface):
    """An nftables netdev rule on `interface` that drops VLAN-0-tagged
    frames, as a NIC's VLAN filter does: they never reach the stack.
    `in_namespace(*cmd)` runs a command where the interface is. Returns a
    function that reads how many the rule dropped."""
    in_namespace("nft", "add", "table", "netdev", "avz")
    in_namespace("nft", "add", "chain", "netdev", "avz", "ingress",
                 f"{{ type filter hook ingress device {interface} priority 0; }}")
    in_namespace("nft", "add", "rule", "netdev", "avz", "ingress", "vlan", "id", "0",
                 "counter", "drop")
    return lambda: int(in_namespace("nft", "list", "ruleset").stdout.split(
        "counter packets ")[1].split()[0])


def summary(tool):
    """The --json summary of a tool that Lab.start_tool(summary=True)
    started, once it has ended: keys "total" and "interfaces" (NAME ->) with
    frames_seen, replies_sent, replies (kind -> count, for the kinds served),
    ignored, fragments_held; "fragmented_requests", "recording", "guests"."""
    assert tool.popen.poll() is not None, "the tool writes its summary as it ends"
    with open(tool.summary_path) as file:
        return json.load(file)


def verdicts_in(record):
    """A --json summary's verdicts: (judge, guest) -> verdict, the guest
    named by MAC (and family, stage or probed address), not by interface:
    a -w recording does not keep the interfaces' names."""
    verdicts = {}
    for guest in record.get("guests") or []:
        verdicts[("guests", guest["mac"], guest["family"])] = guest["verdict"]
    for probe in record.get("probes") or []:
        verdicts[("probes", probe["address"])] = probe["verdict"]
    for judge in ("dhcp", "tftp", "dhcp6", "pppoe", "dot1x"):
        for client in (record.get(judge) or {}).get("clients", []):
            verdicts[(judge, client["mac"], client["stage"])] = client["verdict"]
    for client in record.get("ra") or []:
        verdicts[("ra", client["mac"])] = client["verdict"]
    for guest in record.get("judged") or []:
        verdicts[("judged", guest["mac"])] = tuple(guest["not_judged"])
    return verdicts


def judge_capture(pcap, *options):
    """-r's (exit status, output, --json summary) of capture file `pcap`,
    run in this process (Scapy is imported already: no start-up to pay)."""
    folder = tempfile.mkdtemp(prefix="replayed-")
    path = os.path.join(folder, "replayed.json")
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            status = arp_icmp_vlan0.main(["-r", str(pcap), "--json", path, *options])
        with open(path) as file:
            return status, said.getvalue(), json.load(file)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def replayed(pcap, live, until_verdict):
    """-r's --json summary of `pcap`, a live run's -w recording whose
    --json summary is `live`: if the run had --until-verdict (as -r
    judges), the same guests, verdicts and exit status; else every verdict
    the run had formed; unless the recording is incomplete (a write error:
    its frames alone are judged)."""
    status, output, replay = judge_capture(pcap, "-q")
    assert "Traceback" not in output, output
    if live["recording"] and live["recording"]["error"]:
        return replay
    if until_verdict:
        assert verdicts_in(replay) == verdicts_in(live), output
        assert status == replay["exit_status"] == live["exit_status"], output
    else:  # ended by a signal: what the capture's end forms, the live run had not yet
        formed = {key: verdict for key, verdict in verdicts_in(live).items() if verdict}
        assert formed.items() <= verdicts_in(replay).items(), output
    return replay


# -- what the guest and its tcpdump see

def ping(lab, *args, count=3, timeout=30):
    """iputils ping in the guest, 0.2 s apart, 2 s for each reply; `args`:
    its options and the address (-6 for IPv6)."""
    return lab.in_guest("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", *args,
                        check=False, timeout=timeout)


def assert_whole_replies(result, count, size=64, address=TOOL_IP):
    """ping got `count` replies, each whole: iputils counts a truncated
    reply as received, so check every size too."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{count} received" in result.stdout
    assert result.stdout.count(f"{size} bytes from {address}") == count


def from_tool(capture_output):
    """The lines of tcpdump -n -e's output of frames from the tool's MAC."""
    return [line for line in capture_output.splitlines()
            if line.split()[1:2] == [DEFAULT_MAC]]


def tagged_lines(capture_output, tag="vlan 0, p 0"):
    """from_tool()'s lines that show `tag`."""
    return [line for line in from_tool(capture_output) if tag in line]


# -- a TAP device, its file descriptor held by the test as the "VM" side

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def entered(namespace):
    """The calling thread in network namespace `namespace` for the block,
    and back in its own after it: a socket or device made there stays
    there."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


def open_tap_in(namespace, name):
    """Create TAP `name` inside `namespace` and return its fd (the device
    is made in the netns the calling thread is in)."""
    with entered(namespace):
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def read_reply(fd, timeout=3):
    """The next frame the tool sent into the TAP, dissected (skipping the
    kernel's own chatter); None after `timeout` seconds."""
    from scapy.layers.l2 import Ether  # here alone: the rest of netlab needs no Scapy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if ready:
            frame = Ether(os.read(fd, 65536))
            if frame.src == DEFAULT_MAC:
                return frame
    return None


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


def require(packages, why="network namespaces"):
    """A figures script's start: the tools it needs (tool -> the Debian
    package that has it), then root; one line and exit status 1 for what is
    missing. The tools come first: a machine without them learns it without
    sudo."""
    script = os.path.basename(sys.argv[0])
    missing = [tool for tool in packages if not shutil.which(tool)]
    if missing:
        sys.exit(f"{script}: error: needs {', '.join(missing)} "
                 f"(apt install {' '.join(packages[tool] for tool in missing)})")
    if os.geteuid() != 0:
        path = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
        sys.exit(f"{script}: error: needs root ({why}): sudo python3 {path}")


# -- programs from Debian packages fetched and unpacked, never installed

class Unavailable(Exception):
    """What cannot be had on this machine, in one line."""


def library_path(root):
    """LD_LIBRARY_PATH for the shared libraries of an unpacked tree."""
    return ":".join(glob.glob(os.path.join(root, "lib", "*-linux-gnu")) +
                    glob.glob(os.path.join(root, "usr", "lib", "*-linux-gnu")))


def missing_libraries(root, binaries):
    """The shared libraries that `binaries` (paths in `root`) need and
    neither the system nor the tree has (ldd's "not found")."""
    if not shutil.which("ldd"):
        return set()
    missing = set()
    for binary in binaries:
        listed = subprocess.run(["ldd", os.path.join(root, binary)], capture_output=True,
                                text=True, env={**os.environ, "LD_LIBRARY_PATH": library_path(root)})
        missing |= set(re.findall(r"^\s*(\S+) => not found", listed.stdout, re.MULTILINE))
    return missing


def _download(packages, folder, root):
    fetched = subprocess.run(["apt-get", "download", *packages], cwd=folder,
                             capture_output=True, text=True, timeout=300)
    if fetched.returncode != 0:
        lines = [line for line in fetched.stderr.splitlines() if line.strip()]
        raise Unavailable(f"apt-get download {' '.join(packages)}: "
                          f"{lines[-1] if lines else 'failed'}")
    for deb in glob.glob(os.path.join(folder, "*.deb")):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True, capture_output=True)
        os.remove(deb)


def unpacked(root, packages, binaries, libraries):
    """`packages` fetched with apt-get download and unpacked with dpkg-deb
    -x into `root` (once), with the packages of the shared libraries ldd
    finds missing, and theirs (`libraries`: soname -> package): never
    installed, as
    their maintainer scripts would start daemons. Returns `root`; raises
    Unavailable if it cannot be had or `binaries` (paths in it) cannot run."""
    if not os.path.isdir(root):
        lacking = [tool for tool in ("apt-get", "dpkg-deb") if not shutil.which(tool)]
        if lacking:
            raise Unavailable(f"{packages[0]} is fetched with {' and '.join(lacking)}, which "
                              "this machine lacks")
        partial, debs = root + ".partial", root + ".debs"
        for folder in (partial, debs):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        try:
            _download(packages, debs, partial)
            fetched = set(packages)
            for _ in range(4):  # a library fetched may need another
                extra = sorted({libraries[name] for name in missing_libraries(partial, binaries)
                                if name in libraries} - fetched)
                if not extra:
                    break
                _download(extra, debs, partial)
                fetched.update(extra)
        except subprocess.SubprocessError as error:
            raise Unavailable(f"fetching {packages[0]}: {error}") from None
        finally:
            shutil.rmtree(debs, ignore_errors=True)
        os.rename(partial, root)
    absent = [binary for binary in binaries if not os.path.exists(os.path.join(root, binary))]
    if absent:
        raise Unavailable(f"{', '.join(absent)} not in {root} (delete it to fetch it again)")
    lacking = missing_libraries(root, binaries)
    if lacking:
        raise Unavailable(f"{packages[0]} needs {', '.join(sorted(lacking))} (apt-get download "
                          f"the package with it and dpkg-deb -x it into {root})")
    return root
