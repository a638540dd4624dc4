# SPDX-License-Identifier: GPL-2.0-only
"""Robustness and safety against the real Linux stack, in namespaces each
test creates: dropped privileges, interfaces that vanish and return, a burst
of malformed frames, signals, a closed stdout; then a hostile guest and a
hostile local user: a frame Scapy cannot summarise, planted links and FIFOs
where the files go, a second copy on the same interface, a bridge shared
with the real owner of an address; and the recording's causal order."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from scapy.utils import rdpcap

from conftest import need, need_root_and
from netlab import (GUEST_IF, GUEST_IP, HOST_IF, LIB, TOOL, TOOL6, TOOL_IP, Process,
                    assert_whole_replies, ping, run, summary)

# The `lab` fixture (conftest.py) as it comes: ip, ping and tcpdump, IPv4.
NET_RAW_ONLY = 1 << 13


def status_of(pid):
    with open(f"/proc/{pid}/status") as status:
        return dict(line.split(":", 1) for line in status.read().splitlines())


def test_runs_as_nobody_with_cap_net_raw_alone(lab):
    tool = lab.start_tool()
    fields = status_of(tool.popen.pid)
    uids = [int(uid) for uid in fields["Uid"].split()]
    assert 0 not in uids and len(set(uids)) == 1
    for capability_set in ("CapEff", "CapPrm", "CapBnd"):
        assert int(fields[capability_set], 16) == NET_RAW_ONLY, capability_set
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
    assert "running as nobody" in tool.output
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # and it still answers


def test_keep_root_and_an_unknown_user(lab):
    tool = lab.start_tool("--keep-root")
    assert int(status_of(tool.popen.pid)["Uid"].split()[0]) == 0
    assert "running as root" in tool.output
    tool.stop()
    result = lab.in_host(sys.executable, TOOL, "--user", "no-such-user-x", HOST_IF,
                         check=False)
    assert result.returncode == 1 and "no user named 'no-such-user-x'" in result.stderr


def recreate_pair(lab, host_if, guest_if, guest_address):
    run("ip", "link", "add", host_if, "netns", lab.host, "type", "veth",
        "peer", "name", guest_if, "netns", lab.guest)
    lab.in_guest("sysctl", "-qw", f"net.ipv6.conf.{guest_if}.disable_ipv6=1")
    lab.in_guest("ip", "addr", "add", guest_address, "dev", guest_if)
    lab.in_guest("ip", "link", "set", guest_if, "up")
    lab.in_host("ip", "link", "set", host_if, "up")


def test_a_lone_interface_that_goes_down_is_served_again_when_up(lab):
    # One interface alone is served with a blocking receive, which the
    # interface going down must break (and netlink then sees it come back).
    tool = lab.start_tool("-q")
    assert_whole_replies(ping(lab, TOOL_IP, count=1), 1)
    lab.in_host("ip", "link", "set", HOST_IF, "down")
    tool.wait_for("waiting for it to come back", timeout=5)
    lab.in_host("ip", "link", "set", HOST_IF, "up")
    tool.wait_for(f"{HOST_IF}: back; answering again", timeout=5)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    assert tool.stop() == 0


def test_an_interface_that_goes_away_is_served_again_when_back(lab):
    # A second pair, which keeps being served while the first is gone.
    recreate_pair(lab, "veth-host2", "veth-guest2", "203.0.113.1/24")
    tool = lab.start_tool("veth-host2")
    assert_whole_replies(ping(lab, TOOL_IP, count=1), 1)
    lab.in_host("ip", "link", "del", HOST_IF)
    tool.wait_for(f"{HOST_IF}: ", timeout=5)
    assert lab.in_guest("ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "203.0.113.2",
                        check=False).returncode == 0
    recreate_pair(lab, HOST_IF, GUEST_IF, f"{GUEST_IP}/24")
    tool.wait_for(f"{HOST_IF}: back; answering again", timeout=5)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    assert tool.stop() == 0
    assert "waiting for it to come back" in tool.output


def test_exit_on_down_ends_with_status_1(lab):
    tool = lab.start_tool("--exit-on-down")
    lab.in_host("ip", "link", "del", HOST_IF)
    assert tool.wait(timeout=5) == 1
    assert "stopped receiving on veth-host" in tool.output


MALFORMED_BURST = """
import random, socket, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("veth-guest", 0))
rng = random.Random(10000)
dst, src = bytes.fromhex("02766c616e30"), bytes.fromhex("525400123456")
r = rng.randbytes
shapes = [  # each passes the kernel filter, then turns to garbage
    lambda: bytes.fromhex("08060001080006040001") + r(rng.randrange(0, 40)),
    lambda: bytes.fromhex("08004500") + r(4) + b"\\x00\\x00" + r(1) + b"\\x01" + r(10)
            + b"\\x08\\x00" + r(rng.randrange(0, 80)),
    lambda: bytes.fromhex("86dd6000000000") + r(1) + b"\\x3a\\xff" + r(32)
            + rng.choice([b"\\x80", b"\\x87"]) + r(rng.randrange(0, 60)),
]
for i in range(10000):
    sock.send(dst + src + rng.choice(shapes)())
    if i % 500 == 0:
        time.sleep(0.01)  # let the tool keep up: this is about content, not rate
"""


def test_alive_and_answering_after_10000_malformed_frames(lab):
    tool = lab.start_tool("-q", summary=True)
    lab.in_guest(sys.executable, "-c", MALFORMED_BURST, timeout=60)
    assert_whole_replies(ping(lab, TOOL_IP, count=3), 3)
    tool.stop()
    total = summary(tool)["total"]
    # Nearly all of them passed the kernel filter and reached the core.
    assert total["frames_seen"] >= 9000 and total["replies"]["icmp echo"] == 3
    assert (total["send_errors"], total["internal_errors"]) == (0, 0)


def test_sigterm_during_a_flood_leaves_a_valid_pcap(lab, tmp_path):
    pcap = tmp_path / "flood.pcap"
    tool = lab.start_tool("-q", "-w", str(pcap))
    flood = subprocess.Popen(["ip", "netns", "exec", lab.guest, "ping", "-f", "-q", "-c",
                              "1000000", TOOL_IP], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        assert tool.stop(signal.SIGTERM) == 0
    finally:
        flood.kill()
        flood.wait()
    read = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True,
                          text=True)
    assert read.returncode == 0 and "truncated" not in read.stderr, read.stderr
    records = read.stdout.count("\n")
    assert records >= 1000  # requests and replies
    assert "statistics" in tool.output


def test_sighup_is_harmless(lab):
    tool = lab.start_tool()
    tool.popen.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert tool.popen.poll() is None
    assert_whole_replies(ping(lab, TOOL_IP, count=1), 1)
    assert tool.stop() == 0


def test_a_closed_stdout_ends_it_quietly(lab):
    tool = subprocess.Popen(["ip", "netns", "exec", lab.host, sys.executable, TOOL,
                             HOST_IF], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert "Hit Ctrl-C" in tool.stdout.readline()
        tool.stdout.close()  # as `| head -1` does once it has its line
        ping(lab, TOOL_IP, count=2)
        assert tool.wait(timeout=10) == 0
        assert tool.stderr.read() == ""
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()


def test_a_full_disk_under_w_costs_the_guest_no_reply(lab, tmp_path):
    # A 64 KiB tmpfs in a private mount namespace fills after a few hundred
    # records: the recording stops, the answering does not.
    need_root_and("unshare", "mount")
    small, kept = tmp_path / "small", tmp_path / "kept"
    small.mkdir()
    kept.mkdir()
    script = (f"mount -t tmpfs -o size=64k avz-small {small} || exit 99; "
              f"ip netns exec {lab.host} {sys.executable} {TOOL} -q -4 -c 401 --timeout 30 "
              f"-w {small}/flood.pcap --json {kept}/summary.json {HOST_IF}; status=$?; "
              f"cp {small}/flood.pcap {kept}/; exit $status")
    tool = Process(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
    lab.processes.append(tool)
    tool.wait_for("Hit Ctrl-C")
    result = lab.in_guest("ping", "-n", "-c", "400", "-i", "0.002", "-W", "1", TOOL_IP,
                          check=False, timeout=60)
    assert tool.wait(timeout=30) == 5, tool.output  # the record is incomplete
    assert_whole_replies(result, 400)
    assert "Traceback" not in tool.output
    error = f"arp_icmp_vlan0: {small}/flood.pcap: No space left on device; recording " \
            "stopped, answering goes on"
    assert tool.output.count(error) == 1, tool.output
    recording = json.loads((kept / "summary.json").read_text())["recording"]
    written, lost = recording["frames_written"], recording["frames_not_recorded"]
    assert written + lost == 802 and lost > 0  # 401 requests and 401 replies
    assert recording == {"file": f"{small}/flood.pcap", "frames_written": written,
                         "frames_not_recorded": lost, "error": "No space left on device"}
    # The statistics block's recording line when a write failed (the rest
    # of the block: tests/netns/test_netns_framing.py).
    assert (f"recording: {written} frames written to {small}/flood.pcap, {lost} not recorded "
            "(No space left on device)\n") in tool.output, tool.output
    read = run("tcpdump", "-n", "-r", str(kept / "flood.pcap"), check=False)
    assert read.returncode == 0 and "truncated" not in read.stderr, read.stderr
    assert read.stdout.count("\n") == written


# -- a hostile guest and a hostile local user

# The hostile guest and local user: the lab with an IPv6 guest too.
HOSTILE = pytest.mark.lab("ip", "ping", "tcpdump", prefix="avzt-hard", guest6=True)

# Sends frames.dnssl_solicitation() three times on the guest's veth: its DNS
# Search List option made Scapy 2.5.0's summary, the per-reply line, raise
# ("Bad format string"), which ended the tool with a traceback.
DNSSL_SOLICITATIONS = f"""
import socket, sys
sys.path.insert(0, {LIB!r})
from frames import dnssl_solicitation
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
for _ in range(3):
    sock.send(dnssl_solicitation())
"""


def debian_scapy_python():
    """Debian's python3 with python3-scapy (2.5.0 on Debian 12: the oldest
    Scapy the tool supports), or None."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return None
    version = subprocess.run([python, "-c", "import scapy; print(scapy.__version__)"],
                             capture_output=True, text=True)
    return python if version.returncode == 0 else None


@HOSTILE
@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_a_frame_scapy_cannot_summarise_costs_no_guest_its_service(lab, tmp_path, which):
    python = sys.executable if which == "newest" else debian_scapy_python()
    need(python, "needs Debian's python3 with python3-scapy (apt install python3-scapy)")
    summary = tmp_path / "run.json"
    tool = lab.start(lab.host, python, TOOL, "--json", str(summary), HOST_IF)
    tool.wait_for("Hit Ctrl-C")
    lab.in_guest(python, "-c", DNSSL_SOLICITATIONS, GUEST_IF)
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # still answering, in IPv4 too
    assert tool.stop() == 0, tool.output
    assert "Traceback" not in tool.output and "internal error" not in tool.output
    answered = [line for line in tool.output.splitlines() if "==>" in line and "ICMPv6" in line]
    assert len(answered) == 3, tool.output  # each NS answered, with a line
    record = json.loads(summary.read_text())
    assert record["total"]["replies"]["ndp"] == 3 and record["exit_status"] == 0


def nobody_owns(path):
    nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True)
    uid = int(nobody.stdout)
    os.chown(path, uid, uid)


@HOSTILE
def test_planted_links_and_fifos_are_refused_and_what_they_point_at_is_untouched(lab, tmp_path):
    """A user who owns the directory -w and --json write into plants a link
    to a root-owned file, or a FIFO; the tool, as root, used to truncate the
    file through the link and to block forever on the FIFO."""
    users = tmp_path / "users-dir"
    users.mkdir()
    nobody_owns(users)
    precious = tmp_path / "precious"
    precious.write_bytes(b"root's file")
    os.symlink(precious, users / "run.json")
    os.mkfifo(users / "run.pcap")
    for option, path, reason in (("--json", "run.json", "a symbolic link"),
                                 ("-w", "run.pcap", "a FIFO or socket")):
        result = lab.in_host(sys.executable, TOOL, option, str(users / path), HOST_IF,
                             check=False, timeout=10)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
    assert precious.read_bytes() == b"root's file"


@HOSTILE
def test_a_second_copy_on_an_interface_refuses_it_and_names_the_first(lab):
    first = lab.start_tool("-q")
    second = lab.in_host(sys.executable, TOOL, "-q", HOST_IF, check=False, timeout=10)
    assert second.returncode == 1
    assert (f"{HOST_IF}: already served by another arp_icmp_vlan0 (PID {first.popen.pid})"
            in second.stderr), second.stderr
    assert second.stderr.count("\n") == 1
    # A pattern skips it with one line and serves the rest.
    run("ip", "link", "add", "veth-host2", "netns", lab.host, "type", "veth", "peer", "name",
        "veth-guest2", "netns", lab.guest)
    lab.in_host("ip", "link", "set", "veth-host2", "up")
    pattern = lab.start_tool("-q", interface="veth-host*")
    assert "on veth-host2 (and every interface matching" in pattern.output
    assert re.search(rf"{HOST_IF}: already served by another arp_icmp_vlan0 "
                     rf"\(PID {first.popen.pid}\); skipped", pattern.output), pattern.output
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # answered once each (no DUP)
    result = ping(lab, TOOL_IP, count=2)
    assert "DUP" not in result.stdout
    first.stop()
    pattern.stop()


def bridge_with_an_owner(lab):
    """br0 in the host namespace, with the guest's veth as a port and the
    host's own 2001:db8::2 on it: the kernel owns that address."""
    lab.in_host("ip", "link", "add", "br0", "type", "bridge")
    lab.in_host("ip", "link", "set", HOST_IF, "master", "br0")
    lab.in_host("ip", "-6", "addr", "add", f"{TOOL6}/64", "dev", "br0", "nodad")
    lab.in_host("ip", "link", "set", "br0", "up")
    owner_mac = lab.in_host("cat", "/sys/class/net/br0/address").stdout.strip()
    for _ in range(30):  # until the bridge forwards and the owner answers
        if lab.in_guest("ping", "-6", "-n", "-c", "1", "-W", "0.2", TOOL6,
                        check=False).returncode == 0:
            return owner_mac
    pytest.fail("the bridge's owner of 2001:db8::2 never answered")


@HOSTILE
def test_a_bridge_is_served_for_any_address_only_when_asked(lab):
    bridge_with_an_owner(lab)
    result = lab.in_host(sys.executable, TOOL, "br0", check=False, timeout=10)
    assert result.returncode == 1 and "br0: a bridge, shared by other stations" in result.stderr
    served = lab.in_host(sys.executable, TOOL, "--ip", "203.0.113.9", "-c", "1",
                         "--timeout", "0.5", "br0", check=False, timeout=10)
    assert served.returncode == 0, served.stderr


@HOSTILE
def test_on_a_bridge_the_real_owner_wins_the_guests_neighbour_entry(lab):
    """Served for any address on a bridge, the tool answered every NS with
    Override set, and the guest's entry for the host's own address pointed
    at the tool (TCP to it then failed while ping "worked"). A proxy's NA
    has Override clear (RFC 4861 7.2.4), so the owner's answer wins."""
    owner_mac = bridge_with_an_owner(lab)
    tool = lab.start_tool("-6", "-q", "--untagged", "--any-address", interface="br0",
                          summary=True)
    for _ in range(5):
        lab.in_guest("ip", "-6", "neigh", "flush", "dev", GUEST_IF)
        lab.in_guest("ping", "-6", "-n", "-c", "1", "-W", "2", TOOL6, check=False)
        entry = lab.in_guest("ip", "-6", "neigh", "show", TOOL6).stdout
        assert owner_mac in entry, entry
    tool.stop()
    assert summary(tool)["total"]["replies"]["ndp"] > 0  # it did answer, as a proxy


@HOSTILE
def test_the_recording_is_in_causal_order(lab, tmp_path):
    """A reply was stamped after the send and after the line: the guest's
    echo request, which the ARP reply made possible, came first in the
    file. Each reply now lies between its request and the frame it enabled."""
    pcap = tmp_path / "causal.pcap"
    tool = lab.start_tool("-4", "-w", str(pcap))
    for _ in range(3):
        lab.in_guest("ip", "neigh", "flush", "dev", GUEST_IF)
        assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)
    assert tool.stop() == 0
    packets = rdpcap(str(pcap))
    kinds = []
    for packet in packets:
        if packet.haslayer("ARP"):
            kinds.append("arp-request" if packet["ARP"].op == 1 else "arp-reply")
        elif packet.haslayer("ICMP"):
            kinds.append("echo-request" if packet["ICMP"].type == 8 else "echo-reply")
    assert kinds.count("echo-request") == 6 and kinds.count("arp-reply") >= 3, kinds
    unanswered_ask = False  # an ARP request whose reply is not in the file yet
    for at, kind in enumerate(kinds):
        if kind == "arp-request":
            unanswered_ask = True
        elif kind == "arp-reply":
            assert kinds[at - 1] == "arp-request", kinds
            unanswered_ask = False
        elif kind == "echo-request":  # the guest had its answer first
            assert not unanswered_ask, kinds
        else:
            assert kinds[at - 1] == "echo-request", kinds
    stamps = [float(packet.time) for packet in packets]
    assert stamps == sorted(stamps)


@HOSTILE
def test_the_self_test_shows_the_tools_lines():
    need_root_and("ip", "ping")
    result = subprocess.run([sys.executable, TOOL, "--self-test"], capture_output=True,
                            text=True, timeout=60)
    assert "self-test: PASS" in result.stdout, result.stdout + result.stderr
    section = result.stdout.split("--- the tool, in the host namespace ---\n")[1]
    first = section.splitlines()[0]
    assert " ==> " in first and "vlan 0, p 0" in first, section
    assert "accepts" in section.split("statistics ---")[0]  # a verdict line before them
