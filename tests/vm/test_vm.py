# SPDX-License-Identifier: GPL-2.0-only
"""Real Linux guests (qemu, TCG) on a TAP device in a namespace the test
creates, pinging through the tool: a sample of the NIC matrix, and the
tool's own verdict on each guest, which must agree with what the guest's
console says. Each case keeps the guest's console in its failure message."""

import json
import os
import re
import shutil
import subprocess
import textwrap
import threading
import time

import pytest

from conftest import need, need_root_and
from guest import (GUEST_MAC, RELEASES, judge_recordings, kernel, kernel_of, missing_tools,
                   result_of, run_guest, start_tool, tap_namespace, wait_for_the_guest_on)
from netlab import REPO, run

pytestmark = pytest.mark.vm


@pytest.fixture
def namespace():
    need_root_and("ip")
    missing = missing_tools()
    need(not missing, f"needs {', '.join(missing)} (apt install qemu-system-x86 "
                      "busybox-static)")
    with tap_namespace("avzt-vm") as name:
        yield name
        judge_recordings()  # every --json run's -w recording, judged again with -r


@pytest.mark.parametrize("nic, mode, family, replies", [
    ("e1000", "normal", 4, 3),
    ("virtio-net-pci", "normal", 4, 0),   # the documented quirk: tagged frames dropped
    ("virtio-net-pci", "promisc", 4, 3),
    ("virtio-net-pci", "8021q", 4, 3),
    ("e1000", "normal", 6, 3),
], ids=["e1000", "virtio-net-drops-vlan0", "virtio-net-promisc", "virtio-net-8021q",
        "e1000-ipv6"])
def test_guest_pings_through_the_tool(namespace, tmp_path, nic, mode, family, replies):
    summary = tmp_path / "summary.json"
    tool = start_tool(namespace, "tapvm", "-q", "--json", str(summary))
    try:
        console = run_guest(namespace, "tapvm", nic, mode, family)
    finally:
        tool.stop()
    result = result_of(console)
    assert result == (replies, replies), f"guest console:\n{console}\ntool:\n{tool.output}"
    record = json.loads(summary.read_text())
    counts = record["total"]["replies"]
    resolver = "arp" if family == 4 else "ndp"
    assert counts[resolver] >= 1, tool.output  # the tool did answer, tagged
    if replies == 0:
        # The guest kept asking: the tagged answers never reached its stack.
        assert counts[resolver] >= 2 and counts["icmp echo"] == 0, tool.output
    # The tool's verdict, from the wire alone, agrees with the console.
    guests = [g for g in record["guests"] if g["family"] == family]
    assert [g["verdict"] for g in guests] == ["accepts" if replies else "drops"], tool.output


@pytest.mark.parametrize("nic, status, verdict", [
    ("e1000", 0, "accepts ARP replies tagged vlan 0, p 0"),
    ("virtio-net-pci", 3, "it drops ARP replies tagged vlan 0, p 0 (compare with --untagged)"),
])
def test_until_verdict_ends_early_with_the_guests_verdict(namespace, nic, status, verdict):
    # What a script runs: sudo ./arp_icmp_vlan0.py --timeout 30 --until-verdict tap0
    tool = start_tool(namespace, "tapvm", "--timeout", "30", "--until-verdict")
    started = time.monotonic()
    try:
        console = run_guest(namespace, "tapvm", nic)
        assert tool.wait(timeout=40) == status, f"tool:\n{tool.output}\nguest:\n{console}"
    finally:
        tool.stop()
    assert time.monotonic() - started < 30, tool.output  # before --timeout
    assert tool.output.count(verdict) == 2, tool.output  # the line, then in the statistics
    received, _ = result_of(console)
    assert (received > 0) == (status == 0), console  # the console agrees


def test_the_newest_kernel_still_drops_them_on_virtio_net(namespace, tmp_path):
    # Debian sid's kernel, so that a change in the guest's behaviour shows up.
    newest = RELEASES[-1]
    summary = tmp_path / "summary.json"
    tool = start_tool(namespace, "tapvm", "-q", "--json", str(summary))
    try:
        console = run_guest(namespace, "tapvm", "virtio-net-pci", release=newest)
    finally:
        tool.stop()
    assert kernel_of(console) == kernel(newest).version, console
    assert result_of(console) == (0, 0), f"guest console:\n{console}\ntool:\n{tool.output}"
    assert [g["verdict"] for g in json.loads(summary.read_text())["guests"]] == ["drops"]


def readme_recipe(name):
    """The shell block of README.rst between '# recipe: NAME' and '# end of
    recipe', as written."""
    with open(os.path.join(REPO, "README.rst")) as readme:
        text = readme.read()
    block = text.split(f"# recipe: {name}\n", 1)[1].split("# end of recipe", 1)[0]
    return textwrap.dedent(block)


def test_the_readmes_virtme_ng_recipe_as_written(namespace):
    # Run as root in the test's namespace, so without "sudo"; with this
    # machine's kernel swapped for the cached Debian one, and --disable-kvm
    # (TCG unless ARP_ICMP_VLAN0_VM_ACCEL=kvm: KVM is not to be relied on here). The tool it starts in the background is
    # stopped afterwards, by its PID.
    need(shutil.which("vng") and shutil.which("depmod") and shutil.which("udevadm"),
         "needs virtme-ng (pip install virtme-ng), kmod and udev")
    run("ip", "-n", namespace, "link", "del", "tapvm")  # the recipe makes its own tap0
    recipe = readme_recipe("virtme-ng")
    assert recipe.startswith("KERNEL=/boot/vmlinuz-$(uname -r)\n"), recipe
    script = recipe.replace("KERNEL=/boot/vmlinuz-$(uname -r)", f"KERNEL={kernel().vmlinuz}",
                            1).replace("sudo ", "")
    if os.environ.get("ARP_ICMP_VLAN0_VM_ACCEL", "tcg") != "kvm":
        script = script.replace("vng --run", "vng --disable-kvm --run", 1)
    script += 'status=$?; kill "$!"; wait "$!"; exit $status\n'
    result = subprocess.run(["ip", "netns", "exec", namespace, "sh", "-c", script], cwd=REPO,
                            env={**os.environ, "USER": "root"}, capture_output=True,
                            text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "3 packets transmitted, 3 received" in output, output
    assert output.count("64 bytes from 198.51.100.2") == 3, output
    assert "accepts ARP replies tagged vlan 0, p 0" in output, output


@pytest.mark.parametrize("nic, mode, options, status, line", [
    ("e1000", "normal", [], 0,
     "(198.51.100.1) answers ARP requests tagged vlan 0, p 0 (no pings"),
    ("virtio-net-pci", "normal", [], 3,
     "(198.51.100.1) does not answer ARP requests tagged vlan 0, p 0 but answers untagged ones: "
     "it drops frames tagged vlan 0, p 0"),
    ("virtio-net-pci", "promisc", ["--ip", "198.51.100.2/24"], 0,
     "(198.51.100.1) answers ARP requests and pings tagged vlan 0, p 0"),
], ids=["e1000", "virtio-net-drops-vlan0", "virtio-net-promisc"])
def test_the_probe_alone_judges_a_silent_guest(namespace, tmp_path, nic, mode, options, status,
                                               line):
    # The acceptance command: sudo ./arp_icmp_vlan0.py --probe 198.51.100.1
    # --until-verdict --timeout 30 tap0, beside a guest that only configured
    # its address and sends nothing to the tool: no console needed.
    need(shutil.which("tcpdump"), "needs tcpdump")
    summary = tmp_path / "summary.json"
    consoles = []
    guest = threading.Thread(target=lambda: consoles.append(run_guest(
        namespace, "tapvm", nic, mode, do="silent", wait=12)))
    guest.start()
    try:
        wait_for_the_guest_on(namespace, "tapvm")
        tool = start_tool(namespace, "tapvm", *options, "--probe", "198.51.100.1",
                          "--until-verdict", "--timeout", "30", "--json", str(summary))
        try:
            assert tool.wait(timeout=40) == status, tool.output
        finally:
            tool.stop()
    finally:
        guest.join()
    console = consoles[0]
    assert "AVZ-RESULT silent" in console, console  # it asked nothing, pinged nothing
    assert tool.output.count(line) == 2, f"tool:\n{tool.output}\nguest:\n{console}"
    record = json.loads(summary.read_text())
    assert record["guests"] == [], tool.output  # the verdict is the probe's alone
    [probe] = record["probes"]
    assert probe["mac"] == GUEST_MAC and probe["verdict"] == ("drops" if status else "answers")


@pytest.mark.parametrize("nic, status, verdicts", [
    ("e1000", 0, {"dhcp": "accepts", "ra": "accepts"}),
    ("virtio-net-pci", 3, {"dhcp": "drops", "ra": "drops"}),
], ids=["e1000", "virtio-net-drops-vlan0"])
def test_a_guest_that_only_runs_its_dhcp_client(namespace, tmp_path, nic, status, verdicts):
    # The acceptance command: sudo ./arp_icmp_vlan0.py --ip 198.51.100.2/24
    # --ip 2001:db8::2/64 --dhcp --ra --until-verdict --timeout 60 tap0, beside
    # a guest whose init runs busybox udhcpc (and the kernel's SLAAC).
    summary = tmp_path / "summary.json"
    tool = start_tool(namespace, "tapvm", "--ip", "198.51.100.2/24", "--ip", "2001:db8::2/64",
                      "--dhcp", "--ra", "--until-verdict", "--timeout", "60", "--json",
                      str(summary))
    try:
        # The guest stays 12 s after its lease: its kernel solicits a few
        # seconds after the link came up, and the run ends only once both
        # judges have judged it (or 15 s after its first frame).
        console = run_guest(namespace, "tapvm", nic, do="dhcp", wait=12)
        assert tool.wait(timeout=70) == status, f"tool:\n{tool.output}\nguest:\n{console}"
    finally:
        tool.stop()
    record = json.loads(summary.read_text())
    [client] = record["dhcp"]["clients"]
    assert client["verdict"] == verdicts["dhcp"], tool.output
    assert [c["verdict"] for c in record["ra"]] == [verdicts["ra"]], tool.output
    assert [judged["not_judged"] for judged in record["judged"]] == [[]], tool.output
    lease = re.search(r"AVZ-LEASE (\S+)", console).group(1)
    if status == 0:  # the console agrees: the lease it reports is the one the tool gave
        assert lease == f"{client['address']}/24", console
        assert "accepts DHCP offers" in tool.output
    else:
        assert lease == "none", console
        assert "it drops DHCP offers tagged vlan 0, p 0" in tool.output
