# SPDX-License-Identifier: GPL-2.0-only
"""Five real DHCP clients, each run by hand in a netlab.Lab's guest
namespace against the tool's --dhcp server, for
tests/netns/test_netns_services.py and tests/figures/dhcp_clients.py. No pytest here.

The clients: ISC dhclient (isc-dhcp-client), dhcpcd (dhcpcd-base: the binary
alone; dhcpcd5 would start a service), busybox udhcpc, systemd-networkd and
NetworkManager's internal DHCP client. No host service is started, stopped
or reconfigured: each client runs in the guest namespace under `unshare
--mount --uts` with private files (a tmpfs over /run and over /var/lib
where the client writes there, its hooks off), and is stopped by its PID;
whatever it left running in the namespace is ended by PID too.
NetworkManager is not installed: network-manager and the libraries this
system lacks (ldd) are fetched with apt-get download into
tests/figures/.cache/networkmanager and run from there in its initrd mode
(--configure-and-quit=initrd: no D-Bus).

Each client function takes the Lab, first removes the interface's IPv4
addresses (the Lab's static GUEST_IP), and returns a Lease: (the address
the client put on the interface, with its prefix, or None; the seconds
from the client's start to that address, or that it waited; its version),
with .output, what it printed. missing(client) says what this machine
lacks to run one, and how to get it.

Two ways to hide VLAN-0-tagged frames from a guest: drop_vlan0_at_ingress()
is the nftables netdev ingress rule the other namespace tests use, which a
client reading an ETH_P_ALL packet socket (dhclient, dhcpcd) still sees
past: packet taps run before the ingress hook; drop_vlan0_on_the_wire()
puts the rule on the namespace's veth and forwards what passes to a second
veth pair, on whose far end (WIRE_NIC) the client runs, as a NIC whose
VLAN filter drops the frame before any socket.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from typing import NamedTuple

from netlab import GUEST_IF, TESTS, Unavailable, drop_vlan0, library_path, run, unpacked

CLIENTS = ("dhclient", "dhcpcd", "udhcpc", "networkd", "networkmanager")
NAMES = {"dhclient": "ISC dhclient", "dhcpcd": "dhcpcd", "udhcpc": "busybox udhcpc",
         "networkd": "systemd-networkd", "networkmanager": "NetworkManager (internal DHCP)"}

NETWORKD = "/lib/systemd/systemd-networkd"
CACHE = os.path.join(TESTS, "figures", ".cache")
NM_ROOT = os.path.join(CACHE, "networkmanager")
NM_PACKAGES = ("network-manager",)
# NetworkManager's libraries that a system without it may lack (ldd's
# "not found") -> the Debian package that has each.
NM_LIBRARIES = {"libndp.so.0": "libndp0", "libmm-glib.so.0": "libmm-glib0",
                "libteamdctl.so.0": "libteamdctl0", "libjansson.so.4": "libjansson4",
                "libbluetooth.so.3": "libbluetooth3", "libcurl-gnutls.so.4": "libcurl3-gnutls",
                "libpsl.so.5": "libpsl5", "libnewt.so.0.52": "libnewt0.52",
                "libreadline.so.8": "libreadline8", "libaudit.so.1": "libaudit1",
                "libgnutls.so.30": "libgnutls30", "libudev.so.1": "libudev1",
                "libsystemd.so.0": "libsystemd0", "libselinux.so.1": "libselinux1",
                "libglib-2.0.so.0": "libglib2.0-0", "libgio-2.0.so.0": "libglib2.0-0",
                "libgobject-2.0.so.0": "libglib2.0-0", "libgmodule-2.0.so.0": "libglib2.0-0",
                # libcurl's, which a minimal Debian 12 lacks
                "libbrotlidec.so.1": "libbrotli1", "libbrotlicommon.so.1": "libbrotli1",
                "liblber-2.5.so.0": "libldap-2.5-0", "libldap-2.5.so.0": "libldap-2.5-0",
                "libnghttp2.so.14": "libnghttp2-14", "librtmp.so.1": "librtmp1",
                "libssh2.so.1": "libssh2-1", "libsasl2.so.2": "libsasl2-2"}
NM_BINARY = "usr/sbin/NetworkManager"

WIRE, WIRE_NIC = "avz-wire", "avz-nic"   # drop_vlan0_on_the_wire()'s veth pair


class Lease(tuple):
    """(address with prefix or None, seconds, version); .output: what the
    client printed."""

    def __new__(cls, address, seconds, version, output=""):
        lease = super().__new__(cls, (address, seconds, version))
        lease.output = output
        return lease

    address = property(lambda self: self[0])
    seconds = property(lambda self: self[1])
    version = property(lambda self: self[2])


# -- what is there

def missing(client):
    """None if `client` can run here, else what is missing and how to get
    it. For networkmanager this fetches its packages once (apt-get download,
    a few MB) if they are not in the cache yet."""
    if client not in CLIENTS:
        raise ValueError(f"unknown DHCP client {client!r}: one of {', '.join(CLIENTS)}")
    lacking = [tool for tool in ("ip", "unshare", "mount") if not shutil.which(tool)]
    if lacking:
        return f"needs {', '.join(lacking)} (apt-get install iproute2 util-linux mount)"
    if client == "dhclient" and not shutil.which("dhclient"):
        return "dhclient is not installed (apt-get install --no-install-recommends isc-dhcp-client)"
    if client == "dhcpcd" and not shutil.which("dhcpcd"):
        return ("dhcpcd is not installed (apt-get install dhcpcd-base: the binary alone; "
                "not dhcpcd5, whose postinst starts a service)")
    if client == "udhcpc":
        if not shutil.which("busybox"):
            return "busybox is not installed (apt-get install busybox or busybox-static)"
        if "udhcpc" not in run("busybox", "--list", check=False).stdout.split():
            return "this busybox has no udhcpc applet (apt-get install busybox-static)"
    if client == "networkd":
        if not os.access(NETWORKD, os.X_OK):
            return f"no {NETWORKD} (Debian 12: apt-get install systemd; its daemon is not started)"
        if run("getent", "passwd", "systemd-network", check=False).returncode != 0:
            return "no user systemd-network, which systemd-networkd runs as (the systemd package makes it)"
    if client == "networkmanager":
        try:
            nm_tree()
        except NotHere as why:
            return str(why)
    return None


class NotHere(Exception):
    """A client cannot be had on this machine: why, and how to get it."""


def nm_tree():
    """The unpacked NetworkManager tree (netlab.unpacked: network-manager
    and the libraries ldd finds missing, never installed: its maintainer
    scripts would start the daemon); NotHere if it cannot be had."""
    try:
        return unpacked(NM_ROOT, NM_PACKAGES, [NM_BINARY], NM_LIBRARIES)
    except Unavailable as why:
        raise NotHere(str(why)) from None


def _first_version(command, pattern=r"(\d+(?:\.\d+)+(?:-P\d+)?)", env=None):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10,
                                env=env and {**os.environ, **env})
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(pattern, result.stdout + result.stderr)
    return found.group(1) if found else None


def version(client):
    """The client's version, as it says it; None if it cannot say."""
    if client == "dhclient":
        return _first_version(["dhclient", "--version"])
    if client == "dhcpcd":
        return _first_version(["dhcpcd", "--version"])
    if client == "udhcpc":
        return _first_version(["busybox"])
    if client == "networkd":
        return _first_version([NETWORKD, "--version"], r"systemd (\d+ \([^)]*\))")
    if client == "networkmanager":
        return _first_version([os.path.join(NM_ROOT, NM_BINARY), "--version"],
                              env={"LD_LIBRARY_PATH": library_path(NM_ROOT)})
    raise ValueError(f"unknown DHCP client {client!r}")


# -- the guest's side: two ways to hide VLAN-0-tagged frames from it

def drop_vlan0_at_ingress(lab, interface=GUEST_IF):
    """The nftables netdev ingress rule 'vlan id 0 drop' on the guest's
    interface (netlab.drop_vlan0). Returns a function that reads its counter."""
    return drop_vlan0(lab.in_guest, interface)


def drop_vlan0_on_the_wire(lab):
    """The same rule on the Lab's guest veth, which then forwards every
    other frame to a second veth pair (WIRE, WIRE_NIC) in the guest
    namespace, and WIRE's frames back: a client on WIRE_NIC never sees a
    VLAN-0-tagged frame, not even on a packet socket. Returns (WIRE_NIC,
    a function that reads the rule's counter)."""
    g = lab.in_guest
    g("ip", "link", "add", WIRE, "type", "veth", "peer", "name", WIRE_NIC)
    for dev in (WIRE, WIRE_NIC):
        g("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        g("ip", "link", "set", dev, "up")
    counter = drop_vlan0(g, GUEST_IF)
    g("nft", "add", "rule", "netdev", "avz", "ingress", "fwd", "to", WIRE)
    g("nft", "add", "chain", "netdev", "avz", "back",
      f"{{ type filter hook ingress device {WIRE} priority 0; }}")
    g("nft", "add", "rule", "netdev", "avz", "back", "fwd", "to", GUEST_IF)
    return WIRE_NIC, counter


# -- running a client

def ipv4_address(lab, interface):
    """The first IPv4 address (with prefix) on `interface` in the guest,
    not counting IPv4 link-local ones (dhcpcd's fallback, 169.254/16: no
    lease); None if there is none."""
    shown = lab.in_guest("ip", "-4", "-o", "addr", "show", "dev", interface).stdout
    for address in re.findall(r"\binet (\S+)", shown):
        if not address.startswith("169.254."):
            return address
    return None


def _reap(lab, keep):
    """End what a client left running in the guest namespace (privilege-
    separated helpers, a forked daemon), by PID: every process there is
    one this run started; `keep`: the PIDs of the Lab's own processes."""
    listed = run("ip", "netns", "pids", lab.guest, check=False).stdout.split()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [int(pid) for pid in listed if pid.isdigit() and int(pid) not in keep]
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not left:
            return
        time.sleep(0.5)
        listed = run("ip", "netns", "pids", lab.guest, check=False).stdout.split()


def _run(lab, client, command, interface, timeout, until):
    """Start `command` in the guest namespace, watch `interface` for an
    IPv4 address until one comes, the client ends, `timeout` passes or
    `until()` is true; stop it by PID; a Lease."""
    lab.in_guest("ip", "-4", "addr", "flush", "dev", interface)
    keep = {process.popen.pid for process in lab.processes}
    process = lab.start(lab.guest, *command)
    started = time.monotonic()
    address = None
    try:
        while True:
            address = ipv4_address(lab, interface)
            took = time.monotonic() - started
            if address or took > timeout or (until is not None and until()):
                break
            if process.popen.poll() is not None:
                address = ipv4_address(lab, interface)  # set just before it ended
                break
            time.sleep(0.05)
    finally:
        process.stop()
        _reap(lab, keep)
    return Lease(address, round(took, 2), version(client), process.output)


def _private(lab, client):
    """A private folder for one client run's files, inside the Lab's
    scratch folder (deleted with the Lab)."""
    return tempfile.mkdtemp(prefix=f"{client}-", dir=lab.scratch)


def _unshared(script):
    """`script` (sh) in private mount and UTS namespaces: what it mounts,
    and any hostname a client might set, stay there."""
    return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-ec", script]


def dhclient(lab, interface=GUEST_IF, timeout=20, until=None, fast=False):
    """ISC dhclient -d -1 with a private config, lease file, PID file and
    a script that only sets the address. fast=True: a config with
    initial-interval 1 and backoff-cutoff 2 (DISCOVERs 1-2 s apart rather
    than its default pace, 4-8 s and then 8-15 s here)."""
    home = _private(lab, "dhclient")
    config = os.path.join(home, "dhclient.conf")
    with open(config, "w") as file:
        file.write(f"timeout {int(timeout)};\n")
        if fast:
            file.write("initial-interval 1;\nbackoff-cutoff 2;\n")
    script = os.path.join(home, "script")
    with open(script, "w") as file:
        file.write('#!/bin/sh\necho "script: $reason $new_ip_address/$new_subnet_mask"\n'
                   'case "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
                   '  ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface";;\n'
                   'esac\nexit 0\n')
    os.chmod(script, 0o700)
    command = ["dhclient", "-4", "-d", "-1", "-v", "-cf", config, "-sf", script,
               "-lf", os.path.join(home, "leases"), "-pf", os.path.join(home, "pid"), interface]
    return _run(lab, "dhclient", _unshared(f"exec {shlex.join(command)}"), interface,
                timeout + 2, until)


def dhcpcd(lab, interface=GUEST_IF, timeout=20, until=None):
    """dhcpcd -B -1 -4 with no config (-f /dev/null), no hooks (-c
    /bin/true: its resolv.conf and hostname hooks never run) and no IPv4LL
    fallback (-L: with -1 an IPv4LL address 10 s in would end it), a tmpfs
    over /run and /var/lib (its run and database folders). About 6 s: its
    start delay and three ARP probes of the address before it binds."""
    command = ["dhcpcd", "-B", "-1", "-4", "-L", "-d", "-f", "/dev/null", "-c", "/bin/true",
               "-t", str(int(timeout)), interface]
    script = ("mount -t tmpfs -o mode=0755 tmpfs /run\n"
              "mount -t tmpfs -o mode=0755 tmpfs /var/lib\n"
              "mkdir /var/lib/dhcpcd\n"
              f"exec {shlex.join(command)}")
    return _run(lab, "dhcpcd", _unshared(script), interface, timeout + 2, until)


def udhcpc(lab, interface=GUEST_IF, timeout=20, until=None):
    """busybox udhcpc -f -q -n, DISCOVERs 2 s apart (-T 2) for `timeout`,
    with a script that only sets the address."""
    home = _private(lab, "udhcpc")
    script = os.path.join(home, "script")
    with open(script, "w") as file:
        file.write('#!/bin/sh\necho "script: $1 $ip/$subnet"\n'
                   'case "$1" in bound|renew) ip addr add "$ip/$subnet" dev "$interface";; esac\n'
                   'exit 0\n')
    os.chmod(script, 0o700)
    tries = max(1, int(timeout) // 2)
    command = ["busybox", "udhcpc", "-i", interface, "-f", "-q", "-n", "-t", str(tries),
               "-T", "2", "-s", script]
    return _run(lab, "udhcpc", _unshared(f"exec {shlex.join(command)}"), interface,
                timeout + 2, until)


def networkd(lab, interface=GUEST_IF, timeout=20, until=None):
    """systemd-networkd with a tmpfs over /run holding its one .network
    file (DHCP=ipv4 on `interface`, nothing else) and its state folder,
    /sys remounted read-only (a container: it does not wait for udev), no
    D-Bus. It drops to the user systemd-network itself."""
    home = _private(lab, "networkd")
    network = os.path.join(home, "10-avz.network")
    with open(network, "w") as file:
        file.write(f"[Match]\nName={interface}\n\n[Network]\nDHCP=ipv4\n"
                   "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    script = ("mount -t tmpfs -o mode=0755 tmpfs /run\n"
              "mkdir -p /run/systemd/network /run/systemd/netif\n"
              f"cp {shlex.quote(network)} /run/systemd/network/\n"
              "chown systemd-network:systemd-network /run/systemd/netif\n"
              "mount -o remount,bind,ro /sys\n"
              f"exec {NETWORKD}")
    return _run(lab, "networkd", _unshared(script), interface, timeout, until)


def networkmanager_script(lab, client, interface, ipv4, ipv6, device=""):
    """The sh script (under _unshared) that runs NetworkManager from
    nm_tree(), --configure-and-quit=initrd (no D-Bus), dhcp=internal,
    dns=none, hostname-mode=none, with one keyfile profile on `interface`
    (its [ipv4] and [ipv6] sections' lines: `ipv4`, `ipv6`) and `device`
    ([device] lines, if any); every config, state and run file private (a
    tmpfs over /run and /var/lib), /sys read-only so that it does not wait
    for udev."""
    root = nm_tree()
    home = _private(lab, client)
    os.makedirs(os.path.join(home, "conf.d"))
    connections = os.path.join(home, "connections")
    os.makedirs(connections)
    config = os.path.join(home, "NetworkManager.conf")
    with open(config, "w") as file:
        file.write("[main]\nplugins=keyfile\ndhcp=internal\ndns=none\nrc-manager=unmanaged\n"
                   "hostname-mode=none\nno-auto-default=*\n\n"
                   + (f"[device]\n{device}\n" if device else "")
                   + f"[keyfile]\npath={connections}\n\n[logging]\nlevel=INFO\n")
    profile = os.path.join(connections, "avz.nmconnection")
    with open(profile, "w") as file:
        file.write(f"[connection]\nid=avz\ntype=ethernet\ninterface-name={interface}\n"
                   f"autoconnect=true\n\n[ipv4]\n{ipv4}\n[ipv6]\n{ipv6}")
    os.chmod(profile, 0o600)
    command = [os.path.join(root, NM_BINARY), "--no-daemon", "--debug",
               "--configure-and-quit=initrd", f"--config={config}",
               f"--config-dir={home}/conf.d", f"--system-config-dir={home}/conf.d",
               f"--intern-config={home}/intern.conf", f"--state-file={home}/NetworkManager.state",
               f"--pid-file={home}/NetworkManager.pid"]
    return ("mount -t tmpfs -o mode=0755 tmpfs /run\n"
            "mount -t tmpfs -o mode=0755 tmpfs /var/lib\n"
            "mkdir -p /run/NetworkManager /var/lib/NetworkManager\n"
            "mount -o remount,bind,ro /sys\n"
            f"export LD_LIBRARY_PATH={shlex.quote(library_path(root))}\n"
            f"exec {shlex.join(command)}")


def networkmanager(lab, interface=GUEST_IF, timeout=20, until=None):
    """NetworkManager (networkmanager_script()) with one profile: ipv4.method
    auto on `interface`, ipv6 disabled."""
    script = networkmanager_script(lab, "networkmanager", interface,
                                   f"method=auto\ndhcp-timeout={int(timeout)}\n",
                                   "method=disabled\n")
    return _run(lab, "networkmanager", _unshared(script), interface, timeout, until)

RUN = {"dhclient": dhclient, "dhcpcd": dhcpcd, "udhcpc": udhcpc, "networkd": networkd,
       "networkmanager": networkmanager}


def lease(lab, client, **options):
    """Run `client` (one of CLIENTS) with `options` (interface, timeout,
    until; fast for dhclient); its Lease."""
    return RUN[client](lab, **options)


# -- a client against the tool

TOOL_OPTIONS = ("--ip", "198.51.100.2/24", "--dhcp", "-4", "-q", "--until-verdict")


class Run(NamedTuple):
    lease: Lease     # what the client got
    status: int      # the tool's exit status
    output: str      # the tool's output
    summary: dict    # the tool's --json summary
    mac: str         # the client's MAC, as the tool writes it

    def verdicts(self):
        """The tool's DHCP verdicts on this client (a list: one, normally)."""
        return [client["verdict"] for client in (self.summary.get("dhcp") or {}).get(
            "clients", []) if client["mac"] == self.mac]

    def discover_gaps(self):
        """Seconds between the client's answered DHCPDISCOVERs, as the tool
        timed them: its retry pace."""
        times = [event["time"] for client in (self.summary.get("dhcp") or {}).get("clients", [])
                 if client["mac"] == self.mac for event in client["evidence"]
                 if event["event"] == "DHCPDISCOVER"]
        return [round(later - earlier, 1) for earlier, later in zip(times, times[1:])]

    def said(self):
        """The tool's output and the client's, for an assertion message."""
        return f"{self.output}\n--- the client ({self.lease.version}):\n{self.lease.output[-4000:]}"


def mac_of(lab, interface):
    shown = lab.in_guest("ip", "-o", "link", "show", "dev", interface).stdout
    return re.search(r"link/ether (\S+)", shown).group(1)


def against_the_tool(lab, client, *options, interface=GUEST_IF, tool_timeout=30, timeout=30,
                     **client_options):
    """The tool on the Lab's host end (TOOL_OPTIONS, --timeout
    `tool_timeout`, --json, then `options`: the framing), then `client` on
    `interface` for up to `timeout` seconds, given up as soon as the tool
    has ended with any status but 0 (it drops, or no verdict: nothing more
    will answer). A Run."""
    path = os.path.join(lab.scratch, f"dhcp-{len(lab.processes)}.json")
    tool = lab.start_tool(*TOOL_OPTIONS, "--timeout", str(tool_timeout), "--json", path,
                          "-w", lab.recording("dhcp"), *options)
    try:
        lease = RUN[client](lab, interface=interface, timeout=timeout,
                            until=lambda: tool.popen.poll() not in (None, 0), **client_options)
        status = tool.wait(timeout=tool_timeout + 10)
    finally:
        tool.stop()
    with open(path) as file:
        summary = json.load(file)
    return Run(lease, status, tool.output, summary, mac_of(lab, interface))
