# SPDX-License-Identifier: GPL-2.0-only
"""Linux guests on a TAP device, for the VM tests and the NIC matrix.

A guest is Debian's own kernel (linux-image-amd64 of a release: bullseye,
bookworm, trixie or sid, fetched with apt-get download and unpacked, never
installed)
and a small initramfs: a static busybox and an /init that loads the NIC
drivers, configures the address, pings the tool, prints its kernel release
and a result line on the serial console and powers off. What the guest does
is chosen on the kernel command line (avz.mode=normal, promisc or 8021q;
avz.family=4 or 6; avz.do=ping, silent (configured, then quiet: for the
tool's probe) or dhcp (busybox udhcpc for the address, then the ping)), so
one initramfs serves every case. A second initramfs (ppp=True) adds the host's
pppd with its rp-pppoe plugin, the libraries they load, and the kernel's PPP
modules: avz.do=pppoe runs a real PPP client from PADI to LCP. The release is an
argument, or ARP_ICMP_VLAN0_VM_KERNEL (default bookworm).

The packages come through a private apt configuration per release (its own
sources list, lists and cache under tests/vm/.cache, which git ignores): the
system's sources are never touched. Three package layouts are handled:
bullseye's and bookworm's (modules under lib/modules, uncompressed), trixie's (usr/lib/modules,
modules compressed, virtio built in) and sid's 7.x (an empty linux-image
package over linux-binary, the kernel at usr/lib/modules/VERSION/vmlinuz, and
linux-modules).

qemu runs inside the test's network namespace, where the TAP is, under TCG
emulation: this machine's /dev/kvm exists but does not work, so KVM is never
tried unless ARP_ICMP_VLAN0_VM_ACCEL asks for it. Which qemu is an argument
too: the system's (7.2, the default) or a newer Debian one that qemu.py
keeps in the cache (10.0, 11.1).
"""

import contextlib
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from netlab import TOOL, Process, replayed, run  # noqa: E402
from qemu import CACHE, MIRROR, SYSTEM_QEMU  # noqa: E402
from qemu import command as qemu_command  # noqa: E402

BUSYBOX = "/bin/busybox"
GUEST_MAC = "52:54:00:12:34:56"
RELEASES = ("bullseye", "bookworm", "trixie", "sid")  # Debian 11, 12, 13 and unstable
DEFAULT_RELEASE = os.environ.get("ARP_ICMP_VLAN0_VM_KERNEL", "bookworm")

# qemu's NIC models with a Linux driver: model -> the module that drives it.
NIC_DRIVERS = {
    "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "8139cp", "virtio-net-pci": "virtio_net",
    "pcnet": "pcnet32", "ne2k_pci": "ne2k-pci", "i82559er": "e100", "tulip": "tulip",
    "vmxnet3": "vmxnet3",
}
EXTRA_MODULES = ("virtio_pci", "8139too", "8021q")  # 8021q is loaded only when asked
PPP_MODULES = ("ppp_generic", "pppox", "pppoe")  # in the ppp=True initramfs
PPPD, PPPD_PLUGIN = "/usr/sbin/pppd", "/usr/lib/pppd/2.4.9/rp-pppoe.so"  # Debian 12's ppp
# What booting a guest runs -> the Debian package that has it. The busybox
# must be the static one: it goes into the initramfs alone.
PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static",
            "ip": "iproute2", "apt-get": "apt", "dpkg-deb": "dpkg"}

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mode=normal family=4 do=ping wait=20
for word in $(cat /proc/cmdline); do
    case "$word" in
        avz.mode=*) mode=${word#avz.mode=};;
        avz.family=*) family=${word#avz.family=};;
        avz.do=*) do=${word#avz.do=};;
        avz.wait=*) wait=${word#avz.wait=};;
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
    [ "$do" = dhcp ] || ip -6 addr add 2001:db8::1/64 dev eth0
    target=2001:db8::2 ping=ping6
else
    [ "$do" = dhcp ] || ip addr add 198.51.100.1/24 dev eth0
    target=198.51.100.2 ping=ping
fi
i=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i+1))
done
driver=$(basename "$(readlink /sys/class/net/eth0/device/driver)")
echo "AVZ-KERNEL $(uname -r)"
echo "AVZ-DRIVER $driver mode=$mode family=$family do=$do"
case "$do" in
silent)  # configured, then quiet: only the tool's probe can tell
    sleep "$wait"
    echo "AVZ-RESULT silent"
    poweroff -f;;
dhcp)  # a stock guest: its address from DHCP (and SLAAC), then a ping
    udhcpc -i eth0 -f -q -n -t 6 -T 2 -s /udhcpc.script > /tmp/dhcp.out 2>&1
    cat /tmp/dhcp.out
    # No lease: stay a while, so that its Router Solicitations (4 s, then 8 s
    # apart) are seen too.
    grep -q '^AVZ-LEASE ' /tmp/dhcp.out || { echo "AVZ-LEASE none"; sleep 12; poweroff -f; }
    sleep "$wait";;
pppoe)  # a real PPP client: pppd and its rp-pppoe plugin, PADI to LCP, then off
    mknod /dev/ppp c 108 0
    mkdir -p /var/run /etc/ppp
    # At most 20 s: a PADI unanswered is sent again 5, then 10 s later.
    timeout 20 pppd plugin /usr/lib/pppd/2.4.9/rp-pppoe.so nic-eth0 noauth nodetach logfd 2 \
        debug noipdefault nodefaultroute lcp-max-configure 3 lcp-restart 2 maxfail 1 \
        > /tmp/ppp.out 2>&1
    echo "AVZ-PPP exit=$?"
    cat /tmp/ppp.out
    poweroff -f;;
esac
$ping -c 3 -W 2 $target > /tmp/ping.out 2>&1
cat /tmp/ping.out
received=$(grep -c 'bytes from' /tmp/ping.out)
whole=$(grep -c '^64 bytes from' /tmp/ping.out)
echo "AVZ-RESULT received=$received/3 whole=$whole"
poweroff -f
"""
# busybox udhcpc's event script: configures what the lease says.
UDHCPC_SCRIPT = r"""#!/bin/busybox sh
case "$1" in
    deconfig) ip addr flush dev "$interface";;
    bound|renew)
        ip addr add "$ip/$mask" dev "$interface"
        echo "AVZ-LEASE $ip/$mask router $router server $serverid";;
esac
"""


class Kernel(NamedTuple):
    release: str      # bullseye, bookworm, trixie or sid
    version: str      # as uname -r prints it, e.g. 6.1.0-56-amd64
    vmlinuz: str
    modules: str      # the modules directory, lib/modules/VERSION


def _apt(release, command, *args, cwd=None):
    """apt-get or apt-cache with a private configuration for `release`."""
    home = os.path.join(CACHE, "apt", release)
    sources = os.path.join(home, "sources.list")
    if not os.path.exists(sources):
        for folder in ("lists/partial", "cache/archives/partial"):
            os.makedirs(os.path.join(home, folder), exist_ok=True)
        suites = [(MIRROR, release)]
        if release != "sid":  # a stable release's current kernel is in its security suite
            suites.append((f"{MIRROR}-security", f"{release}-security"))
        with open(sources, "w") as out:
            for mirror, suite in suites:
                out.write(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                          f"{mirror} {suite} main\n")
    options = [f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/dev/null",
               f"-oDir::State::Lists={home}/lists", f"-oDir::Cache={home}/cache",
               # A mirror that is a frozen snapshot serves sid's Release past its
               # Valid-Until date; the signature is still checked.
               "-oAcquire::Check-Valid-Until=false"]
    return subprocess.run([command, *options, *args], cwd=cwd, check=True,
                          capture_output=True, text=True, timeout=600).stdout


def kernel(release=DEFAULT_RELEASE):
    """Debian's current amd64 kernel in `release`, fetched and unpacked into
    the cache once."""
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}: choose from {', '.join(RELEASES)}")
    if not glob.glob(os.path.join(CACHE, "apt", release, "lists", "*Packages*")):
        _apt(release, "apt-get", "update")
    image = re.search(r"Depends: (linux-image-\S+-amd64)",
                      _apt(release, "apt-cache", "depends", "linux-image-amd64")).group(1)
    root = os.path.join(CACHE, "kernels", release, image)
    if not os.path.isdir(root):
        shutil.rmtree(os.path.dirname(root), ignore_errors=True)  # an older one
        os.makedirs(os.path.dirname(root))
        depends = _apt(release, "apt-cache", "depends", image)
        # From 7.x linux-image is empty: the kernel is linux-binary, the modules
        # linux-modules, modules.builtin in linux-base-VERSION.
        packages = re.findall(r"Depends: (linux-(?:base|binary|modules)-\d\S+)",
                              depends) or [image]
        scratch = os.path.join(CACHE, "debs")
        shutil.rmtree(scratch, ignore_errors=True)
        os.makedirs(scratch)
        _apt(release, "apt-get", "download", *packages, cwd=scratch)
        for deb in glob.glob(os.path.join(scratch, "*.deb")):
            run("dpkg-deb", "-x", deb, root + ".partial", timeout=300)
        shutil.rmtree(scratch)
        os.rename(root + ".partial", root)
    modules = glob.glob(os.path.join(root, "lib", "modules", "*")) or glob.glob(
        os.path.join(root, "usr", "lib", "modules", "*"))
    version = os.path.basename(modules[0])
    vmlinuz = [path for path in (os.path.join(root, "boot", f"vmlinuz-{version}"),
                                 os.path.join(modules[0], "vmlinuz")) if os.path.exists(path)]
    return Kernel(release, version, vmlinuz[0], modules[0])


def _module_name(path):
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def _module_files(modules_dir):
    """Module name (with _ for -) -> its file, compressed or not."""
    return {_module_name(path): path
            for path in glob.glob(os.path.join(modules_dir, "kernel", "**", "*.ko*"),
                                  recursive=True)}


def _builtin(modules_dir):
    """The modules built into the kernel, by name."""
    try:
        with open(os.path.join(modules_dir, "modules.builtin")) as builtin:
            return {_module_name(line.strip()) for line in builtin}
    except FileNotFoundError:
        return set()


def _module_bytes(path):
    """A module file's content, decompressed: xz and gzip with the standard
    library, zstd with the zstd command."""
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(os.path.splitext(path)[1], open)
    with opener(path, "rb") as module:
        return module.read()


def _depends(content):
    """The module's dependencies, from its .modinfo section."""
    found = re.search(rb"\x00depends=([^\x00]*)\x00", content)
    return [d.replace("-", "_") for d in found.group(1).decode().split(",") if d] \
        if found else []


def _load_order(wanted, files, builtin):
    """`wanted` modules and their dependencies, dependencies first, those
    built into the kernel left out; name -> content."""
    order = {}

    def visit(name):
        if name in order or name in builtin:
            return
        if name not in files:
            raise FileNotFoundError(f"module {name} is neither built in nor shipped")
        content = _module_bytes(files[name])
        for dependency in _depends(content):
            visit(dependency)
        order[name] = content
    for name in wanted:
        visit(name.replace("-", "_"))
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


def _shared_libraries(*binaries):
    """The files `binaries` load (ldd's), the loader's included."""
    listed = run("ldd", *binaries).stdout
    return sorted(set(re.findall(r"(?:=> )?(/\S+\.so[.\d]*) \(0x", listed)))


def _with_folders(path, entries, made):
    """`entries` extended with the folders above `path` not yet `made`."""
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        folder = "/".join(parts[:i])
        if folder not in made:
            made.add(folder)
            entries.append((folder, 0o40755, b"", (0, 0)))


def initramfs(modules_dir, ppp=False):
    """The initramfs, built once per kernel into the cache; with `ppp`, pppd,
    its rp-pppoe plugin and the PPP modules too (PPPD must be installed)."""
    recipe = hashlib.sha256((INIT + UDHCPC_SCRIPT + repr(NIC_DRIVERS) + repr(EXTRA_MODULES)
                             + ("ppp" + repr(PPP_MODULES) if ppp else "")).encode())
    path = os.path.join(CACHE, "initramfs", f"{os.path.basename(modules_dir)}-"
                                           f"{recipe.hexdigest()[:8]}")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    order = _load_order(list(NIC_DRIVERS.values()) + list(EXTRA_MODULES)
                        + list(PPP_MODULES if ppp else ()),
                        _module_files(modules_dir), _builtin(modules_dir))
    entries = [(d, 0o40755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys", "tmp",
                                                    "lib", "lib/modules")]
    if ppp:
        made = {"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"}
        for source, target in [(PPPD, "/bin/pppd"), (PPPD_PLUGIN, PPPD_PLUGIN)] + [
                (library, library) for library in _shared_libraries(PPPD, PPPD_PLUGIN)]:
            _with_folders(target, entries, made)
            with open(source, "rb") as file:
                entries.append((target.lstrip("/"), 0o100755, file.read(), (0, 0)))
    entries.append(("dev/console", 0o20600, b"", (5, 1)))
    with open(BUSYBOX, "rb") as busybox:
        entries.append(("bin/busybox", 0o100755, busybox.read(), (0, 0)))
    entries.append(("init", 0o100755, INIT.encode(), (0, 0)))
    entries.append(("udhcpc.script", 0o100755, UDHCPC_SCRIPT.encode(), (0, 0)))
    entries.append(("modules.order", 0o100644, "\n".join(order).encode(), (0, 0)))
    for name, content in order.items():
        entries.append((f"lib/modules/{name}.ko", 0o100644, content, (0, 0)))
    with open(path + ".partial", "wb") as out:
        out.write(_cpio(entries))
    os.rename(path + ".partial", path)
    return path


def missing_tools():
    """What booting a guest needs and this machine lacks (PACKAGES says where
    each comes from)."""
    return [tool for tool in PACKAGES
            if not (os.path.exists(BUSYBOX) if tool == "busybox" else shutil.which(tool))]


def run_guest(namespace, tap, nic, mode="normal", family=4, timeout=90,
              release=DEFAULT_RELEASE, do="ping", wait=20, qemu=SYSTEM_QEMU):
    """Boot a guest whose NIC `nic` sits on `tap` in `namespace`; return its
    serial console output once it powered off. `do`: ping (configure the
    address, ping the tool), silent (configure the address, send nothing
    for `wait` seconds) or dhcp (get the address from DHCP, wait, ping).
    `qemu`: which one boots it, a key of qemu.QEMUS ("7.2", the system's,
    "10.0" or "11.1"). do="pppoe": pppd with its rp-pppoe plugin, until LCP
    gives up (initramfs(ppp=True))."""
    guest_kernel = kernel(release)
    accel = os.environ.get("ARP_ICMP_VLAN0_VM_ACCEL", "tcg")
    cmd = ["ip", "netns", "exec", namespace, *qemu_command(qemu), "-accel", accel,
           "-m", "256", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-kernel", guest_kernel.vmlinuz,
           "-initrd", initramfs(guest_kernel.modules, ppp=do == "pppoe"),
           "-append", f"console=ttyS0 panic=-1 quiet avz.mode={mode} avz.family={family} "
                      f"avz.do={do} avz.wait={wait}",
           "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
           "-device", f"{nic},netdev=net0,mac={GUEST_MAC},romfile="]
    guest = Process(cmd)
    try:
        guest.wait(timeout=timeout)
    finally:
        guest.stop()
    return guest.output


def kernel_of(console):
    """The kernel release the guest printed (uname -r), or None."""
    found = re.search(r"AVZ-KERNEL (\S+)", console)
    return found.group(1) if found else None


def result_of(console):
    """(received, whole) echo replies from the guest's result line, or None."""
    found = re.search(r"AVZ-RESULT received=(\d+)/3 whole=(\d+)", console)
    return (int(found.group(1)), int(found.group(2))) if found else None


RECORDINGS = []  # (pcap, the tool, its --json path, --until-verdict) of start_tool's runs


def start_tool(namespace, tap, *options):
    """The tool on `tap` in `namespace`; a run with --json also records
    with -w (beside its summary), for judge_recordings()."""
    recording = None
    if "--json" in options:
        recording = options[options.index("--json") + 1] + ".pcap"
        options += ("-w", recording)
    tool = Process(["ip", "netns", "exec", namespace, sys.executable, TOOL, *options, tap])
    if recording:
        RECORDINGS.append((recording, tool, options[options.index("--json") + 1],
                           "--until-verdict" in options))
    tool.wait_for("Hit Ctrl-C")
    return tool


def judge_recordings():
    """start_tool's recordings, judged again with -r once their tool has
    ended: the same verdicts as its --json summary (netlab.replayed())."""
    while RECORDINGS:
        pcap, tool, path, until_verdict = RECORDINGS.pop()
        tool.stop()
        with open(path) as file:
            replayed(pcap, json.load(file), until_verdict)


def wait_for_the_guest_on(namespace, tap, timeout=90):
    """Until the guest's first frame (its IPv6 chatter as eth0 comes up,
    just after its address is configured) crosses `tap`: when a silent
    guest can be probed."""
    run("ip", "netns", "exec", namespace, "tcpdump", "-c", "1", "-i", tap, "ether", "src",
        GUEST_MAC, timeout=timeout)


def make_tap(namespace, tap):
    run("ip", "-n", namespace, "tuntap", "add", "dev", tap, "mode", "tap")
    run("ip", "-n", namespace, "link", "set", tap, "up")


@contextlib.contextmanager
def tap_namespace(prefix, tap="tapvm"):
    """A throwaway namespace (its name: `prefix` and a random suffix) with
    TAP `tap` up in it, for a guest and the tool; deleted on every exit."""
    namespace = f"{prefix}-{os.urandom(4).hex()}"
    run("ip", "netns", "add", namespace)
    try:
        make_tap(namespace, tap)
        yield namespace
    finally:
        run("ip", "netns", "del", namespace, check=False)
