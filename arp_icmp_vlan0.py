#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["scapy>=2.5.0"]
# ///
# SPDX-License-Identifier: GPL-2.0-only
"""
arp_icmp_vlan0  Answer ARP and ICMP echo requests with 802.1Q-tagged replies.
                Plays a quirky switch that priority-tags (VLAN ID 0) every frame
                it sends, to test how a guest's NIC driver and stack cope.

USAGE: arp_icmp_vlan0.py [-h] [--mac MAC] [--ip ADDR[/LEN]] [--vlan VID]
                         [--prio PCP] [-c COUNT] [--timeout SECONDS] [-w FILE]
                         [-q | -v] [-V] [--self-test] INTERFACE [INTERFACE ...]

The core (is this a request? make the reply) is pure: frames and settings in,
a reply or None out. The edge sniffs with Scapy on one packet socket per
interface, with a kernel BPF filter, and sends each reply on the socket its
request came in on.

Copyright (C) 2026 The arp_icmp_vlan0 authors. Licensed under the GNU General
Public License, version 2 only (see LICENSE), like Scapy which it builds on.
"""

import argparse
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

try:
    from scapy.arch.linux import L2Socket
    from scapy.data import DLT_EN10MB, SO_ATTACH_FILTER
    from scapy.error import log_runtime
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest,
                                    ICMPv6ND_NA, ICMPv6ND_NS,
                                    ICMPv6NDOptDstLLAddr, IPv6, in6_chksum)
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.libs.structures import bpf_insn, sock_fprog
    from scapy.sendrecv import sendp, sniff
    from scapy.utils import PcapWriter, checksum
    from scapy.utils6 import in6_getnsma, in6_getnsmac, in6_mactoifaceid
    SCAPY_MISSING = None
except ImportError as exc:  # reported by main() as one line, not a traceback
    SCAPY_MISSING = exc

__version__ = "1.0.0"

# Locally administered, unicast; its bytes spell "vlan0" in ASCII.
DEFAULT_MAC = "02:76:6c:61:6e:30"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
IPV4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
REPLY_TTL = 64

# The kernel filter: only ARP requests, unfragmented ICMP echo requests and
# IPv6 Neighbor Solicitations and echo requests that arrive on the interface
# reach Python; IPv6 behind a Hop-by-Hop header too (MLD is such traffic), so
# that the core can look past it. It is shipped compiled so that running
# the tool needs neither libpcap nor tcpdump; tests/test_filter.py checks it
# against libpcap. Regenerate with:  tcpdump -i lo -ddd '<expression>'
# The kernel moves an 802.1Q tag into metadata before the filter runs, so
# tagged requests match as if untagged (Scapy puts the tag back on receive).
REQUEST_FILTER_EXPRESSION = (
    "inbound and ((arp and arp[6:2] = 1)"
    " or (icmp and icmp[icmptype] = icmp-echo)"
    " or (ip6 and (ip6[6] = 0 or (ip6[6] = 58 and (ip6[40] = 135 or ip6[40] = 128)))))"
)
REQUEST_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 20, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 2, 2054),
    (40, 0, 0, 20),
    (21, 15, 16, 1),
    (21, 0, 7, 2048),
    (48, 0, 0, 23),
    (21, 0, 13, 1),
    (40, 0, 0, 20),
    (69, 11, 0, 8191),
    (177, 0, 0, 14),
    (80, 0, 0, 14),
    (21, 7, 8, 8),
    (21, 0, 7, 34525),
    (48, 0, 0, 20),
    (21, 4, 0, 0),
    (21, 0, 4, 58),
    (48, 0, 0, 54),
    (21, 1, 0, 135),
    (21, 0, 1, 128),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)

EXAMPLES = """\
examples:
  sudo ./arp_icmp_vlan0.py tap0
        answer every ARP and ping on tap0, replies tagged vlan 0, p 0
  sudo ./arp_icmp_vlan0.py --ip 198.51.100.2 tap0
        answer only for 198.51.100.2 (repeat --ip, or give a prefix)
  sudo ./arp_icmp_vlan0.py --vlan 7 --prio 5 -w replies.pcap tap0 tap1
        tag vlan 7, p 5 on two TAPs and record requests and replies
  sudo ./arp_icmp_vlan0.py -c 4 --timeout 30 -q tap0
        stop after 4 replies or 30 seconds, print only the statistics
  sudo ./arp_icmp_vlan0.py --self-test
        prove this host works: a throwaway namespace pings through the tool
  watch the tags alongside:  tcpdump -n -e -i tap0   (shows "vlan 0, p 0")
"""


# ---------------------------------------------------------------- pure core

@dataclass(frozen=True)
class Tag:
    """The 802.1Q tag every reply carries."""
    vlan: int = 0
    prio: int = 0

    def header(self):
        return Dot1Q(prio=self.prio, vlan=self.vlan)

    def __str__(self):
        return f"vlan {self.vlan}, p {self.prio}"  # tcpdump -e wording


@dataclass(frozen=True)
class Scope:
    """Which requests the tool answers."""
    mac: str = DEFAULT_MAC
    targets: tuple = ()            # IPv4/IPv6Network; empty: any unicast address
    families: frozenset = frozenset({4, 6})
    multicast_ping6: bool = False  # answer ICMPv6 echo sent to a multicast group


def _is_unicast_mac(mac):
    return not int(mac.split(":")[0], 16) & 1


def _is_unicast_ip(addr):
    ip = ipaddress.ip_address(addr)
    return not (ip.is_unspecified or ip.is_multicast or ip.is_loopback
                or ip == IPV4_BROADCAST)


def _is_host_of(ip, net):
    """`ip` is in `net` and not its network address (for IPv6: the
    subnet-router anycast address) nor its IPv4 broadcast address."""
    if ip.version != net.version or ip not in net:
        return False
    if net.num_addresses <= 2:  # /31, /32, /127, /128: every address is a host
        return True
    return ip != net.network_address and (ip.version == 6 or ip != net.broadcast_address)


def wants_address(addr, targets):
    """True if the tool answers for IPv4 or IPv6 address `addr`.

    `targets` is a tuple of IPv4Network/IPv6Network; empty means any unicast
    address.
    """
    if not _is_unicast_ip(addr):
        return False
    ip = ipaddress.ip_address(addr)
    return not targets or any(_is_host_of(ip, net) for net in targets)


def tool_link_local(mac):
    """The tool's own IPv6 link-local address (modified EUI-64 of its MAC)."""
    return str(ipaddress.IPv6Address("fe80::" + in6_mactoifaceid(mac)))


def _from_peer(frame, mac):
    """A frame from some other station's unicast MAC (never our own)."""
    src = frame[Ether].src
    return src != mac and _is_unicast_mac(src)


def _raw(layer):
    """A layer's bytes as received, to the end of the frame."""
    return layer.original if layer.original is not None else bytes(layer)


def is_arp_request(frame, scope):
    """An ARP who-has, from a peer, for an address we answer for.

    Not probes (sender 0.0.0.0, RFC 5227) nor gratuitous ARP (sender = target).
    """
    if not frame.haslayer(Ether) or not frame.haslayer(ARP):
        return False
    arp, mac = frame[ARP], scope.mac
    if (arp.op, arp.hwtype, arp.ptype, arp.hwlen, arp.plen) != (1, 1, 0x0800, 6, 4):
        return False
    return (_from_peer(frame, mac)
            and frame[Ether].dst in (BROADCAST_MAC, mac)
            and arp.hwsrc != mac and _is_unicast_mac(arp.hwsrc)
            and _is_unicast_ip(arp.psrc)
            and arp.psrc != arp.pdst
            and wants_address(arp.pdst, scope.targets))


def arp_reply(request, mac, tag):
    """The ARP is-at for `request`: `mac` owns the requested address."""
    arp = request[ARP]
    return (Ether(src=mac, dst=request[Ether].src) / tag.header() /
            ARP(op=2, hwsrc=mac, psrc=arp.pdst, hwdst=arp.hwsrc, pdst=arp.psrc))


def _icmp_message(frame):
    """The ICMP message's exact bytes (Ethernet padding cut off), or None if
    the IPv4 header is malformed, the packet truncated, fragmented or not
    ICMP, or either checksum wrong."""
    ip = frame[IP]
    packet, header_len = _raw(ip), ip.ihl * 4
    if (ip.version != 4 or header_len < 20 or ip.len < header_len + 8
            or len(packet) < ip.len or ip.proto != 1 or ip.frag != 0
            or ip.flags.MF or checksum(packet[:header_len]) != 0):
        return None
    message = packet[header_len:ip.len]
    return message if checksum(message) == 0 else None


def is_echo_request(frame, scope):
    """A well-formed ICMP echo request sent to our MAC, from a unicast
    address, to an address we answer for."""
    if not (frame.haslayer(Ether) and frame.haslayer(IP) and frame.haslayer(ICMP)):
        return False
    ip, message = frame[IP], _icmp_message(frame)
    return (message is not None and message[:2] == b"\x08\x00"
            and _from_peer(frame, scope.mac)
            and frame[Ether].dst == scope.mac
            and _is_unicast_ip(ip.src)
            and wants_address(ip.dst, scope.targets))


def echo_reply(request, mac, tag):
    """The ICMP echo reply for `request`: same identifier, sequence and data;
    Scapy computes fresh IP and ICMP checksums when the reply is built."""
    ip, icmp = request[IP], request[ICMP]
    return (Ether(src=mac, dst=request[Ether].src) / tag.header() /
            IP(src=ip.dst, dst=ip.src, ttl=REPLY_TTL, tos=ip.tos) /
            ICMP(type=0, code=0, id=icmp.id, seq=icmp.seq) /
            _icmp_message(request)[8:])


def _icmp6_message(frame, layer):
    """The exact bytes of ICMPv6 message `layer` (padding cut off), or None
    if the frame is truncated or the checksum wrong."""
    ip6, icmp6 = frame[IPv6], frame[layer]
    payload = _raw(ip6.payload)  # extension headers + ICMPv6, cut at plen
    message = payload[len(payload) - len(_raw(icmp6)):]
    if (len(payload) != ip6.plen or len(message) < 8
            or in6_chksum(58, icmp6, message) != 0):
        return None
    return message


def _options_valid(options):
    """RFC 4861 7.1.1: every ND option has a length > 0 that fits."""
    while options:
        if len(options) < 2 or options[1] == 0 or options[1] * 8 > len(options):
            return False
        options = options[options[1] * 8:]
    return True


def is_neighbor_solicitation(frame, scope):
    """A valid Neighbor Solicitation (RFC 4861 7.1.1), from a peer, for an
    address we answer for. Never DAD (source ::): answering it would make
    the guest believe its own address is a duplicate."""
    if not (frame.haslayer(Ether) and frame.haslayer(IPv6)
            and frame.haslayer(ICMPv6ND_NS)):
        return False
    ip6, ns = frame[IPv6], frame[ICMPv6ND_NS]
    message = _icmp6_message(frame, ICMPv6ND_NS)
    if message is None or len(message) < 24 or ns.code != 0 or ip6.hlim != 255:
        return False
    target = ns.tgt
    solicited_node = socket.inet_ntop(
        socket.AF_INET6, in6_getnsma(socket.inet_pton(socket.AF_INET6, target)))
    to_target = ((ip6.dst == solicited_node
                  and frame[Ether].dst == in6_getnsmac(socket.inet_pton(
                      socket.AF_INET6, solicited_node)))
                 or (ipaddress.ip_address(ip6.dst) == ipaddress.ip_address(target)
                     and frame[Ether].dst == scope.mac))
    return (to_target
            and _from_peer(frame, scope.mac)
            and _is_unicast_ip(ip6.src)
            and _options_valid(message[24:])
            and wants_address(target, scope.targets))


def neighbor_advertisement(request, mac, tag):
    """The solicited Neighbor Advertisement for `request`: `mac` owns the
    target (flags S and O set, R clear, Target Link-Layer Address option)."""
    ip6, ns = request[IPv6], request[ICMPv6ND_NS]
    return (Ether(src=mac, dst=request[Ether].src) / tag.header() /
            IPv6(src=ns.tgt, dst=ip6.src, hlim=255) /
            ICMPv6ND_NA(R=0, S=1, O=1, tgt=ns.tgt) /
            ICMPv6NDOptDstLLAddr(lladdr=mac))


def is_echo6_request(frame, scope):
    """A well-formed ICMPv6 echo request from a unicast address, sent to our
    MAC for an address we answer for (or, if asked, to a multicast group)."""
    if not (frame.haslayer(Ether) and frame.haslayer(IPv6)
            and frame.haslayer(ICMPv6EchoRequest)):
        return False
    ip6, ether = frame[IPv6], frame[Ether]
    message = _icmp6_message(frame, ICMPv6EchoRequest)
    if message is None or message[1] != 0 or not _is_unicast_ip(ip6.src):
        return False
    if ipaddress.ip_address(ip6.dst).is_multicast:
        to_us = scope.multicast_ping6 and ether.dst == in6_getnsmac(
            socket.inet_pton(socket.AF_INET6, ip6.dst))
    else:
        to_us = ether.dst == scope.mac and wants_address(ip6.dst, scope.targets)
    return to_us and _from_peer(frame, scope.mac)


def echo6_reply(request, mac, tag):
    """The ICMPv6 echo reply for `request`: same identifier, sequence and
    data. A reply to a multicast echo comes from the tool's link-local
    address (RFC 4443 4.2: the source must be a unicast address)."""
    ip6, echo = request[IPv6], request[ICMPv6EchoRequest]
    source = ip6.dst
    if ipaddress.ip_address(source).is_multicast:
        source = tool_link_local(mac)
    return (Ether(src=mac, dst=request[Ether].src) / tag.header() /
            IPv6(src=source, dst=ip6.src, hlim=REPLY_TTL, tc=ip6.tc) /
            ICMPv6EchoReply(id=echo.id, seq=echo.seq,
                            data=_icmp6_message(request, ICMPv6EchoRequest)[8:]))


# (kind, address family, matcher, builder), in the order they are tried.
REPLY_KINDS = (
    ("arp", 4, is_arp_request, arp_reply),
    ("icmp echo", 4, is_echo_request, echo_reply),
    ("ndp", 6, is_neighbor_solicitation, neighbor_advertisement),
    ("icmp6 echo", 6, is_echo6_request, echo6_reply),
)


def reply_to(frame, scope, tag):
    """(kind, reply) for a request the tool answers, else None."""
    for kind, family, matches, build in REPLY_KINDS:
        if family in scope.families and matches(frame, scope):
            return kind, build(frame, scope.mac, tag)
    return None


# ---------------------------------------------------------------- I/O edge

@dataclass
class Stats:
    replies: dict                  # kind -> replies sent, for the kinds served
    started: float = field(default_factory=time.monotonic)
    seen: int = 0
    ignored: int = 0
    send_errors: int = 0
    internal_errors: int = 0

    @property
    def replied(self):
        return sum(self.replies.values())

    def report(self, interfaces):
        kinds = ", ".join(f"{n} {k}" for k, n in self.replies.items())
        lines = [
            f"--- {' '.join(interfaces)} arp_icmp_vlan0 statistics ---",
            f"{self.seen} requests seen, {self.replied} replies sent ({kinds}), "
            f"{self.ignored} ignored, time {time.monotonic() - self.started:.1f}s",
        ]
        if self.send_errors or self.internal_errors:
            lines.append(f"{self.send_errors} send errors, "
                         f"{self.internal_errors} internal errors")
        return "\n".join(lines)


def _timestamp(frame):
    t = float(frame.time)
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


class Responder:
    """Sniffs, answers and counts; owns the sockets and the pcap writer."""

    def __init__(self, sockets, scope, tag, pcap=None, verbose=0, count=0):
        self.sockets = sockets          # interface name -> L2Socket
        self.scope, self.tag = scope, tag
        self.pcap, self.verbose, self.count = pcap, verbose, count
        self.stats = Stats({kind: 0 for kind, family, _, _ in REPLY_KINDS
                            if family in scope.families})

    def handle(self, frame):
        """sniff()'s prn: answer one frame. Never raises, because Scapy's
        sniff() would close the socket on an exception."""
        self.stats.seen += 1
        iface = frame.sniffed_on
        try:
            answer = reply_to(frame, self.scope, self.tag)
        except Exception as exc:  # a bug in the core: report, keep serving
            self.stats.internal_errors += 1
            print(f"error: cannot handle frame {bytes(frame).hex()}: {exc!r}",
                  file=sys.stderr)
            return
        if answer is None:
            self.stats.ignored += 1
            if self.verbose:
                print(f"{_timestamp(frame)} {iface} ignored: {frame.summary()}")
            return
        kind, reply = answer
        try:
            sendp(reply, socket=self.sockets[iface], verbose=False)
        except OSError as exc:
            self.stats.send_errors += 1
            print(f"error: sending on {iface}: {exc.strerror or exc}",
                  file=sys.stderr)
            return
        self.stats.replies[kind] += 1
        if self.pcap:
            self.pcap.write(frame)
            self.pcap.write(reply)
        if self.verbose >= 0:
            print(f"{_timestamp(frame)} {iface} {frame.summary()} ==> "
                  f"{reply.summary()} {self.tag}", flush=True)

    def done(self, _frame):
        """sniff()'s stop_filter: -c/--count reached."""
        return 0 < self.count <= self.stats.replied

    def run(self, timeout=None):
        sniff(opened_socket={s: name for name, s in self.sockets.items()},
              prn=self.handle, stop_filter=self.done, store=False,
              timeout=timeout)


def open_socket(iface):
    """A packet socket bound to `iface` with the request filter attached."""
    sock = L2Socket(iface=iface)
    insns = (bpf_insn * len(REQUEST_FILTER))(*REQUEST_FILTER)
    sock.ins.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        sock_fprog(len(REQUEST_FILTER), insns))
    return sock


# ---------------------------------------------------------------- CLI

def _mac(text):
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
        raise argparse.ArgumentTypeError(f"invalid MAC address: {text!r}")
    mac = text.lower()
    if not _is_unicast_mac(mac):
        raise argparse.ArgumentTypeError(f"not a unicast MAC address: {text!r}")
    return mac


def _ip_target(text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid IPv4 or IPv6 address or prefix: {text!r}") from None


def _ranged_int(name, low, high):
    def parse(text):
        try:
            value = int(text, 0)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer from {low} to {high}: {text!r}")
        return value
    return parse


def _positive_number(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="arp_icmp_vlan0.py",
        description="Answer ARP requests and ICMP echo requests seen on "
                    "INTERFACE with 802.1Q-tagged\nreplies: VLAN ID 0 "
                    "('priority tagging') by default, as a quirky switch does.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interfaces", nargs="*", metavar="INTERFACE",
                        help="interface(s) to serve, e.g. a VM's TAP device")
    parser.add_argument("--mac", type=_mac, default=DEFAULT_MAC,
                        help=f"MAC the replies come from (default {DEFAULT_MAC})")
    parser.add_argument("--ip", type=_ip_target, action="append",
                        metavar="ADDR[/LEN]", dest="targets", default=[],
                        help="answer only for this IPv4 or IPv6 address or "
                             "prefix; repeatable (default: any unicast address)")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", dest="families", action="store_const",
                        const=frozenset({4}), default=frozenset({4, 6}),
                        help="IPv4 only: ARP and ICMP echo")
    family.add_argument("-6", dest="families", action="store_const",
                        const=frozenset({6}),
                        help="IPv6 only: Neighbor Solicitation and ICMPv6 echo")
    parser.add_argument("--answer-multicast-ping", action="store_true",
                        help="also answer ICMPv6 echo sent to a multicast "
                             "group (e.g. ping ff02::1), from the tool's "
                             "link-local address")
    parser.add_argument("--vlan", type=_ranged_int("VLAN ID", 0, 4094),
                        default=0, metavar="VID",
                        help="VLAN ID of the reply tag, 0-4094 (default 0)")
    parser.add_argument("--prio", type=_ranged_int("priority", 0, 7),
                        default=0, metavar="PCP",
                        help="priority (PCP) of the reply tag, 0-7 (default 0)")
    parser.add_argument("-c", "--count", type=_ranged_int("count", 1, 2**63),
                        default=0, metavar="N", help="exit after N replies")
    parser.add_argument("--timeout", type=_positive_number, metavar="SECONDS",
                        help="exit after SECONDS")
    parser.add_argument("-w", "--write", metavar="FILE",
                        help="write requests and replies to a pcap FILE")
    chatter = parser.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", dest="verbose", action="store_const",
                         const=-1, default=0,
                         help="print only the start-up line and statistics")
    chatter.add_argument("-v", "--verbose", dest="verbose",
                         action="store_const", const=1,
                         help="also print the frames that are not answered")
    parser.add_argument("-V", "--version", action="version",
                        version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this host end to end in throwaway network "
                             "namespaces, then exit (needs root, ip, ping)")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.interfaces and not args.self_test:
        parser.error("an INTERFACE is required (or --self-test)")
    if args.interfaces and args.self_test:
        parser.error("--self-test takes no INTERFACE")
    if len(set(args.interfaces)) != len(args.interfaces):
        parser.error("an INTERFACE is named twice")
    if args.targets and not any(net.version in args.families for net in args.targets):
        parser.error(f"no --ip address is IPv{min(args.families)}: nothing to answer")
    return args


def scope_from(args):
    return Scope(mac=args.mac, targets=tuple(args.targets),
                 families=args.families,
                 multicast_ping6=args.answer_multicast_ping)


def _describe(scope, tag):
    """The start-up line's middle: what is answered, for whom, how."""
    kinds = [name for family, names in ((4, ["ARP", "ICMP echo"]),
                                        (6, ["NDP", "ICMPv6 echo"]))
             if family in scope.families for name in names]
    kinds = ", ".join(kinds[:-1]) + " and " + kinds[-1]
    targets = ", ".join(
        str(net.network_address) if net.num_addresses == 1 else str(net)
        for net in scope.targets if net.version in scope.families)
    owner = scope.mac
    if 6 in scope.families:
        owner += f" (link-local {tool_link_local(scope.mac)})"
    return (f"{kinds} for {targets or 'any address'} as {owner}, "
            f"replies tagged 802.1Q {tag}")


def _fail(message):
    print(f"arp_icmp_vlan0: error: {message}", file=sys.stderr)
    return 1


def _check_interface(name):
    """An error message if `name` cannot be served, else None."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return f"{name}: no such interface (see: ip link)"
    try:
        with open(f"/sys/class/net/{name}/flags") as flags:
            up = int(flags.read(), 16) & 1
    except OSError:
        up = True  # no sysfs view: let the socket tell
    if not up:
        return f"{name}: interface is down (ip link set {name} up)"
    return None


def serve(args):
    for name in args.interfaces:
        problem = _check_interface(name)
        if problem:
            return _fail(problem)
    sockets = {}
    pcap = None
    try:
        for name in args.interfaces:
            try:
                sockets[name] = open_socket(name)
            except PermissionError:
                return _fail(f"{name}: opening a packet socket needs root or "
                             f"CAP_NET_RAW; try: sudo {sys.argv[0]} ...")
            except OSError as exc:
                return _fail(f"{name}: cannot open a packet socket: "
                             f"{exc.strerror or exc}")
        if args.write:
            try:
                pcap = PcapWriter(args.write, linktype=DLT_EN10MB, sync=False)
            except OSError as exc:
                return _fail(f"cannot write {args.write}: {exc.strerror or exc}")
        tag, scope = Tag(vlan=args.vlan, prio=args.prio), scope_from(args)
        responder = Responder(sockets, scope, tag, pcap=pcap,
                              verbose=args.verbose, count=args.count)
        print(f"arp_icmp_vlan0: on {', '.join(args.interfaces)} answering "
              f"{_describe(scope, tag)}. Hit Ctrl-C to end.", flush=True)
        responder.run(timeout=args.timeout)
        print(responder.stats.report(args.interfaces), flush=True)
        lost = [name for name, s in sockets.items() if s.closed]
        if lost:
            return _fail(f"stopped receiving on {', '.join(lost)} "
                         "(interface gone or down?)")
        return 0
    finally:
        if pcap:
            pcap.close()
        for sock in sockets.values():
            sock.close()


# ---------------------------------------------------------------- self-test

# family -> (guest's address with prefix, the tool's address, resolver)
SELF_TEST_ADDRESSES = {
    4: ("198.51.100.1/24", "198.51.100.2", "ARP"),
    6: ("2001:db8::1/64", "2001:db8::2", "NDP"),
}


def _run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def _wait_for_line(proc, needle, timeout):
    """Read `proc`'s stdout until a line containing `needle`; return the
    lines read, or raise RuntimeError on timeout or exit."""
    lines, deadline = [], time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(line)
            if needle in line:
                return lines
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise RuntimeError(f"no {needle!r} from {' '.join(proc.args[3:])}: "
                       f"{''.join(lines)}")


def self_test(args):
    """Throwaway namespaces 'host' and 'guest' joined by a veth: the guest's
    own stack pings the tool, which runs on the host end."""
    missing = [tool for tool in ("ip", "ping") if not shutil.which(tool)]
    if missing:
        return _fail(f"--self-test needs {' and '.join(missing)} "
                     "(apt install iproute2 iputils-ping)")
    if os.geteuid() != 0:
        return _fail("--self-test creates network namespaces: run it as root "
                     f"(sudo {sys.argv[0]} --self-test)")
    if args.vlan != 0:
        return _fail("--self-test needs --vlan 0: the guest namespace has no "
                     f"VLAN {args.vlan} interface, so it would drop the replies")
    families = sorted(args.families)
    suffix = os.urandom(3).hex()
    host, guest = f"avz-host-{suffix}", f"avz-guest-{suffix}"
    made, procs = [], []
    try:
        for ns in (host, guest):
            _run("ip", "netns", "add", ns)
            made.append(ns)
        _run("ip", "link", "add", "veth-host", "netns", host, "type", "veth",
             "peer", "name", "veth-guest", "netns", guest)
        for family in families:
            # nodad: the address is usable at once, no 1-2 s wait.
            _run("ip", "-n", guest, "addr", "add", SELF_TEST_ADDRESSES[family][0],
                 "dev", "veth-guest", *(["nodad"] if family == 6 else []))
        _run("ip", "-n", guest, "link", "set", "veth-guest", "up")
        _run("ip", "-n", host, "link", "set", "veth-host", "up")
        capture = None
        if shutil.which("tcpdump"):
            capture = subprocess.Popen(
                ["ip", "netns", "exec", guest, "tcpdump", "-n", "-e", "-l",
                 "--immediate-mode", "-i", "veth-guest", "vlan"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            procs.append(capture)
            _wait_for_line(capture, "listening on", 10)
        tool_args = [f"-{families[0]}"] if len(families) == 1 else []
        for family in families:
            tool_args += ["--ip", SELF_TEST_ADDRESSES[family][1]]
        tool = subprocess.Popen(
            ["ip", "netns", "exec", host, sys.executable, os.path.abspath(__file__),
             "--mac", args.mac, "--prio", str(args.prio), *tool_args, "veth-host"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(tool)
        print(f"self-test: the guest's stack in namespace {guest} pings the tool "
              f"in namespace {host} over a veth")
        print("".join(_wait_for_line(tool, "Hit Ctrl-C", 10)), end="")
        pings, neighbours = {}, {}
        for family in families:
            address = SELF_TEST_ADDRESSES[family][1]
            pings[family] = subprocess.run(
                ["ip", "netns", "exec", guest, "ping", f"-{family}", "-n", "-c", "3",
                 "-i", "0.2", "-W", "2", address], capture_output=True, text=True)
            neighbours[family] = _run("ip", f"-{family}", "-n", guest, "neigh",
                                      "show", address).stdout
        for proc in procs:
            proc.terminate()
        print("--- the tool, in the host namespace ---")
        print(tool.communicate(timeout=10)[0], end="")
        if capture:
            print("--- tcpdump -n -e in the guest namespace (tagged frames) ---")
            print(capture.communicate(timeout=10)[0], end="")
        problems = []
        for family in families:
            _, address, resolver = SELF_TEST_ADDRESSES[family]
            print(f"--- ping -{family} in the guest namespace ---")
            print(pings[family].stdout, end="")
            print(f"--- the guest's neighbour entry ---\n{neighbours[family]}", end="")
            whole = pings[family].stdout.count(f"64 bytes from {address}")
            if pings[family].returncode != 0 or whole != 3:
                problems.append(f"IPv{family}: {whole} of 3 whole echo replies arrived")
            if args.mac not in neighbours[family]:
                problems.append(f"IPv{family}: the guest did not learn {args.mac} "
                                f"by {resolver}")
        if problems:
            print("self-test: FAIL: " + "; ".join(problems))
            return 1
        print("self-test: PASS: the guest's stack accepted every tagged reply")
        return 0
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        return _fail(f"self-test could not run: {detail.strip()}")
    except KeyboardInterrupt:
        return _fail("self-test interrupted")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# ---------------------------------------------------------------- main

def _stop_on_sigterm(_signum, _frame):
    raise KeyboardInterrupt  # sniff() ends on it like on Ctrl-C


def main(argv=None):
    args = parse_args(argv)
    if SCAPY_MISSING:
        return _fail(f"Scapy is not installed ({SCAPY_MISSING}); install it "
                     "with: pip install scapy  (or: apt install python3-scapy)")
    log_runtime.setLevel("ERROR")  # our own lines say what went wrong
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.self_test:
        return self_test(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
