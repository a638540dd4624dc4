# SPDX-License-Identifier: GPL-2.0-only
"""Linux guests on a TAP device, for the VM tests and the NIC matrix.

A guest is Debian's own kernel (linux-image-amd64, fetched with apt-get
download and unpacked, never installed) and a small initramfs: a static
busybox and an /init that loads the NIC drivers, configures the address,
pings the tool, prints a result line on the serial console and powers off.
What the guest does is chosen on the kernel command line (avz.mode=normal,
promisc or 8021q; avz.family=4 or 6), so one initramfs serves every case.
Both are cached under tests/vm/.cache (git ignores it).

qemu runs inside the test's network namespace, where the TAP is, under TCG
emulation: this machine's /dev/kvm exists but does not work, so KVM is never
tried unless ARP_ICMP_VLAN0_VM_ACCEL asks for it.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from netlab import TOOL, Process, run  # noqa: E402

CACHE = os.path.join(HERE, ".cache")
BUSYBOX = "/bin/busybox"
GUEST_MAC = "52:54:00:12:34:56"

# qemu's NIC models with a Linux driver: model -> the module that drives it.
NIC_DRIVERS = {
    "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "8139cp", "virtio-net-pci": "virtio_net",
    "pcnet": "pcnet32", "ne2k_pci": "ne2k-pci", "i82559er": "e100", "tulip": "tulip",
    "vmxnet3": "vmxnet3",
}
EXTRA_MODULES = ("virtio_pci", "8139too", "8021q")  # 8021q is loaded only when asked

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mode=normal family=4
for word in $(cat /proc/cmdline); do
    case "$word" in
        avz.mode=*) mode=${word#avz.mode=};;
        avz.family=*) family=${word#avz.family=};;
    esac
done
for module in $(cat /modules.order); do
    case "$module" in 8021q|garp|mrp|stp|llc) continue;; esac
    insmod /lib/modules/$module.ko 2>/dev/null
done
# Loaded before the link comes up, 8021q registers VLAN 0 in the NIC's filter.
[ "$mode" = 8021q ] && for module in llc stp garp mrp 8021q; do insmod /lib/modules/$module.ko; done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
[ "$mode" = promisc ] && ip link set eth0 promisc on
if [ "$family" = 6 ]; then
    echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
    ip -6 addr add 2001:db8::1/64 dev eth0
    target=2001:db8::2 ping=ping6
else
    ip addr add 198.51.100.1/24 dev eth0
    target=198.51.100.2 ping=ping
fi
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i+1))
done
driver=$(basename "$(readlink /sys/class/net/eth0/device/driver)")
echo "AVZ-DRIVER $driver mode=$mode family=$family"
$ping -c 3 -W 2 $target > /tmp/ping.out 2>&1
cat /tmp/ping.out
received=$(grep -c 'bytes from' /tmp/ping.out)
whole=$(grep -c '^64 bytes from' /tmp/ping.out)
echo "AVZ-RESULT received=$received/3 whole=$whole"
poweroff -f
"""


def kernel():
    """(vmlinuz, modules directory) of Debian's current amd64 kernel, fetched
    and unpacked into the cache once."""
    depends = run("apt-cache", "depends", "linux-image-amd64").stdout
    package = re.search(r"Depends: (linux-image-\S+-amd64)", depends).group(1)
    root = os.path.join(CACHE, package)
    if not os.path.isdir(root):
        os.makedirs(CACHE, exist_ok=True)
        for stale in glob.glob(os.path.join(CACHE, "*.deb")):
            os.remove(stale)
        subprocess.run(["apt-get", "download", package], cwd=CACHE, check=True,
                       capture_output=True, timeout=300)
        deb = glob.glob(os.path.join(CACHE, f"{package}_*.deb"))[0]
        run("dpkg-deb", "-x", deb, root + ".partial", timeout=300)
        os.remove(deb)
        os.rename(root + ".partial", root)
    vmlinuz = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))[0]
    modules = glob.glob(os.path.join(root, "lib", "modules", "*"))[0]
    return vmlinuz, modules


def _module_files(modules_dir):
    return {os.path.basename(path)[:-3]: path
            for path in glob.glob(os.path.join(modules_dir, "kernel", "**", "*.ko"),
                                  recursive=True)}


def _depends(path):
    """The module's dependencies, from its .modinfo section."""
    with open(path, "rb") as module:
        found = re.search(rb"\x00depends=([^\x00]*)\x00", module.read())
    return [d for d in found.group(1).decode().split(",") if d] if found else []


def _load_order(wanted, files):
    """`wanted` modules and their dependencies, dependencies first."""
    order = []

    def visit(name):
        if name in order:
            return
        for dependency in _depends(files[name]):
            visit(dependency)
        order.append(name)
    for name in wanted:
        visit(name)
    return order


def _cpio(entries):
    """A newc cpio archive of (name, mode, data, device) entries."""
    out = bytearray()
    for number, (name, mode, data, device) in enumerate(
            entries + [("TRAILER!!!", 0, b"", (0, 0))], start=1):
        encoded = name.encode() + b"\0"
        fields = (number, mode, 0, 0, 1, 0, len(data), 0, 0, device[0], device[1],
                  len(encoded), 0)
        out += b"070701" + b"".join(b"%08X" % field for field in fields) + encoded
        out += bytes(-len(out) % 4)
        out += data
        out += bytes(-len(out) % 4)
    return bytes(out)


def initramfs(modules_dir):
    """The initramfs, built once per kernel into the cache."""
    path = os.path.join(CACHE, os.path.basename(modules_dir) + ".initramfs")
    if os.path.exists(path):
        return path
    files = _module_files(modules_dir)
    order = _load_order(list(NIC_DRIVERS.values()) + list(EXTRA_MODULES), files)
    entries = [(d, 0o40755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys", "tmp",
                                                    "lib", "lib/modules")]
    entries.append(("dev/console", 0o20600, b"", (5, 1)))
    with open(BUSYBOX, "rb") as busybox:
        entries.append(("bin/busybox", 0o100755, busybox.read(), (0, 0)))
    entries.append(("init", 0o100755, INIT.encode(), (0, 0)))
    entries.append(("modules.order", 0o100644, "\n".join(order).encode(), (0, 0)))
    for name in order:
        with open(files[name], "rb") as module:
            entries.append((f"lib/modules/{name}.ko", 0o100644, module.read(), (0, 0)))
    with open(path + ".partial", "wb") as out:
        out.write(_cpio(entries))
    os.rename(path + ".partial", path)
    return path


def missing_tools():
    return [tool for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb")
            if not shutil.which(tool)] + ([] if os.path.exists(BUSYBOX) else ["busybox"])


def run_guest(namespace, tap, nic, mode="normal", family=4, timeout=90):
    """Boot a guest whose NIC `nic` sits on `tap` in `namespace`; return its
    serial console output once it powered off."""
    vmlinuz, modules_dir = kernel()
    accel = os.environ.get("ARP_ICMP_VLAN0_VM_ACCEL", "tcg")
    cmd = ["ip", "netns", "exec", namespace, "qemu-system-x86_64", "-accel", accel,
           "-m", "256", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-kernel", vmlinuz, "-initrd", initramfs(modules_dir),
           "-append", f"console=ttyS0 panic=-1 quiet avz.mode={mode} avz.family={family}",
           "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
           "-device", f"{nic},netdev=net0,mac={GUEST_MAC},romfile="]
    guest = Process(cmd)
    try:
        guest.wait(timeout=timeout)
    finally:
        guest.stop()
    return guest.output


def result_of(console):
    """(received, whole) echo replies from the guest's result line, or None."""
    found = re.search(r"AVZ-RESULT received=(\d+)/3 whole=(\d+)", console)
    return (int(found.group(1)), int(found.group(2))) if found else None


def start_tool(namespace, tap, *options):
    tool = Process(["ip", "netns", "exec", namespace, sys.executable, TOOL, *options, tap])
    tool.wait_for("Hit Ctrl-C")
    return tool


def make_tap(namespace, tap):
    run("ip", "-n", namespace, "tuntap", "add", "dev", tap, "mode", "tap")
    run("ip", "-n", namespace, "link", "set", tap, "up")
