# SPDX-License-Identifier: GPL-2.0-only
"""Real access clients, each run by hand in a netlab.Lab's guest namespace
against the tool's --dhcp6 (with --delegate), --pppoe and --dot1x: four
DHCPv6 clients, RP-PPPoE's discovery and an 802.1X supplicant. No pytest
here; dhcp_runners.py does the same for DHCPv4, and lends its helpers.

The clients: ISC dhclient -6, dhcpcd -6 (dhcpcd-base) and systemd-networkd,
each asked for an address (IA_NA), a delegated prefix (IA_PD) or both, and
NetworkManager's internal DHCPv6 client for an address (unpacked, never
installed: dhcp_runners.nm_tree());
`pppoe -d` (PADI, PADO, PADR, PADS: it prints the session and ends) and
`pppoe -A` (the access concentrators that answer a PADI); wpa_supplicant
-D wired with EAP-MD5, fetched with apt-get download into
tests/figures/.cache/wpasupplicant and run from there (installed, on a
machine that runs systemd, its package would start its service). No host service is started, stopped or
reconfigured: every file a client writes is private (the Lab's scratch
folder, or a tmpfs over /run and /var/lib under `unshare --mount`), no
hook script of the system's runs, and each client is stopped by its PID;
whatever it left running in the namespace is ended by PID too.

What each returns, with .output, what the client printed:
  Lease6   (address, prefix, seconds, version): the /128 the client put on
           the interface and the prefix it was delegated (as the
           unreachable route each of the three puts in for it: dhcpcd and
           networkd themselves, dhclient by its script here), or None;
  PPPoE    (session, ac, name, seconds, version): the session ID (pppoe -d)
           or None, the access concentrator's MAC, its AC-Name (pppoe -A);
  Dot1x    (authenticated, eap, seconds, version): EAP success or not, and
           the last CTRL-EVENT-EAP-* the supplicant reported (SUCCESS,
           FAILURE, STARTED...) or None.
`seconds`: from the client's start to what it was asked for, or that it
waited. missing(client) says what this machine lacks to run one.

A DHCPv6 run turns IPv6 on on the guest's interface (a Lab is made with it
off unless ipv6=True), flushes its global addresses and the namespace's
unreachable routes, and waits for its link-local address to be usable
before the clock starts. A prefix is delegated to DOWNSTREAM, one end of a
second veth pair in the guest namespace (this kernel may have no dummy
interfaces), deleted afterwards.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections import namedtuple

import dhcp_runners
from dhcp_runners import _private, _reap, _unshared
from netlab import GUEST_IF, Unavailable, library_path, unpacked

DHCP6_CLIENTS = ("dhclient6", "dhcpcd6", "networkd6", "networkmanager6")
CLIENTS = DHCP6_CLIENTS + ("pppoe", "pppoe_list", "wpa_supplicant")
NAMES = {"dhclient6": "ISC dhclient -6", "dhcpcd6": "dhcpcd -6", "networkd6": "systemd-networkd",
         "networkmanager6": "NetworkManager (internal DHCPv6)",
         "pppoe": "RP-PPPoE pppoe -d", "pppoe_list": "RP-PPPoE pppoe -A",
         "wpa_supplicant": "wpa_supplicant (wired, EAP-MD5)"}

DOWNSTREAM, DOWNSTREAM_PEER = "avz-down", "avz-down-p"  # where a delegated prefix goes
IDENTITY, PASSWORD = "avz-user", "avz-secret"           # 802.1X's defaults


def _result(name, fields, doc):
    """A tuple of `fields` with .output (what the client printed) beside."""
    base = namedtuple(name, fields)
    return type(name, (base,), {"__doc__": doc, "output": ""})


Lease6 = _result("Lease6", "address prefix seconds version",
                 "(the /128 address or None, the delegated prefix or None, seconds, version)")
PPPoE = _result("PPPoE", "session ac name seconds version",
                "(session ID or None, the AC's MAC or None, its AC-Name or None, seconds, version)")
Dot1x = _result("Dot1x", "authenticated eap seconds version",
                "(EAP success, the last CTRL-EVENT-EAP-* word or None, seconds, version)")


def _with(result, output):
    result.output = output
    return result


# -- what is there

PACKAGES = {"pppoe": "pppoe"}
# wpa_supplicant is fetched and unpacked, never installed: on a machine that
# runs systemd, installing wpasupplicant starts its service.
WPA_ROOT = os.path.join(dhcp_runners.CACHE, "wpasupplicant")
WPA_PACKAGES, WPA_BINARY = ("wpasupplicant",), "sbin/wpa_supplicant"
WPA_LIBRARIES = {"libnl-3.so.200": "libnl-3-200", "libnl-genl-3.so.200": "libnl-genl-3-200",
                 "libnl-route-3.so.200": "libnl-route-3-200",
                 "libpcsclite.so.1": "libpcsclite1", "libdbus-1.so.3": "libdbus-1-3",
                 "libssl.so.3": "libssl3", "libcrypto.so.3": "libssl3"}


def wpa_tree():
    """The unpacked wpasupplicant tree (netlab.unpacked); Unavailable if it
    cannot be had."""
    return unpacked(WPA_ROOT, WPA_PACKAGES, [WPA_BINARY], WPA_LIBRARIES)


def _wpa_supplicant_command():
    """The unpacked wpa_supplicant, with its libraries' path."""
    root = wpa_tree()
    return ["env", f"LD_LIBRARY_PATH={library_path(root)}", os.path.join(root, WPA_BINARY)]


def missing(client):
    """None if `client` can run here, else what is missing and how to get it."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}: one of {', '.join(CLIENTS)}")
    if client in DHCP6_CLIENTS:
        return dhcp_runners.missing(client[:-1])
    if client == "wpa_supplicant":
        try:
            wpa_tree()
        except Unavailable as why:
            return str(why)
        return None if shutil.which("stdbuf") else "needs stdbuf (apt-get install coreutils)"
    binary = "pppoe"
    lacking = [tool for tool in ("ip", binary, "stdbuf") if not shutil.which(tool)]
    if lacking:
        return (f"needs {', '.join(lacking)} (apt-get install iproute2 coreutils "
                f"{PACKAGES[binary]})")
    return None


def version(client):
    """The client's version, as it says it; None if it cannot say."""
    if client in DHCP6_CLIENTS:
        return dhcp_runners.version(client[:-1])
    if client.startswith("pppoe"):
        return dhcp_runners._first_version(["pppoe", "-V"])
    if client == "wpa_supplicant":
        return dhcp_runners._first_version([*_wpa_supplicant_command(), "-v"])
    raise ValueError(f"unknown client {client!r}")


# -- running a client

# While against_the_tool() runs: a client that got what it asked for keeps
# running until the tool has ended (or LINGER seconds), as a real one does:
# what it does next (its DAD for the address, its EAP answers) is evidence.
_LINGER, LINGER = [], 5.0


def _watch(lab, command, look, timeout, until, settle=0):
    """Start `command` in the guest namespace and call look(output) every
    0.1 s until it returns something true, the client ends, `timeout`
    passes or `until()` is true (then, if the client is still running,
    `settle` more seconds for what it prints as it ends: pppoe -A lists
    every AC that answered); stop it and what it left by PID.
    Returns (look's last answer, seconds to it or waited, the output)."""
    keep = {process.popen.pid for process in lab.processes}
    process = lab.start(lab.guest, *command)
    started = time.monotonic()
    try:
        while True:
            found = look(process.output)
            took = time.monotonic() - started
            if found or took > timeout or (until is not None and until()):
                break
            if process.popen.poll() is not None:
                process.wait()  # its last words
                found = look(process.output)
                break
            time.sleep(0.1)
        if settle:
            try:
                process.popen.wait(settle)
            except subprocess.TimeoutExpired:  # still going: stopped below
                pass
        lingered = time.monotonic() + LINGER
        while found and _LINGER and not _LINGER[-1]() and time.monotonic() < lingered \
                and process.popen.poll() is None:
            time.sleep(0.1)
    finally:
        process.stop()
        _reap(lab, keep)
    return found, round(took, 2), process.output


# -- DHCPv6

def _ipv6_ready(lab, interface, timeout=10):
    """IPv6 on on `interface`, no global address on it, no unreachable route
    in the namespace, and its link-local address out of DAD."""
    g = lab.in_guest
    g("sysctl", "-qw", f"net.ipv6.conf.{interface}.disable_ipv6=0")
    g("ip", "-6", "addr", "flush", "dev", interface, "scope", "global")
    g("ip", "-6", "route", "flush", "type", "unreachable", check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = g("ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link").stdout
        if "inet6" in shown and "tentative" not in shown:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no usable link-local address on {interface} after {timeout}s:\n{shown}")


def _downstream(lab):
    """DOWNSTREAM (and its peer) up in the guest namespace."""
    lab.in_guest("ip", "link", "add", DOWNSTREAM, "type", "veth", "peer", "name", DOWNSTREAM_PEER)
    for dev in (DOWNSTREAM, DOWNSTREAM_PEER):
        lab.in_guest("ip", "link", "set", dev, "up")


def address6(lab, interface):
    """The first global /128 on `interface` in the guest (what DHCPv6
    clients put on for an IA_NA; SLAAC's are /64), or None."""
    shown = lab.in_guest("ip", "-6", "-o", "addr", "show", "dev", interface, "scope",
                         "global").stdout
    found = re.search(r"\binet6 (\S+/128)\b", shown)
    return found.group(1) if found else None


def delegated_prefix(lab):
    """The prefix of the first unreachable route in the guest namespace
    (the one a requesting router puts in for its delegated prefix), or None."""
    shown = lab.in_guest("ip", "-6", "route", "show", "type", "unreachable").stdout
    found = re.search(r"^unreachable (\S+/\d+)", shown, re.MULTILINE)
    return found.group(1) if found else None


def _dhcp6(lab, client, command, interface, timeout, until, address, prefix):
    """Run a DHCPv6 client's `command` (sh, run under _unshared) until it has
    what it was asked for; a Lease6."""
    if not (address or prefix):
        raise ValueError("ask for an address, a prefix or both")
    _ipv6_ready(lab, interface)
    if prefix:
        _downstream(lab)
    seen = [None, None]  # the address and the prefix, as last looked at

    def look(_output):
        seen[:] = address6(lab, interface), delegated_prefix(lab) if prefix else None
        return (seen[0] or not address) and (seen[1] or not prefix)

    try:
        _, took, output = _watch(lab, _unshared(command), look, timeout, until)
    finally:
        if prefix:
            lab.in_guest("ip", "link", "del", DOWNSTREAM, check=False)
    return _with(Lease6(*seen, took, version(client)), output)


def dhclient6(lab, interface=GUEST_IF, timeout=20, until=None, address=True, prefix=False):
    """ISC dhclient -6 -d -1 (-N for an address, -P for a prefix) with a
    private config, lease file and PID file, and a script that puts on the
    address and an unreachable route for the delegated prefix."""
    home = _private(lab, "dhclient6")
    config = os.path.join(home, "dhclient6.conf")
    with open(config, "w") as file:
        file.write(f"timeout {int(timeout)};\n")
    script = os.path.join(home, "script")
    with open(script, "w") as file:
        file.write('#!/bin/sh\n'
                   'echo "script: $reason address=$new_ip6_address/$new_ip6_prefixlen '
                   'prefix=$new_ip6_prefix"\n'
                   'case "$reason" in BOUND6|RENEW6|REBIND6|REBOOT6)\n'
                   '  if [ -n "$new_ip6_address" ]; then ip -6 addr add '
                   '"$new_ip6_address/$new_ip6_prefixlen" dev "$interface" nodad; fi\n'
                   '  if [ -n "$new_ip6_prefix" ]; then ip -6 route add unreachable '
                   '"$new_ip6_prefix" dev lo; fi;;\n'
                   'esac\nexit 0\n')
    os.chmod(script, 0o700)
    command = (["dhclient", "-6", *(["-N"] if address else []), *(["-P"] if prefix else []),
                "-d", "-1", "-v", "-cf", config, "-sf", script,
                "-lf", os.path.join(home, "leases"), "-pf", os.path.join(home, "pid"), interface])
    return _dhcp6(lab, "dhclient6", f"exec {shlex.join(command)}", interface, timeout + 2,
                  until, address, prefix)


def dhcpcd6(lab, interface=GUEST_IF, timeout=20, until=None, address=True, prefix=False):
    """dhcpcd -B -6 -d with a private config: `ia_na 1` for an address,
    `ia_pd 2 DOWNSTREAM/1/64` for a prefix (either makes it solicit without
    waiting for an RA with M set), no hooks (-c /bin/true), a tmpfs over
    /run and /var/lib (its run and database folders: DUID, leases)."""
    home = _private(lab, "dhcpcd6")
    config = os.path.join(home, "dhcpcd.conf")
    with open(config, "w") as file:
        file.write("ia_na 1\n" * address + f"ia_pd 2 {DOWNSTREAM}/1/64\n" * prefix)
    command = ["dhcpcd", "-B", "-6", "-d", "-f", config, "-c", "/bin/true",
               "-t", str(int(timeout)), interface]
    script = ("mount -t tmpfs -o mode=0755 tmpfs /run\n"
              "mount -t tmpfs -o mode=0755 tmpfs /var/lib\n"
              "mkdir /var/lib/dhcpcd\n"
              f"exec {shlex.join(command)}")
    return _dhcp6(lab, "dhcpcd6", script, interface, timeout + 2, until, address, prefix)


def networkd6(lab, interface=GUEST_IF, timeout=20, until=None, address=True, prefix=False,
              hint="::/56"):
    """systemd-networkd (dhcp_runners.networkd's recipe, at debug level):
    DHCP=ipv6 with [DHCPv6] WithoutRA=solicit on `interface` (UseAddress=
    for IA_NA, UseDelegatedPrefix= and PrefixDelegationHint=`hint` for
    IA_PD), and for a prefix DOWNSTREAM with DHCPPrefixDelegation=yes
    (SubnetId=1, Assign=yes)."""
    home = _private(lab, "networkd6")
    yes = {True: "yes", False: "no"}
    with open(os.path.join(home, "10-avz-up.network"), "w") as file:
        file.write(f"[Match]\nName={interface}\n\n[Network]\nDHCP=ipv6\n"
                   "LinkLocalAddressing=ipv6\nIPv6AcceptRA=no\n\n"
                   f"[DHCPv6]\nWithoutRA=solicit\nUseAddress={yes[address]}\n"
                   f"UseDelegatedPrefix={yes[prefix]}\n"
                   + (f"PrefixDelegationHint={hint}\n" if prefix and hint else ""))
    if prefix:
        with open(os.path.join(home, "20-avz-down.network"), "w") as file:
            file.write(f"[Match]\nName={DOWNSTREAM}\n\n[Network]\nLinkLocalAddressing=no\n"
                       "IPv6AcceptRA=no\nDHCPPrefixDelegation=yes\n\n"
                       f"[DHCPPrefixDelegation]\nUplinkInterface={interface}\nSubnetId=1\n"
                       "Assign=yes\n")
    script = ("mount -t tmpfs -o mode=0755 tmpfs /run\n"
              "mkdir -p /run/systemd/network /run/systemd/netif\n"
              f"cp {shlex.quote(home)}/*.network /run/systemd/network/\n"
              "chown systemd-network:systemd-network /run/systemd/netif\n"
              "mount -o remount,bind,ro /sys\n"
              f"SYSTEMD_LOG_LEVEL=debug exec {dhcp_runners.NETWORKD}")
    return _dhcp6(lab, "networkd6", script, interface, timeout, until, address, prefix)


def networkmanager6(lab, interface=GUEST_IF, timeout=20, until=None, address=True,
                    prefix=False):
    """NetworkManager (dhcp_runners.networkmanager's recipe: unpacked, never
    installed; --configure-and-quit=initrd, no D-Bus, private files) with one
    profile: ipv4 disabled, ipv6.method=dhcp (DHCPv6 without waiting for an
    RA), its internal client. An address only: NetworkManager asks for a
    prefix only for a downstream connection shared with ipv6.method=shared,
    which its initrd mode does not run."""
    if prefix or not address:
        raise ValueError("NetworkManager is run here for an address (IA_NA) alone")
    # keep-configuration=no: else it takes the interface's link-local setup
    # for an external connection and never solicits.
    script = dhcp_runners.networkmanager_script(
        lab, "networkmanager6", interface, "method=disabled\n",
        f"method=dhcp\ndhcp-timeout={int(timeout)}\n", device="keep-configuration=no\n")
    return _dhcp6(lab, "networkmanager6", script, interface, timeout, until, address, prefix)


# -- PPPoE discovery

def _pppoe(lab, options, interface, timeout, until, done, settle=0):
    """pppoe -I `interface` `options`, its stdout line-buffered."""
    return _watch(lab, ["stdbuf", "-oL", "pppoe", "-I", interface, *options], done, timeout,
                  until, settle)


def pppoe(lab, interface=GUEST_IF, timeout=20, until=None, service=None, ac=None,
          pado_timeout=None):
    """RP-PPPoE's pppoe -d: PADI, PADO, PADR, PADS, then it prints
    SESSION:AC-MAC and ends (it sends no PADT). `service`, `ac`: -S, -C;
    `pado_timeout`: -t, its first wait for a PADO (5 s; then doubled)."""
    options = ["-d", *(["-S", service] if service else []), *(["-C", ac] if ac else []),
               *(["-t", str(pado_timeout)] if pado_timeout else [])]
    line = re.compile(r"^(\d+):((?:[0-9a-f]{2}:){5}[0-9a-f]{2})$", re.MULTILINE | re.IGNORECASE)
    found, took, output = _pppoe(lab, options, interface, timeout, until, line.search)
    found = line.search(output)
    session, mac = (int(found.group(1)), found.group(2).lower()) if found else (None, None)
    return _with(PPPoE(session, mac, None, took, version("pppoe")), output)


def pppoe_list(lab, interface=GUEST_IF, timeout=20, until=None, pado_timeout=2):
    """RP-PPPoE's pppoe -A -t `pado_timeout`: one PADI, then every PADO
    until then (AC-Name, services, cookie, AC-Ethernet-Address), and it
    ends. `seconds`: to the first PADO it printed (stdbuf -oL); `ac` and
    `name`: the first AC's."""
    options = ["-A", "-t", str(pado_timeout)]
    mac = re.compile(r"AC-Ethernet-Address: (\S+)")
    _, took, output = _pppoe(lab, options, interface, timeout, until, mac.search,
                             settle=pado_timeout + 1)
    found, name = mac.search(output), re.search(r"Access-Concentrator: (.*)", output)
    return _with(PPPoE(None, found and found.group(1).lower(), name and name.group(1).strip(),
                       took, version("pppoe_list")), output)


def access_concentrators(output):
    """pppoe -A's output -> [(AC-Name, AC-Ethernet-Address)], one per PADO."""
    return re.findall(r"Access-Concentrator: (.*)\n(?:.*\n)*?AC-Ethernet-Address: (\S+)",
                      output)


# -- 802.1X

def wpa_supplicant(lab, interface=GUEST_IF, timeout=20, until=None, identity=IDENTITY,
                   password=PASSWORD, debug=False):
    """wpa_supplicant -D wired with a private config (ap_scan=0, one network:
    key_mgmt=IEEE8021X eap=MD5 `identity` `password` eapol_flags=0), its
    control socket and PID file in the Lab's scratch folder; until EAP
    success or failure. debug=True: -d, its full log in .output."""
    home = _private(lab, "wpa_supplicant")
    config = os.path.join(home, "wpa_supplicant.conf")
    with open(config, "w") as file:
        file.write(f"ctrl_interface={home}/ctrl\nap_scan=0\nnetwork={{\n"
                   "\tkey_mgmt=IEEE8021X\n\teap=MD5\n"
                   f"\tidentity=\"{identity}\"\n\tpassword=\"{password}\"\n"
                   "\teapol_flags=0\n}\n")
    command = ["stdbuf", "-oL", *_wpa_supplicant_command(), "-D", "wired", "-i", interface, "-c", config,
               "-P", os.path.join(home, "pid"), *(["-d"] if debug else [])]
    ended = re.compile(r"CTRL-EVENT-EAP-(SUCCESS|FAILURE)")
    _, took, output = _watch(lab, command, ended.search, timeout, until)
    events = re.findall(r"CTRL-EVENT-EAP-(\S+)", output)
    eap = events[-1] if events else None
    return _with(Dot1x(eap == "SUCCESS", eap, took, version("wpa_supplicant")), output)


RUN = {"dhclient6": dhclient6, "dhcpcd6": dhcpcd6, "networkd6": networkd6,
       "networkmanager6": networkmanager6, "pppoe": pppoe,
       "pppoe_list": pppoe_list, "wpa_supplicant": wpa_supplicant}


def attempt(lab, client, **options):
    """Run `client` (one of CLIENTS) with `options` (interface, timeout,
    until, and the client's own); its result."""
    return RUN[client](lab, **options)


# -- a client against the tool

SERVICE = {"dhclient6": "dhcp6", "dhcpcd6": "dhcp6", "networkd6": "dhcp6",
           "networkmanager6": "dhcp6", "pppoe": "pppoe",
           "pppoe_list": "pppoe", "wpa_supplicant": "dot1x"}
TOOL_OPTIONS = {"dhcp6": ("--ip", "2001:db8::2/64", "--dhcp6", "--delegate", "2001:db8:100::/40"),
                "pppoe": ("--pppoe",), "dot1x": ("--dot1x",)}


class Run(namedtuple("Run", "result status output summary mac service client")):
    """A client's run against the tool: what the client got (its runner's
    result), the tool's exit status, output and --json summary, the client's
    MAC as the tool writes it, the tool's service that judged it, and which
    client (CLIENTS) it was."""

    def clients(self):
        """The tool's records of this client (one, normally)."""
        return [client for client in (self.summary.get(self.service) or {}).get("clients", [])
                if client["mac"] == self.mac]

    def verdicts(self):
        return [client["verdict"] for client in self.clients()]

    def said(self):
        """The tool's output and the client's, for an assertion message."""
        return (f"{self.output}\n--- the client ({self.result.version}):\n"
                f"{self.result.output[-4000:]}")


def against_the_tool(lab, client, *options, interface=GUEST_IF, tool_timeout=40, timeout=30,
                     **client_options):
    """The tool on the Lab's host end (its service's TOOL_OPTIONS, -q
    --until-verdict --timeout `tool_timeout` --json, then `options`: the
    framing), then `client` on `interface` for up to `timeout` seconds,
    given up as soon as the tool has ended with any status but 0. A Run."""
    service = SERVICE[client]
    path = os.path.join(lab.scratch, f"{service}-{len(lab.processes)}.json")
    tool = lab.start_tool(*TOOL_OPTIONS[service], "-q", "--until-verdict", "--timeout",
                          str(tool_timeout), "--json", path, "-w", lab.recording(service),
                          *options)
    _LINGER.append(lambda: tool.popen.poll() is not None)
    try:
        result = RUN[client](lab, interface=interface, timeout=timeout,
                             until=lambda: tool.popen.poll() not in (None, 0), **client_options)
        status = tool.wait(timeout=tool_timeout + 10)
    finally:
        _LINGER.pop()
        tool.stop()
    with open(path) as file:
        summary = json.load(file)
    return Run(result, status, tool.output, summary, dhcp_runners.mac_of(lab, interface), service,
               client)
