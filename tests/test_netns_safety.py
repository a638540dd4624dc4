# SPDX-License-Identifier: GPL-2.0-only
"""Robustness and safety against the real Linux stack, in namespaces each
test creates: dropped privileges, interfaces that vanish and return, a burst
of malformed frames, signals, a closed stdout."""

import json
import signal
import subprocess
import sys
import time

from conftest import need_root_and
from netlab import (GUEST_IF, GUEST_IP, HOST_IF, TOOL, TOOL_IP, Process, assert_whole_replies,
                    ping, run, summary)

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
    # of the block: tests/test_netns_framing.py).
    assert (f"recording: {written} frames written to {small}/flood.pcap, {lost} not recorded "
            "(No space left on device)\n") in tool.output, tool.output
    read = run("tcpdump", "-n", "-r", str(kept / "flood.pcap"), check=False)
    assert read.returncode == 0 and "truncated" not in read.stderr, read.stderr
    assert read.stdout.count("\n") == written
