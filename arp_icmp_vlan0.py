#!/usr/bin/env python3
# /// script
# requires-python = ">=3.9"
# dependencies = ["scapy>=2.5.0"]
# ///
# SPDX-License-Identifier: GPL-2.0-only
"""
arp_icmp_vlan0  Answer ARP, Neighbor Solicitation and ICMP/ICMPv6 echo requests
                with 802.1Q-tagged replies. Plays a quirky switch that
                priority-tags (VLAN ID 0) every frame it sends, to test how a
                guest's NIC driver and network stack cope.

USAGE: arp_icmp_vlan0.py [-h] [--mac MAC] [--ip ADDR[/LEN]] [-4 | -6]
                         [--answer-multicast-ping] [--vlan VID] [--prio PCP]
                         [--busy-poll] [-c N] [--timeout SECONDS] [-w FILE]
                         [-q | -v] [-V] [--self-test] INTERFACE [INTERFACE ...]

The core (is this a request? make the reply) is pure: a frame's bytes and
settings in, a reply's bytes or None out. The edge receives on one Scapy
packet socket per interface, with a kernel BPF filter, and sends each reply on
the socket its request came in on.

Copyright (C) 2026 The arp_icmp_vlan0 authors. Licensed under the GNU General
Public License, version 2 only (see LICENSE), like Scapy which it builds on.
"""

import argparse
import ctypes
import ipaddress
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

try:
    from scapy.arch.linux import L2Socket
    from scapy.config import conf
    from scapy.data import DLT_EN10MB, MTU, SO_ATTACH_FILTER
    from scapy.error import log_runtime
    from scapy.layers.inet6 import IPv6  # noqa: F401 (lets Ether dissect IPv6)
    from scapy.layers.l2 import Ether
    from scapy.libs.structures import bpf_insn, sock_fprog
    from scapy.utils import PcapWriter, checksum
    from scapy.utils6 import in6_getnsma, in6_getnsmac, in6_mactoifaceid
    SCAPY_MISSING = None
except ImportError as exc:  # reported by main() as one line, not a traceback
    SCAPY_MISSING = exc

__version__ = "1.0.0"

# Locally administered, unicast; its bytes spell "vlan0" in ASCII.
DEFAULT_MAC = "02:76:6c:61:6e:30"
BROADCAST_MAC_BYTES = b"\xff" * 6
IN6_UNSPECIFIED, IN6_LOOPBACK = bytes(16), bytes(15) + b"\x01"
REPLY_TTL = 64
ETH_ZLEN = 60  # the Ethernet minimum, without the frame check sequence
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 << 20
REATTACH_INTERVAL = 0.5  # seconds between looks for a returning interface
SYSFS_NET = "/sys/class/net"
CAP_NET_RAW = 13
PR_SET_KEEPCAPS, PR_CAPBSET_DROP = 8, 24
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# The kernel filter: only ARP requests, ICMP echo requests, IPv6 Neighbor
# Solicitations and ICMPv6 echo requests that arrive on the interface reach
# Python, and the fragments of ICMP and ICMPv6 datagrams (to reassemble); IPv6
# behind a Hop-by-Hop header too (MLD is such traffic), so that the core can
# look past it. It is shipped compiled so that running
# the tool needs neither libpcap nor tcpdump; tests/test_filter.py checks it
# against libpcap. Regenerate with:  tcpdump -i lo -ddd '<expression>'
# The kernel moves an 802.1Q tag into metadata before the filter runs, so
# tagged requests match as if untagged (Scapy puts the tag back on receive).
REQUEST_FILTER_EXPRESSION = (
    "inbound and ((arp and arp[6:2] = 1)"
    " or (icmp and (ip[6:2] & 0x3fff != 0 or icmp[icmptype] = icmp-echo))"
    " or (ip6 and (ip6[6] = 0 or (ip6[6] = 58 and (ip6[40] = 135 or ip6[40] = 128))"
    " or (ip6[6] = 44 and ip6[40] = 58))))"
)
REQUEST_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 24, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 2, 2054),
    (40, 0, 0, 20),
    (21, 19, 20, 1),
    (21, 0, 8, 2048),
    (48, 0, 0, 23),
    (21, 0, 17, 1),
    (40, 0, 0, 20),
    (69, 14, 0, 16383),
    (69, 14, 0, 8191),
    (177, 0, 0, 14),
    (80, 0, 0, 14),
    (21, 10, 11, 8),
    (21, 0, 10, 34525),
    (48, 0, 0, 20),
    (21, 7, 0, 0),
    (21, 0, 3, 58),
    (48, 0, 0, 54),
    (21, 4, 0, 135),
    (21, 3, 4, 128),
    (21, 0, 3, 44),
    (48, 0, 0, 54),
    (21, 0, 1, 58),
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
  sudo ./arp_icmp_vlan0.py --vlan 100 --vlan 0 --tpid 0x88a8 tap0
        QinQ: an 802.1ad outer tag with VLAN 100 over an 802.1Q VLAN 0 tag
  sudo ./arp_icmp_vlan0.py --untagged tap0
        the baseline: the same replies without a tag
  sudo ./arp_icmp_vlan0.py -c 4 --timeout 30 -q tap0
        stop after 4 replies or 30 seconds, print only the statistics
  sudo ./arp_icmp_vlan0.py --self-test
        prove this host works: a throwaway namespace pings through the tool
  watch the tags alongside:  tcpdump -n -e -i tap0   (shows "vlan 0, p 0")
"""


# ---------------------------------------------------------------- pure core
#
# The core works on the frame's bytes, not on dissected Scapy packets: at
# flood rates Scapy's per-packet dissection and building (about 1.4 ms a
# reply here) would be the ceiling. Each request kind has a parser ("is this
# a request?": the fields a reply needs, or None) and a builder ("make the
# reply": bytes). They read no globals and touch no system state; the tests
# check every reply field against Scapy's dissection.

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, the old QinQ TPID
IPPROTO_ICMPV6, IPPROTO_HOPOPTS, IPPROTO_FRAGMENT = 58, 0, 44
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
ND_OPT_TARGET_LLADDR = 2
NA_FLAGS_SOLICITED_OVERRIDE = 0x60000000  # R clear, S and O set
MAX_DATAGRAM = 65535


@dataclass(frozen=True)
class Framing:
    """How every reply is framed: its 802.1Q tags and padding."""
    vlans: tuple = (0,)     # VLAN IDs, outer first; () sends untagged replies
    prio: int = 0           # PCP of every tag
    dei: bool = False       # Drop Eligible Indicator of every tag
    tpid: int = 0x8100      # TPID of the outer tag; inner tags use 0x8100
    pad: bool = True        # to the 60-byte Ethernet minimum, tags counted

    @cached_property
    def header(self):
        """The tags, as bytes, to go after the MAC addresses."""
        return b"".join(struct.pack("!HH", self.tpid if i == 0 else 0x8100,
                                    self.prio << 13 | self.dei << 12 | vlan)
                        for i, vlan in enumerate(self.vlans))

    def frame(self, dst, src, ethertype, payload):
        frame = dst + src + self.header + struct.pack("!H", ethertype) + payload
        if self.pad and len(frame) < ETH_ZLEN:
            frame += bytes(ETH_ZLEN - len(frame))
        return frame

    def __str__(self):  # in tcpdump -e's words
        if not self.vlans:
            return "untagged"
        dei = ", DEI" if self.dei else ""
        return ", ".join(f"vlan {vlan}, p {self.prio}{dei}" for vlan in self.vlans)


@dataclass(frozen=True)
class Scope:
    """Which requests the tool answers."""
    mac: str = DEFAULT_MAC
    targets: tuple = ()            # IPv4/IPv6Network; empty: any unicast address
    families: frozenset = frozenset({4, 6})
    multicast_ping6: bool = False  # answer ICMPv6 echo sent to a multicast group

    @cached_property
    def mac_bytes(self):
        return mac_to_bytes(self.mac)


def mac_to_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def _is_unicast(packed):
    """A packed IPv4 address outside 0/8, 127/8 and 224/3 (multicast,
    reserved, broadcast), or an IPv6 address other than ::, ::1, ff00::/8."""
    if len(packed) == 4:
        return 0 < packed[0] < 224 and packed[0] != 127
    return packed[0] != 0xFF and packed not in (IN6_UNSPECIFIED, IN6_LOOPBACK)


def _is_host_of(ip, net):
    """`ip` is in `net` and not its network address (for IPv6: the
    subnet-router anycast address) nor its IPv4 broadcast address."""
    if ip.version != net.version or ip not in net:
        return False
    if net.num_addresses <= 2:  # /31, /32, /127, /128: every address is a host
        return True
    return ip != net.network_address and (ip.version == 6 or ip != net.broadcast_address)


def wants_address(packed, targets):
    """True if the tool answers for packed IPv4 or IPv6 address `packed`.
    `targets` is a tuple of IPv4Network/IPv6Network; empty means any
    unicast address."""
    if not _is_unicast(packed):
        return False
    return not targets or any(_is_host_of(ipaddress.ip_address(packed), net)
                              for net in targets)


def tool_link_local(mac):
    """The tool's own IPv6 link-local address (modified EUI-64 of its MAC)."""
    return str(ipaddress.IPv6Address("fe80::" + in6_mactoifaceid(mac)))


def _ethertype_and_offset(frame):
    """The frame's ethertype and where its payload starts, looking past any
    VLAN tags (a tagged request is answered like an untagged one)."""
    offset = 12
    while len(frame) >= offset + 2:
        ethertype = frame[offset] << 8 | frame[offset + 1]
        if ethertype not in VLAN_TPIDS:
            return ethertype, offset + 2
        offset += 4
    return None, None


class ArpRequest(NamedTuple):
    requester: bytes     # Ethernet source of the request
    sender_mac: bytes
    sender_ip: bytes
    target_ip: bytes


def parse_arp_request(frame, offset, scope):
    """An ARP who-has, to broadcast or to us, for an address we answer for.
    Not probes (sender 0.0.0.0, RFC 5227) nor gratuitous ARP (sender =
    target)."""
    arp = frame[offset:offset + 28]
    if (len(arp) < 28 or arp[:8] != b"\x00\x01\x08\x00\x06\x04\x00\x01"
            or frame[:6] not in (BROADCAST_MAC_BYTES, scope.mac_bytes)):
        return None
    sender_mac, sender_ip, target_ip = arp[8:14], arp[14:18], arp[24:28]
    if (sender_mac == scope.mac_bytes or sender_mac[0] & 1
            or sender_ip == target_ip or not _is_unicast(sender_ip)
            or not wants_address(target_ip, scope.targets)):
        return None
    return ArpRequest(frame[6:12], sender_mac, sender_ip, target_ip)


def arp_reply(request, mac, framing):
    """The ARP is-at: `mac` owns the requested address."""
    body = (b"\x00\x01\x08\x00\x06\x04\x00\x02" + mac + request.target_ip +
            request.sender_mac + request.sender_ip)
    return framing.frame(request.requester, mac, ETH_P_ARP, body)


class EchoRequest(NamedTuple):
    requester: bytes     # Ethernet source of the request
    source: bytes        # IP source, packed (4 or 16 bytes)
    destination: bytes   # IP destination, packed
    traffic_class: int   # IPv4 TOS or IPv6 traffic class, echoed back
    ident: int           # IPv4 identification (0 for IPv6)
    message: bytes       # the whole ICMP/ICMPv6 echo request message


def parse_echo_request(frame, offset, scope):
    """A whole, unfragmented, checksum-valid ICMP echo request sent to our
    MAC, from a unicast address, to an address we answer for."""
    ip = frame[offset:]
    if len(ip) < 20 or frame[:6] != scope.mac_bytes:
        return None
    version_ihl, tos, total, ident, fragment, _, protocol = struct.unpack_from(
        "!BBHHHBB", ip)
    header_len = (version_ihl & 0x0F) * 4
    if (version_ihl >> 4 != 4 or header_len < 20 or protocol != 1
            or fragment & 0x3FFF or total < header_len + 8 or len(ip) < total
            or checksum(ip[:header_len]) != 0):
        return None
    message = ip[header_len:total]  # Ethernet padding cut off
    source, destination = ip[12:16], ip[16:20]
    if (message[0] != ICMP_ECHO_REQUEST or message[1] != 0 or checksum(message) != 0
            or not _is_unicast(source)
            or not wants_address(destination, scope.targets)):
        return None
    return EchoRequest(frame[6:12], source, destination, tos, ident, message)


def echo_reply(request, mac, framing):
    """The ICMP echo reply: the request's identifier, sequence and data,
    addresses swapped, TTL 64, the request's TOS and IP ID, no options."""
    message = bytearray(request.message)
    message[0], message[2:4] = ICMP_ECHO_REPLY, b"\x00\x00"
    message[2:4] = struct.pack("!H", checksum(bytes(message)))
    header = bytearray(struct.pack(
        "!BBHHHBBH4s4s", 0x45, request.traffic_class, 20 + len(message),
        request.ident, 0, REPLY_TTL, 1, 0, request.destination, request.source))
    header[10:12] = struct.pack("!H", checksum(bytes(header)))
    return framing.frame(request.requester, mac, ETH_P_IP, bytes(header + message))


def _icmpv6_checksum(source, destination, message):
    pseudo_header = source + destination + struct.pack("!I3xB", len(message),
                                                        IPPROTO_ICMPV6)
    return checksum(pseudo_header + message)


def _ipv6_header(traffic_class, payload_len, hop_limit, source, destination):
    return struct.pack("!IHBB16s16s", 6 << 28 | traffic_class << 20, payload_len,
                       IPPROTO_ICMPV6, hop_limit, source, destination)


def _icmpv6_message(ip6):
    """The ICMPv6 message of IPv6 packet `ip6` (header first), directly after
    the IPv6 header or after a Hop-by-Hop header; None if there is none, the
    packet is truncated or the checksum is wrong."""
    payload_len, next_header = struct.unpack_from("!HB", ip6, 4)
    packet = ip6[:40 + payload_len]
    if payload_len == 0 or len(packet) < 40 + payload_len:
        return None
    offset = 40
    if next_header == IPPROTO_HOPOPTS:
        if len(packet) < 48:
            return None
        next_header, offset = packet[40], 40 + (packet[41] + 1) * 8
    message = packet[offset:]
    if (next_header != IPPROTO_ICMPV6 or len(message) < 8
            or _icmpv6_checksum(packet[8:24], packet[24:40], message) != 0):
        return None
    return message


class NeighborSolicitation(NamedTuple):
    requester: bytes     # Ethernet source of the solicitation
    source: bytes        # IPv6 source, packed
    target: bytes        # the address asked for, packed


def _options_valid(options):
    """RFC 4861 7.1.1: every ND option has a length > 0 that fits."""
    while options:
        if len(options) < 2 or options[1] == 0 or options[1] * 8 > len(options):
            return False
        options = options[options[1] * 8:]
    return True


def _multicast_mac(address):
    """The Ethernet group address of packed IPv6 multicast `address`."""
    return mac_to_bytes(in6_getnsmac(address))


def parse_neighbor_solicitation(frame, offset, message, scope):
    """A valid Neighbor Solicitation (RFC 4861 7.1.1) for an address we
    answer for. Never DAD (source ::): answering it would make the guest
    believe its own address is a duplicate."""
    ip6 = frame[offset:]
    source, destination, target = ip6[8:24], ip6[24:40], message[8:24]
    if (len(message) < 24 or message[1] != 0 or ip6[7] != 255
            or not _is_unicast(source) or not _options_valid(message[24:])
            or not wants_address(target, scope.targets)):
        return None
    solicited_node = in6_getnsma(target)
    if (destination, frame[:6]) not in ((solicited_node, _multicast_mac(solicited_node)),
                                        (target, scope.mac_bytes)):
        return None
    return NeighborSolicitation(frame[6:12], source, target)


def neighbor_advertisement(request, mac, framing):
    """The solicited Neighbor Advertisement: `mac` owns the target (flags S
    and O set, R clear, a Target Link-Layer Address option), hop limit 255."""
    message = bytearray(struct.pack("!BBHI16sBB6s", ND_NEIGHBOR_ADVERT, 0, 0,
                                    NA_FLAGS_SOLICITED_OVERRIDE, request.target,
                                    ND_OPT_TARGET_LLADDR, 1, mac))
    message[2:4] = struct.pack("!H", _icmpv6_checksum(request.target, request.source,
                                                      bytes(message)))
    header = _ipv6_header(0, len(message), 255, request.target, request.source)
    return framing.frame(request.requester, mac, ETH_P_IPV6, header + bytes(message))


def parse_echo6_request(frame, offset, message, scope):
    """A well-formed ICMPv6 echo request from a unicast address, sent to our
    MAC for an address we answer for (or, if asked, to a multicast group)."""
    ip6 = frame[offset:]
    source, destination = ip6[8:24], ip6[24:40]
    if message[1] != 0 or not _is_unicast(source):
        return None
    if destination[0] == 0xFF:
        if not scope.multicast_ping6 or frame[:6] != _multicast_mac(destination):
            return None
        # RFC 4443 4.2: the reply to a multicast echo has a unicast source.
        destination = ipaddress.IPv6Address(tool_link_local(scope.mac)).packed
    elif frame[:6] != scope.mac_bytes or not wants_address(destination, scope.targets):
        return None
    traffic_class = int.from_bytes(ip6[:4], "big") >> 20 & 0xFF
    return EchoRequest(frame[6:12], source, destination, traffic_class, 0, message)


def echo6_reply(request, mac, framing):
    """The ICMPv6 echo reply: the request's identifier, sequence and data,
    addresses swapped, hop limit 64, the request's traffic class."""
    message = bytearray(request.message)
    message[0], message[2:4] = ICMPV6_ECHO_REPLY, b"\x00\x00"
    message[2:4] = struct.pack("!H", _icmpv6_checksum(request.destination,
                                                      request.source, bytes(message)))
    header = _ipv6_header(request.traffic_class, len(message), REPLY_TTL,
                          request.destination, request.source)
    return framing.frame(request.requester, mac, ETH_P_IPV6, header + bytes(message))


REPLY_KINDS = ("arp", "icmp echo", "ndp", "icmp6 echo")
KIND_FAMILY = {"arp": 4, "icmp echo": 4, "ndp": 6, "icmp6 echo": 6}


def reply_to(frame, scope, framing):
    """(kind, reply frame) for a request the tool answers, else None.
    `frame` is the request as received, bytes, tagged or not."""
    if len(frame) < 14 or frame[6:12] == scope.mac_bytes or frame[6] & 1:
        return None  # our own frame, or a multicast source
    ethertype, offset = _ethertype_and_offset(frame)
    families, mac = scope.families, scope.mac_bytes
    if ethertype == ETH_P_ARP and 4 in families:
        request = parse_arp_request(frame, offset, scope)
        return request and ("arp", arp_reply(request, mac, framing))
    if ethertype == ETH_P_IP and 4 in families:
        request = parse_echo_request(frame, offset, scope)
        return request and ("icmp echo", echo_reply(request, mac, framing))
    if ethertype == ETH_P_IPV6 and 6 in families and len(frame) >= offset + 40:
        message = _icmpv6_message(frame[offset:])
        if message is None:
            return None
        if message[0] == ND_NEIGHBOR_SOLICIT:
            request = parse_neighbor_solicitation(frame, offset, message, scope)
            return request and ("ndp", neighbor_advertisement(request, mac, framing))
        if message[0] == ICMPV6_ECHO_REQUEST:
            request = parse_echo6_request(frame, offset, message, scope)
            return request and ("icmp6 echo", echo6_reply(request, mac, framing))
    return None


def fit_to_mtu(reply, mtu, framing):
    """`reply` as a list of frames none of whose IP packets exceeds `mtu`
    (less 4 bytes per tag beyond the first, which a link does not carry
    beyond its MTU): an IPv4 echo reply split into fragments, an IPv6 one
    given Fragment headers (RFC 8200 4.5). Each fragment is framed anew."""
    start = 14 + len(framing.header)
    budget = mtu - 4 * max(0, len(framing.vlans) - 1)
    if len(reply) <= start + budget:  # the usual case: it fits, padding and all
        return [reply]
    packet = reply[start:]
    ethertype = int.from_bytes(reply[start - 2:start], "big")
    if ethertype == ETH_P_IP:
        packet = packet[:int.from_bytes(packet[2:4], "big")]  # no padding
    elif ethertype == ETH_P_IPV6:
        packet = packet[:40 + int.from_bytes(packet[4:6], "big")]
    if len(packet) <= budget or ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return [reply]
    dst, src = reply[:6], reply[6:12]
    frames = []
    if ethertype == ETH_P_IP:
        header_len = (packet[0] & 0x0F) * 4
        header, data = packet[:header_len], packet[header_len:]
        step = (budget - header_len) // 8 * 8
        for offset in range(0, len(data), step):
            chunk = data[offset:offset + step]
            more = offset + step < len(data)
            fragment = bytearray(header)
            fragment[2:4] = struct.pack("!H", header_len + len(chunk))
            fragment[6:8] = struct.pack("!H", more << 13 | offset // 8)
            fragment[10:12] = b"\x00\x00"
            fragment[10:12] = struct.pack("!H", checksum(bytes(fragment)))
            frames.append(framing.frame(dst, src, ETH_P_IP, bytes(fragment) + chunk))
    else:
        header, data = packet[:40], packet[40:]
        ident = int.from_bytes(data[4:8], "big")  # the echo's identifier and sequence
        step = (budget - 48) // 8 * 8
        for offset in range(0, len(data), step):
            chunk = data[offset:offset + step]
            more = offset + step < len(data)
            fragment_header = struct.pack("!BBHI", header[6], 0, offset | more, ident)
            fixed = bytearray(header)
            fixed[4:6], fixed[6] = struct.pack("!H", 8 + len(chunk)), IPPROTO_FRAGMENT
            frames.append(framing.frame(dst, src, ETH_P_IPV6,
                                        bytes(fixed) + fragment_header + chunk))
    return frames


class Reassembler:
    """Reassembles fragmented echo requests, within bounds: at most
    `max_datagrams` in flight and `max_bytes` held in all (the oldest are
    dropped first), each complete within `timeout` seconds. A datagram whose
    fragments overlap or exceed 65,535 bytes is dropped; an exact duplicate
    fragment is ignored. Time is passed in, so this stays testable."""

    def __init__(self, max_datagrams=64, max_bytes=1 << 20, timeout=10.0):
        self.max_datagrams, self.max_bytes, self.timeout = max_datagrams, max_bytes, timeout
        self.pending = {}  # key -> _Datagram, oldest first
        self.held = 0      # bytes of fragment data held
        self.reassembled = self.dropped = 0

    def add(self, frame, now):
        """The frame itself if it is no fragment; else the reassembled frame
        (Ethernet header of the first fragment) once the last piece is in,
        or None while pieces are missing or when the datagram was dropped."""
        self._expire(now)
        piece = _fragment_of(frame)
        if piece is None:
            return frame
        key, offset, more, data, first = piece
        datagram = self.pending.get(key)
        if datagram is None:
            datagram = self.pending[key] = _Datagram(now)
        verdict = datagram.add(offset, more, data, first)
        if verdict == "drop":
            self._drop(key)
            return None
        if verdict == "added":
            self.held += len(data)
            self._enforce_bounds()
        if key in self.pending and datagram.complete():
            del self.pending[key]
            self.held -= datagram.size
            self.reassembled += 1
            return datagram.assemble()
        return None

    def _drop(self, key):
        self.held -= self.pending.pop(key).size
        self.dropped += 1

    def _expire(self, now):
        while self.pending:
            key, oldest = next(iter(self.pending.items()))
            if now - oldest.started < self.timeout:
                return
            self._drop(key)

    def _enforce_bounds(self):
        while self.pending and (len(self.pending) > self.max_datagrams
                                or self.held > self.max_bytes):
            self._drop(next(iter(self.pending)))


class _Datagram:
    """The fragments of one datagram received so far."""

    def __init__(self, started):
        self.started = started
        self.pieces = {}     # offset -> data
        self.end = None      # total data length, once the last fragment is in
        self.first = None    # (frame head, IP header) from the offset-0 fragment
        self.size = 0

    def add(self, offset, more, data, first):
        """'added', 'duplicate' or 'drop' (overlap, oversize, inconsistency)."""
        if self.pieces.get(offset) == data and (more or self.end == offset + len(data)):
            return "duplicate"
        end = offset + len(data)
        if (end > MAX_DATAGRAM or (more and len(data) % 8) or not data
                or (not more and self.end not in (None, end))
                or (self.end is not None and end > self.end)
                or any(offset < o + len(d) and o < end for o, d in self.pieces.items())):
            return "drop"
        if not more:
            self.end = end
        if first is not None:
            self.first = first
        self.pieces[offset] = data
        self.size += len(data)
        return "added"

    def complete(self):
        return self.end is not None and self.first is not None and self.size == self.end

    def assemble(self):
        head, header, version = self.first
        data = b"".join(self.pieces[o] for o in sorted(self.pieces))
        if version == 4:
            header = bytearray(header)
            header[2:4] = struct.pack("!H", len(header) + len(data))
            header[6:8] = header[10:12] = b"\x00\x00"
            header[10:12] = struct.pack("!H", checksum(bytes(header)))
        else:  # the Fragment header's next header in place of 44
            header = bytearray(header)
            header[4:6] = struct.pack("!H", len(data))
        return head + bytes(header) + data


def _fragment_of(frame):
    """(key, offset, more, data, first) for a fragment of an ICMP or ICMPv6
    datagram; `first` is (frame head, header) for the offset-0 fragment. None
    for anything else, which passes through unchanged."""
    if len(frame) < 14:
        return None
    ethertype, start = _ethertype_and_offset(frame)
    head = frame[:start]
    if ethertype == ETH_P_IP and len(frame) >= start + 20:
        ip = frame[start:]
        header_len, total = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big")
        fragment = int.from_bytes(ip[6:8], "big")
        if (not fragment & 0x3FFF or ip[9] != 1 or ip[0] >> 4 != 4 or header_len < 20
                or total < header_len or len(ip) < total
                or checksum(ip[:header_len]) != 0):
            return None
        offset, more = (fragment & 0x1FFF) * 8, bool(fragment & 0x2000)
        key = (4, ip[12:20], ip[4:6])
        first = (head, ip[:header_len], 4) if offset == 0 else None
        return key, offset, more, ip[header_len:total], first
    if ethertype == ETH_P_IPV6 and len(frame) >= start + 48 and frame[start + 6] == 44:
        ip6 = frame[start:]
        payload_len = int.from_bytes(ip6[4:6], "big")
        if ip6[40] != IPPROTO_ICMPV6 or payload_len < 8 or len(ip6) < 40 + payload_len:
            return None
        offset_and_more = int.from_bytes(ip6[42:44], "big")
        offset, more = offset_and_more & 0xFFF8, bool(offset_and_more & 1)
        key = (6, ip6[8:40], ip6[44:48])
        header = ip6[:6] + bytes([IPPROTO_ICMPV6]) + ip6[7:40]
        first = (head, header, 6) if offset == 0 else None
        return key, offset, more, ip6[48:40 + payload_len], first
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

    def report(self, interfaces, reassembler):
        kinds = ", ".join(f"{n} {k}" for k, n in self.replies.items())
        lines = [
            f"--- {' '.join(interfaces)} arp_icmp_vlan0 statistics ---",
            f"{self.seen} requests seen, {self.replied} replies sent ({kinds}), "
            f"{self.ignored} ignored, time {time.monotonic() - self.started:.1f}s",
        ]
        if reassembler.reassembled or reassembler.dropped or reassembler.pending:
            lines.append(f"fragmented requests: {reassembler.reassembled} reassembled, "
                         f"{reassembler.dropped + len(reassembler.pending)} dropped "
                         "(incomplete, overlapping or oversized)")
        if self.send_errors or self.internal_errors:
            lines.append(f"{self.send_errors} send errors, "
                         f"{self.internal_errors} internal errors")
        return "\n".join(lines)


def _timestamp(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


class Responder:
    """Receives, answers and counts; owns the sockets and the pcap writer.

    It drains Scapy's sockets in its own select() loop rather than through
    sniff(prn=...): measured with tests/benchmark.py's load on the same core,
    sniff() handing over Raw packets topped out at 50k echo replies a second
    (0.40 ms ping round trips), this loop at 75k (0.24 ms); the loop also
    re-attaches returning interfaces and wakes on signals (README.rst,
    Performance)."""

    def __init__(self, sockets, mtus, scope, framing, pcap=None, verbose=0, count=0,
                 busy_poll=False, exit_on_down=False):
        self.sockets, self.mtus = sockets, mtus  # interface name -> L2Socket, MTU
        self.scope, self.framing = scope, framing
        self.pcap, self.verbose, self.count = pcap, verbose, count
        self.busy_poll, self.exit_on_down = busy_poll, exit_on_down
        self.stopping = False
        self.waiting = set()   # interfaces gone, to serve again once back
        self.lost = []         # every interface lost, in order
        self.reassembler = Reassembler()
        self.stats = Stats({kind: 0 for kind in REPLY_KINDS
                            if KIND_FAMILY[kind] in scope.families})

    def handle(self, iface, frame, timestamp):
        """Answer one received frame (or hold it, if it is a fragment)."""
        self.stats.seen += 1
        try:
            whole = self.reassembler.add(frame, time.monotonic())
            if whole is not frame:  # a fragment: kept as seen, answered once whole
                self._record(frame, timestamp)
                if whole is None:
                    return
            answer = reply_to(whole, self.scope, self.framing)
            if answer is not None:
                kind, reply = answer
                frames = fit_to_mtu(reply, self.mtus[iface], self.framing)
        except Exception as exc:  # a bug in the core: report it, keep serving
            self.stats.internal_errors += 1
            print(f"error: cannot handle frame {frame.hex()}: {exc!r}", file=sys.stderr)
            return
        if answer is None:
            self.stats.ignored += 1
            if self.verbose > 0:
                self.say(f"{_timestamp(timestamp)} {iface} ignored: {Ether(whole).summary()}")
            return
        try:
            for fragment in frames:
                self.sockets[iface].send(fragment)
        except OSError as exc:
            self.stats.send_errors += 1
            print(f"error: sending on {iface}: {exc.strerror or exc}", file=sys.stderr)
            return
        self.stats.replies[kind] += 1
        if whole is frame:
            self._record(frame, timestamp)
        for fragment in frames:
            self._record(fragment)
        if self.verbose >= 0:
            pieces = f" in {len(frames)} fragments" if len(frames) > 1 else ""
            self.say(f"{_timestamp(timestamp)} {iface} {Ether(whole).summary()} ==> "
                     f"{Ether(reply).summary()}{pieces} {self.framing}")

    def _record(self, frame, timestamp=None):
        """Write `frame` to the -w pcap file, if there is one."""
        if self.pcap:
            if timestamp is None:
                self.pcap.write_packet(frame)
            else:
                self.pcap.write_packet(frame, sec=int(timestamp),
                                       usec=int(timestamp % 1 * 1e6))

    def done(self):
        """-c/--count reached, or asked to stop."""
        return self.stopping or 0 < self.count <= self.stats.replied

    def say(self, line):
        """Print a line; if nobody reads stdout any more (| head), stop."""
        try:
            print(line, flush=True)
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the exit flush)
            self.stopping = True

    def run(self, timeout=None, wake_fd=None):
        """Serve until --count, --timeout, a signal (it sets `stopping` and
        writes to `wake_fd`) or, with --exit-on-down, a lost interface. An
        interface that goes away is waited for and served again when back."""
        deadline = None if timeout is None else time.monotonic() + timeout
        live = {sock: name for name, sock in self.sockets.items()}
        for sock in live:
            sock.ins.setblocking(False)
        while not self.done() and (live or self.waiting):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self.waiting:
                self._reattach(live)
                remaining = REATTACH_INTERVAL if remaining is None else min(
                    remaining, REATTACH_INTERVAL)
            if self.busy_poll and live:  # never sleep: no wake-up latency
                ready = list(live)
            else:
                watched = list(live) + ([wake_fd] if wake_fd is not None else [])
                ready, _, _ = select.select(watched, [], [], remaining)
            for sock in ready:
                if sock in live:
                    self._drain(sock, live)

    def _drain(self, sock, live):
        """Answer every frame queued on `sock`, then return to select()."""
        while not self.done():
            try:
                if self.pcap or self.verbose >= 0:
                    # Scapy's recv_raw() puts back the request's 802.1Q tag
                    # and reads its time stamp, for the pcap file and the lines.
                    _, frame, timestamp = sock.recv_raw(MTU)
                else:  # -q: neither is shown; recv() costs 1 us a frame, that 3
                    frame, timestamp = sock.ins.recv(MTU), None
            except BlockingIOError:
                return
            except OSError as exc:  # the interface went down or away
                self._lost(sock, live, exc)
                return
            if frame:  # None: a frame the host sent, which Scapy skips
                self.handle(live[sock], frame, timestamp or time.time())

    def _lost(self, sock, live, exc):
        name = live.pop(sock)
        sock.close()
        self.lost.append(name)
        if self.exit_on_down:
            self.stopping = True
            return
        self.waiting.add(name)
        print(f"arp_icmp_vlan0: {name}: {exc.strerror or exc}; waiting for it to "
              "come back", file=sys.stderr, flush=True)

    def _reattach(self, live):
        """Open a new socket on every awaited interface that exists and is up."""
        for name in sorted(self.waiting):
            if _check_interface(name) is not None:
                continue
            conf.ifaces.reload()  # Scapy caches interfaces: a new one has a new index
            try:
                sock = open_socket(name)
                self.mtus[name] = _mtu(name)
            except OSError:
                continue  # not quite back yet: try again later
            sock.ins.setblocking(False)
            self.sockets[name] = sock
            live[sock] = name
            self.waiting.discard(name)
            print(f"arp_icmp_vlan0: {name}: back; answering again", file=sys.stderr,
                  flush=True)


def open_socket(iface):
    """A packet socket bound to `iface` with the request filter attached and
    a receive buffer that holds a burst of a few thousand requests."""
    sock = L2Socket(iface=iface)
    insns = (bpf_insn * len(REQUEST_FILTER))(*REQUEST_FILTER)
    sock.ins.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        sock_fprog(len(REQUEST_FILTER), insns))
    try:  # as root, past net.core.rmem_max
        sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except PermissionError:
        sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return sock


# ---------------------------------------------------------------- CLI

def _mac(text):
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
        raise argparse.ArgumentTypeError(f"invalid MAC address: {text!r}")
    mac = text.lower()
    if int(mac[:2], 16) & 1:
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


def _tpid(text):
    try:
        value = int(text, 16)
    except ValueError:
        value = None
    if value not in VLAN_TPIDS:
        raise argparse.ArgumentTypeError(
            f"TPID must be 0x8100, 0x88a8 or 0x9100: {text!r}")
    return value


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
        description="Answer ARP requests, IPv6 Neighbor Solicitations and ICMP/ICMPv6 "
                    "echo requests\nseen on INTERFACE with 802.1Q-tagged replies: VLAN ID "
                    "0 ('priority tagging')\nby default, as a quirky switch does.",
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
    tags = parser.add_argument_group(
        "reply framing", "Every reply carries the same tags; by default one 802.1Q "
        "tag, vlan 0, p 0.")
    tags.add_argument("--vlan", type=_ranged_int("VLAN ID", 0, 4094), action="append",
                      metavar="VID", help="VLAN ID of the reply tag, 0-4094 (default "
                      "0); give it twice for two stacked tags (QinQ), outer first")
    tags.add_argument("--prio", type=_ranged_int("priority", 0, 7), metavar="PCP",
                      help="priority (PCP) of every tag, 0-7 (default 0)")
    tags.add_argument("--dei", action="store_true",
                      help="set the Drop Eligible Indicator of every tag")
    tags.add_argument("--tpid", type=_tpid, metavar="TPID",
                      help="TPID of the outer tag: 0x8100 (802.1Q, default), "
                           "0x88a8 (802.1ad) or 0x9100")
    tags.add_argument("--untagged", action="store_true",
                      help="send plain untagged replies: the baseline to compare with")
    tags.add_argument("--no-pad", dest="pad", action="store_false",
                      help="do not pad replies to the 60-byte Ethernet minimum")
    safety = parser.add_argument_group("safety")
    safety.add_argument("--allow-physical", action="store_true",
                        help="serve a physical interface (or a bridge or VLAN on "
                             "one) too: the tool then answers on a real network")
    safety.add_argument("--user", default="nobody",
                        help="user to run as once the sockets are open (default "
                             "nobody), keeping only CAP_NET_RAW")
    safety.add_argument("--keep-root", action="store_true",
                        help="do not drop root privileges")
    safety.add_argument("--exit-on-down", action="store_true",
                        help="exit (status 1) when an interface goes away, instead "
                             "of waiting for it to come back")
    parser.add_argument("--busy-poll", action="store_true",
                        help="poll the sockets without sleeping: round trips "
                             "close to the kernel's, for a whole CPU core")
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
    if args.untagged and (args.vlan or args.prio is not None or args.dei or args.tpid):
        parser.error("--untagged takes no --vlan, --prio, --dei or --tpid")
    return args


def framing_from(args):
    if args.untagged:
        return Framing(vlans=(), pad=args.pad)
    return Framing(vlans=tuple(args.vlan or [0]), prio=args.prio or 0, dei=args.dei,
                   tpid=args.tpid or 0x8100, pad=args.pad)


def scope_from(args):
    return Scope(mac=args.mac, targets=tuple(args.targets),
                 families=args.families,
                 multicast_ping6=args.answer_multicast_ping)


def _describe(scope, framing):
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
    if framing.vlans:
        tpid = {0x8100: "802.1Q", 0x88A8: "802.1ad", 0x9100: "0x9100"}[framing.tpid]
        how = f"tagged {tpid} {framing}"
    else:
        how = "untagged"
    padding = "" if framing.pad else ", not padded"
    return f"{kinds} for {targets or 'any address'} as {owner}, replies {how}{padding}"


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
        with open(f"{SYSFS_NET}/{name}/flags") as flags:
            up = int(flags.read(), 16) & 1
    except OSError:
        up = True  # no sysfs view: let the socket tell
    if not up:
        return f"{name}: interface is down (ip link set {name} up)"
    return None


def _mtu(name):
    with open(f"{SYSFS_NET}/{name}/mtu") as mtu:
        return int(mtu.read())


def physical_device(name):
    """The physical device that interface `name` is, sits on (a VLAN,
    macvlan or bond over it) or bridges to (a bridge port), or None if it is
    purely virtual (TAP, veth, dummy, a bridge of those...). A veth's or a
    TAP's far end is not followed: it is in another namespace or a process."""
    todo, seen = [name], set()
    while todo:
        device = todo.pop()
        if device in seen:
            continue
        seen.add(device)
        path = os.path.realpath(os.path.join(SYSFS_NET, device))
        if "/devices/virtual/" not in path:
            return device
        entries = os.listdir(path)
        todo += [entry[len("lower_"):] for entry in entries if entry.startswith("lower_")]
        if "brif" in entries:
            todo += os.listdir(os.path.join(path, "brif"))
    return None


def drop_privileges(user):
    """Become `user`, keeping CAP_NET_RAW alone (to open a packet socket on a
    returning interface) in every capability set. Raises KeyError for an
    unknown user, OSError if the kernel refuses."""
    entry = pwd.getpwnam(user)
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    with open("/proc/sys/kernel/cap_last_cap") as last:
        for cap in range(int(last.read()) + 1):
            if cap != CAP_NET_RAW:
                check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capabilities")
    check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keeping capabilities")
    os.setgroups([])
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    header = ctypes.create_string_buffer(struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0))
    net_raw = 1 << CAP_NET_RAW  # effective, permitted, inheritable; then the upper 32
    data = ctypes.create_string_buffer(struct.pack("6I", net_raw, net_raw, 0, 0, 0, 0))
    check(libc.capset(header, data), "setting capabilities")


def serve(args):
    for name in args.interfaces:
        problem = _check_interface(name) or _check_virtual(name, args)
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
                pcap.write_header(None)
            except OSError as exc:
                return _fail(f"cannot write {args.write}: {exc.strerror or exc}")
        user = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0 and not args.keep_root:
            try:
                drop_privileges(args.user)
            except KeyError:
                return _fail(f"no user named {args.user!r} (--user)")
            except OSError as exc:
                return _fail(f"cannot drop privileges to {args.user}: {exc.strerror}; "
                             "--keep-root runs as root")
            user = args.user
        framing, scope = framing_from(args), scope_from(args)
        mtus = {name: _mtu(name) for name in args.interfaces}
        responder = Responder(sockets, mtus, scope, framing, pcap=pcap,
                              verbose=args.verbose, count=args.count,
                              busy_poll=args.busy_poll, exit_on_down=args.exit_on_down)
        wake_fd = _stop_on_signals(responder)
        responder.say(f"arp_icmp_vlan0: on {', '.join(args.interfaces)} answering "
                      f"{_describe(scope, framing)}; running as {user}. Hit Ctrl-C to end.")
        responder.run(timeout=args.timeout, wake_fd=wake_fd)
        responder.say(responder.stats.report(args.interfaces, responder.reassembler))
        if args.exit_on_down and responder.lost:
            return _fail(f"stopped receiving on {', '.join(responder.lost)} "
                         "(interface gone or down)")
        return 0
    finally:
        if pcap:
            pcap.close()
        for sock in sockets.values():
            sock.close()


def _check_virtual(name, args):
    """An error message if `name` is, or reaches, a physical network and
    --allow-physical was not given; with it, and without --ip, a warning."""
    physical = physical_device(name)
    if physical is None:
        return None
    via = "" if physical == name else f" (through {physical})"
    if not args.allow_physical:
        return (f"{name} is a physical interface{via}: the tool would answer ARP "
                "and pings for other hosts on a real network. It is meant for TAP, "
                "veth and other virtual devices; --allow-physical overrides")
    if not args.targets:
        print(f"arp_icmp_vlan0: WARNING: {name} is a physical interface{via} and no "
              "--ip was given: EVERY ARP request on that network will be answered, "
              "claiming other hosts' addresses.", file=sys.stderr, flush=True)
    return None


def _stop_on_signals(responder):
    """SIGTERM and Ctrl-C end the serving loop cleanly between two frames (so
    the pcap file stays whole); SIGHUP is ignored. Returns a file descriptor
    that becomes readable when a signal arrives, for select()."""
    def stop(_signum, _frame):
        responder.stopping = True
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # background jobs keep it
        signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return read_end


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


def _framing_args(args):
    """The command-line options that give `args`' framing."""
    framing = framing_from(args)
    if not framing.vlans:
        options = ["--untagged"]
    else:
        options = ["--prio", str(framing.prio), "--tpid", hex(framing.tpid)]
        options += [f"--vlan={vlan}" for vlan in framing.vlans]
        options += ["--dei"] if framing.dei else []
    return options + ([] if framing.pad else ["--no-pad"])


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
    if any(args.vlan or []):
        return _fail("--self-test needs --vlan 0: the guest namespace has no "
                     "VLAN interface, so it would drop the replies")
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
             "--mac", args.mac, *_framing_args(args), *tool_args, "veth-host"],
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

def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # the self-test cleans up on it as on Ctrl-C


def main(argv=None):
    args = parse_args(argv)
    if SCAPY_MISSING:
        return _fail(f"Scapy is not installed ({SCAPY_MISSING}); install it "
                     "with: pip install scapy  (or: apt install python3-scapy)")
    log_runtime.setLevel("ERROR")  # our own lines say what went wrong
    if args.self_test:
        signal.signal(signal.SIGTERM, _interrupt)
        return self_test(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
