# SPDX-License-Identifier: GPL-2.0-only
"""A host's daemon among many, in namespaces each test creates: the fleet
view (--metrics for node_exporter's textfile collector, --json-interval),
whose files are replaced whole while the tool runs as nobody and whose
counts are the JSON summary's; sockets past descriptor 1,023; and one clear
line, no traceback, at the open-files limit."""

import collections
import json
import os
import sys
import time

import pytest

from conftest import need
from dhcp_runners import udhcpc
from netlab import TOOL, TOOL_IP, assert_whole_replies, ping, run

pytestmark = pytest.mark.lab("ip", "ping", "busybox", prefix="avzt-flt")

PREFIX = "arp_icmp_vlan0_"


def parse_metrics(text):
    """(name without the prefix, sorted label pairs) -> value, by
    prometheus_client's own parser: what the collector would take."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        need(False, "needs prometheus_client (tests/requirements.txt)")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.name.startswith(PREFIX), sample
            key = (sample.name[len(PREFIX):], tuple(sorted(sample.labels.items())))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def expected_from(record):
    """What the metrics must say, read from the JSON summary `record` by
    the test itself: the counts, the guests by interface, service and
    verdict, the DHCP leases by interface."""
    expected = {("exit_status", ()): record["exit_status"],
                ("interfaces_served", ()): record["interfaces_served"]}
    total = record["total"]
    for kind, count in total["replies"].items():
        expected[("replies_total", (("kind", kind),))] = count
    for key in ("frames_seen", "ignored", "internal_errors", "send_errors", "probes_sent",
                "advertisements", "fragments_held"):
        expected[(f"{key}_total", ())] = total[key]
    for name, counts in record["interfaces"].items():
        for kind, count in counts["replies"].items():
            expected[("interface_replies_total", (("interface", name), ("kind", kind)))] = count
        for key in ("frames_seen", "ignored", "probes_sent", "send_errors", "internal_errors"):
            expected[(f"interface_{key}_total", (("interface", name),))] = counts[key]
    guests = collections.Counter()
    for guest in record["guests"]:
        guests[(guest["interface"], "replies", guest["verdict"] or "pending")] += 1
    for client in record["dhcp"]["clients"]:
        guests[(client["interface"], "dhcp", client["verdict"] or "pending")] += 1
    for (interface, service, verdict), count in guests.items():
        expected[("guests", (("interface", interface), ("service", service),
                             ("verdict", verdict)))] = count
    for interface, count in collections.Counter(
            lease["interface"] for lease in record["dhcp"]["leases"]).items():
        expected[("held", (("interface", interface), ("service", "dhcp"),
                           ("what", "leases")))] = count
    return expected


def test_the_metrics_parse_and_count_what_the_json_says_both_replaced_whole(lab):
    metrics = os.path.join(lab.scratch, "arp_icmp_vlan0.prom")
    summary = os.path.join(lab.scratch, "state.json")
    tool = lab.start_tool("--ip", f"{TOOL_IP}/24", "--dhcp", "--json", summary,
                          "--metrics", metrics, "--json-interval", "0.2")
    assert "running as root" not in tool.output  # the files are written all the same
    lease = udhcpc(lab)
    assert lease.address, lease.output
    assert_whole_replies(ping(lab, TOOL_IP, count=3), 3)
    inodes, stamps = set(), set()
    for _ in range(12):  # read as a collector would, while the tool rewrites them
        with open(metrics) as file:
            inodes.add(os.fstat(file.fileno()).st_ino)
            samples = parse_metrics(file.read())
        assert samples[("running", ())] == 1
        stamps.add(samples[("written_timestamp_seconds", ())])
        with open(summary) as file:
            assert json.load(file)["exit_status"] is None  # whole: it parses
        time.sleep(0.1)
    assert len(stamps) >= 3 and len(inodes) >= 3  # new files, renamed over the old
    tool.stop()
    with open(summary) as file:
        record = json.load(file)
    with open(metrics) as file:
        samples = parse_metrics(file.read())
    assert samples[("running", ())] == 0
    assert record["total"]["replies"]["icmp echo"] >= 3 and record["dhcp"]["leases"]
    assert any(client["verdict"] == "accepts" for client in record["dhcp"]["clients"])
    expected = expected_from(record)
    for key, value in expected.items():
        assert samples.get(key) == value, key
    for name in ("guests", "held"):  # and no series the JSON does not have
        assert {k for k in samples if k[0] == name} == {k for k in expected if k[0] == name}
    assert [f for f in os.listdir(lab.scratch) if f.endswith(".tmp")] == []


# Before the tool starts: descriptors 4..1099 taken (what a host with a
# thousand interfaces served does to the next socket), then the tool.
HIGH_DESCRIPTORS = (
    "import os, resource, sys\n"
    "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(hard, 4096)))\n"
    "fd = os.open('/dev/null', os.O_RDONLY)\n"
    "for number in range(fd + 1, 1100):\n"
    "    os.dup2(fd, number)\n"
    "os.execv(sys.executable, [sys.executable] + sys.argv[1:])\n")


def socket_descriptors(pid):
    folder = f"/proc/{pid}/fd"
    return [int(fd) for fd in os.listdir(folder)
            if os.readlink(os.path.join(folder, fd)).startswith("socket:")]


def test_sockets_past_descriptor_1023_serve_as_the_others(lab):
    # Scapy's L2Socket calls select() on a new socket, which raises past
    # 1,023: the tool ended with a traceback before serving anyone.
    tool = lab.start(lab.host, sys.executable, "-c", HIGH_DESCRIPTORS, TOOL, "--keep-root",
                     "veth*")
    tool.wait_for("Hit Ctrl-C")
    assert max(socket_descriptors(tool.popen.pid)) > 1100
    assert_whole_replies(ping(lab, TOOL_IP, count=3), 3)
    tool.stop()
    assert "Traceback" not in tool.output


def add_pairs(lab, count):
    for number in range(count):
        run("ip", "link", "add", f"vh{number}", "netns", lab.host, "type", "veth", "peer",
            "name", f"vg{number}", "netns", lab.guest)
        lab.in_host("ip", "link", "set", f"vh{number}", "up")
        lab.in_guest("ip", "link", "set", f"vg{number}", "up")


LIMITED = ("import resource, sys, os\n"
           "resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))\n"
           "os.execv(sys.executable, [sys.executable] + sys.argv[1:])\n")


def test_at_the_open_files_limit_one_line_names_it_and_the_others_are_served(lab):
    add_pairs(lab, 24)  # two descriptors each: past a limit of 48
    tool = lab.start(lab.host, sys.executable, "-c", LIMITED, TOOL, "-q", "--keep-root",
                     "veth*", "vh*")
    tool.wait_for("Hit Ctrl-C")
    time.sleep(0.5)
    lines = [line for line in tool.output.splitlines() if "open-files limit" in line]
    assert len(lines) == 1, tool.output
    assert "the open-files limit (48) is reached" in lines[0]
    assert "LimitNOFILE=" in lines[0]
    assert_whole_replies(ping(lab, TOOL_IP, count=2), 2)  # veth-host, served first
    # Every interface coming and going again says nothing more.
    lab.in_host("ip", "link", "set", "vh23", "down")
    lab.in_host("ip", "link", "set", "vh23", "up")
    time.sleep(0.3)
    tool.stop()
    assert "Traceback" not in tool.output
    assert sum("open-files limit" in line for line in tool.output.splitlines()) == 1
    served = int(lines[0].split("; ")[-1].split(" served")[0])
    assert 4 <= served < 25, lines[0]  # as many as fit, veth-host among them


def test_a_full_disk_under_metrics_is_one_line_the_guest_answered_and_the_file_whole_after(
        lab, tmp_path):
    # A 64 KiB tmpfs in a private mount namespace, nearly full until 3 s in:
    # the writer says so once, the answering goes on, and once there is room
    # the file is written whole (no half file, no temporary left).
    need(os.geteuid() == 0, "needs root (a mount namespace)")
    small, kept = tmp_path / "small", tmp_path / "kept"
    small.mkdir()
    kept.mkdir()
    script = (f"mount -t tmpfs -o size=64k avz-small {small} || exit 99; "
              f"dd if=/dev/zero of={small}/filler bs=1k count=62 2>/dev/null; "
              f"(sleep 3; rm {small}/filler) & "
              f"ip netns exec {lab.host} {sys.executable} {TOOL} -q --timeout 5 "
              f"--metrics {small}/avz.prom --json-interval 0.2 veth-host; status=$?; "
              f"cp {small}/avz.prom {kept}/; ls -a {small} > {kept}/ls; exit $status")
    tool = lab.start(lab.host, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                     script)
    tool.wait_for("Hit Ctrl-C")
    tool.wait_for("No space left on device", timeout=3)
    assert_whole_replies(ping(lab, TOOL_IP, count=3), 3)
    assert tool.wait(timeout=30) == 0, tool.output
    error = f"arp_icmp_vlan0: error: cannot write {small}/avz.prom: No space left on device"
    assert tool.output.count(error) == 1, tool.output
    assert "Traceback" not in tool.output
    samples = parse_metrics((kept / "avz.prom").read_text())
    assert samples[("running", ())] == 0 and samples[("exit_status", ())] == 0
    assert samples[("replies_total", (("kind", "icmp echo"),))] >= 3
    assert (kept / "ls").read_text().split() == [".", "..", "avz.prom"]
