# SPDX-License-Identifier: GPL-2.0-only
"""Network boot under qemu -boot n (TCG), no disk and no kernel: the
firmware alone against the tool as

    arp_icmp_vlan0.py --ip 198.51.100.2/24 --dhcp --boot-file ... --until-verdict tapfw

on a TAP in a namespace the test creates. SeaBIOS with qemu's own iPXE ROM
drops the tagged offers (exit 3, the stage named) and, untagged, fetches
and runs the script it is given (exit 0); OVMF's own EDK2 PXE, untagged,
fetches snponly.efi; given no boot file it never REQUESTs, and the tool
says no verdict, never "drops". tcpdump on the TAP confirms the tags."""

import os
import re
import time

import pytest

from conftest import need, need_root_and
from firmware import OVMF, RAN, SNPONLY
from firmware import boot as boot_firmware
from guest import GUEST_MAC, missing_tools, tap_namespace
from netlab import Process, replayed


def boot(*args, **options):
    """firmware.boot(); its -w recording judged again with -r: the same
    DHCP and TFTP verdicts, stage by stage, and exit status."""
    result = boot_firmware(*args, **options)
    if result["record"]:
        replayed(result["recording"], result["record"], True)
    return result

pytestmark = pytest.mark.vm


@pytest.fixture
def namespace():
    need_root_and("ip", "tcpdump")
    missing = missing_tools()
    need(not missing, f"needs {', '.join(missing)} (apt install qemu-system-x86 "
                      "busybox-static)")
    with tap_namespace("avzt-fw", "tapfw") as name:
        yield name


def need_uefi():
    missing = [path for path in (OVMF, SNPONLY) if not os.path.exists(path)]
    need(not missing, f"needs {', '.join(missing)} (apt install ovmf ipxe)")


def capture(namespace):
    # "udp" alone would pass no tagged frame: the tags are in the packet.
    capturing = Process(["ip", "netns", "exec", namespace, "tcpdump", "-l", "-e", "-n", "-i",
                         "tapfw", "udp or (vlan and udp)"])
    capturing.wait_for("listening on")
    return capturing


def stop_after(capturing, wanted, timeout=3.0):
    """Stop a capture once it has printed `wanted` offers (or `timeout`
    seconds on): tcpdump killed at once may not have printed the last ones
    it received."""
    deadline = time.monotonic() + timeout
    while len(offers(capturing.output)) < wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    capturing.stop()


def offers(capture_output):
    """tcpdump's lines of the tool's DHCP replies."""
    return [line for line in capture_output.splitlines()
            if "BOOTP/DHCP, Reply" in line or ".67 > " in line]


def lines_of(record, service):
    return [(client["stage"], client["verdict"], client["line"])
            for client in record[service]["clients"]]


def test_seabios_ipxe_drops_the_tagged_offers_and_the_tool_names_the_stage(namespace, tmp_path):
    capturing = capture(namespace)
    result = boot(namespace, "tapfw", "seabios-ipxe", "e1000", directory=str(tmp_path))
    stop_after(capturing, 3)
    explain = f"tool:\n{result['tool']}\nconsole:\n{result['console']}"
    assert result["status"] == 3, explain
    assert result["seconds"] < 30, explain
    [(stage, verdict, line)] = lines_of(result["record"], "dhcp")
    assert (stage, verdict) == ("iPXE", "drops"), explain
    assert re.search(rf"guest {GUEST_MAC} \(firmware, iPXE; offered 198\.51\.100\.\d+\) sent "
                     r"\d DHCPDISCOVERs in [\d.]+ s and every one was answered: it drops DHCP "
                     r"offers tagged vlan 0, p 0", line), line
    assert result["record"]["tftp"]["clients"] == [] and not result["ran"], explain
    tagged = offers(capturing.output)
    assert len(tagged) >= 3 and all("vlan 0, p 0" in line for line in tagged), capturing.output


def test_seabios_ipxe_untagged_fetches_the_script_and_runs_it(namespace, tmp_path):
    result = boot(namespace, "tapfw", "seabios-ipxe", "e1000", ["--untagged"],
                  directory=str(tmp_path))
    explain = f"tool:\n{result['tool']}\nconsole:\n{result['console']}"
    assert result["status"] == 0, explain
    assert [(s, v) for s, v, _ in lines_of(result["record"], "dhcp")] == [("iPXE", "accepts")]
    [(stage, verdict, line)] = lines_of(result["record"], "tftp")
    assert (stage, verdict) == ("iPXE", "accepts"), explain
    assert line.endswith("it fetched boot.ipxe (30 bytes, 1 blocks); its own frames: untagged"), \
        line
    assert result["ran"], explain  # the console: iPXE ran the script it fetched
    assert "Next server: 198.51.100.2" in result["console"] and \
        "Filename: boot.ipxe" in result["console"], explain


def test_edk2_pxe_untagged_fetches_its_boot_file(namespace, tmp_path):
    need_uefi()
    capturing = capture(namespace)
    result = boot(namespace, "tapfw", "ovmf-edk2", "virtio-net-pci", ["--untagged"],
                  directory=str(tmp_path))
    stop_after(capturing, 2)
    explain = f"tool:\n{result['tool']}\nconsole:\n{result['console']}"
    assert result["status"] == 0, explain
    [(stage, verdict, line)] = lines_of(result["record"], "tftp")
    assert (stage, verdict) == ("EDK2 PXE", "accepts"), explain
    size = os.path.getsize(SNPONLY)
    assert line.endswith(f"it fetched snponly.efi ({size:,} bytes, {size // 1468 + 1:,} "
                         "blocks); its own frames: untagged"), line  # blksize 1468: EDK2 asks
    assert "NBP file downloaded successfully" in result["console"], explain
    lines = capturing.output.splitlines()
    assert len(offers(capturing.output)) >= 2 and not [line for line in lines if "vlan" in line]


def test_edk2_pxe_given_no_boot_file_is_no_verdict_never_drops(namespace, tmp_path):
    need_uefi()
    result = boot(namespace, "tapfw", "ovmf-edk2", "virtio-net-pci", ["--untagged"],
                  timeout=30, files=[], directory=str(tmp_path))
    explain = f"tool:\n{result['tool']}\nconsole:\n{result['console']}"
    assert result["status"] == 4, explain
    [(stage, verdict, line)] = lines_of(result["record"], "dhcp")
    assert (stage, verdict) == ("EDK2 PXE", "no verdict"), explain
    assert "ignores an offer without a boot file" in line and "give --boot-file" in line, line
    assert "drops" not in result["tool"], explain
    assert RAN not in result["console"]

