# SPDX-License-Identifier: GPL-2.0-only
"""The tagged TFTP server against a real client, in namespaces each test
creates: busybox tftp in the guest fetches the boot file through the veth,
every block tagged (tcpdump shows it) and the file whole; behind the
nftables rule that drops VLAN-0 frames it asks again and again, and the
tool says it drops the blocks; what the server refuses (a path escape, a
file not served, a write) is an error to the client; and a 2 MB file costs
the guest's own pings nothing."""

import json
import os
import re
import statistics

import pytest

from netlab import DEFAULT_MAC, GUEST_IF, GUEST_IP, TOOL_IP, drop_vlan0, from_tool

pytestmark = pytest.mark.lab("ip", "ping", "busybox", "nft", "tcpdump", prefix="avzt-boot")


def boot_file(tmp_path, size):
    path = tmp_path / "boot.bin"
    path.write_bytes(os.urandom(size))
    return path


def serve(lab, path, *options):
    return lab.start_tool("-4", "--ip", f"{TOOL_IP}/24", "--dhcp", "--boot-file", str(path),
                          "-q", "-w", lab.recording("boot"), *options, summary=True)


def fetch(lab, name, local, *options, timeout=60):
    return lab.in_guest("busybox", "tftp", "-g", "-r", name, "-l", str(local), *options,
                        TOOL_IP, check=False, timeout=timeout)


def tftp_record(tool):
    with open(tool.summary_path) as file:
        return json.load(file)["tftp"]


def test_busybox_fetches_the_boot_file_tagged_and_whole(lab, tmp_path):
    path = boot_file(tmp_path, 100_000)
    capture = lab.start_capture("udp")
    tool = serve(lab, path)
    got = tmp_path / "got.bin"
    result = fetch(lab, "boot.bin", got, "-b", "1024")
    assert result.returncode == 0, result.stderr + tool.output
    assert got.read_bytes() == path.read_bytes()
    assert tool.stop() == 0
    capture.stop()
    # Every block the capture shows is tagged. A capture on a busy machine
    # may miss some ("packets dropped by kernel"): the tool's count of the
    # blocks is the record below.
    blocks = [line for line in from_tool(capture.output) if ".61" in line]
    assert len(blocks) >= 20 and all("vlan 0, p 0" in line for line in blocks), \
        capture.output[-2000:]
    [client] = tftp_record(tool)["clients"]
    assert client["verdict"] == "accepts" and client["address"] == GUEST_IP
    assert "it fetched boot.bin (100,000 bytes, 98 blocks)" in client["line"]
    # Every frame seen is accounted for: the last block's ACK is taken.
    with open(tool.summary_path) as file:
        counts = json.load(file)["total"]
    assert counts["acknowledgements"] >= 1 and counts["frames_seen"] == sum(
        counts[name] for name in ("replies_sent", "ignored", "answered_later",
                                  "acknowledgements", "fragments_held", "probe_answers",
                                  "send_errors", "internal_errors")), counts


def test_behind_a_vlan0_filter_it_asks_again_and_the_tool_says_it_drops_them(lab, tmp_path):
    path = boot_file(tmp_path, 4096)
    # The tagged ARP replies would be dropped too: the guest knows the
    # tool's MAC, as a PXE client knows its server's from the DHCP exchange.
    lab.in_guest("ip", "neigh", "replace", TOOL_IP, "lladdr", DEFAULT_MAC, "dev", GUEST_IF)
    dropped = drop_vlan0(lab.in_guest, GUEST_IF)
    tool = serve(lab, path)
    result = fetch(lab, "boot.bin", tmp_path / "got.bin", timeout=90)
    assert result.returncode != 0 and dropped() > 0
    assert tool.stop() == 0
    [client] = tftp_record(tool)["clients"]
    assert client["verdict"] == "drops", client
    assert "requests for block 1 of boot.bin" in client["line"]


@pytest.mark.parametrize("command, error", [
    (("-g", "-r", "../../etc/passwd", "-l", "/dev/null"), "file not found"),
    (("-g", "-r", "/etc/passwd", "-l", "/dev/null"), "file not found"),
    (("-p", "-l", "/etc/hostname", "-r", "boot.bin"), "access violation"),
], ids=["path-escape", "absolute-path", "write"])
def test_what_it_refuses_is_an_error_to_the_client(lab, tmp_path, command, error):
    tool = serve(lab, boot_file(tmp_path, 512))
    result = lab.in_guest("busybox", "tftp", *command, TOOL_IP, check=False, timeout=30)
    assert result.returncode != 0 and error in result.stderr.lower(), result.stderr
    assert tool.stop() == 0
    assert tftp_record(tool)["clients"] == []


def test_a_2_mb_boot_file_costs_the_guests_pings_nothing(lab, tmp_path):
    path = boot_file(tmp_path, 2 << 20)
    tool = serve(lab, path)
    pinger = lab.start(lab.guest, "ping", "-n", "-i", "0.005", "-W", "1", TOOL_IP)
    got = tmp_path / "got.bin"
    result = fetch(lab, "boot.bin", got, "-b", "1468", timeout=120)
    pinger.stop()
    assert result.returncode == 0 and got.read_bytes() == path.read_bytes(), result.stderr
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", pinger.output)]
    sequence = [int(n) for n in re.findall(r"icmp_seq=(\d+)", pinger.output)]
    # Every echo answered (the last one may be cut off by the stop).
    assert len(times) >= 5 and len(times) >= max(sequence) - 1, pinger.output[-500:]
    assert max(times) < 50 and statistics.mean(times) < 5, (max(times), statistics.mean(times))
    assert tool.stop() == 0
    [client] = tftp_record(tool)["clients"]
    assert client["verdict"] == "accepts", client
