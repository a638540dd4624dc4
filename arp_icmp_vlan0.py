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
                guest's NIC driver and network stack cope, and says whether
                the guest accepts the tagged replies. It can also ask the
                guest itself (--probe), serve DHCP and Router
                Advertisements (--dhcp, --ra) to guests that configure
                themselves, boot files over TFTP (--boot-file) to
                firmware that boots from the network, and play an ISP's
                side of a router's WAN port: DHCPv6 with prefix
                delegation, PPPoE discovery and 802.1X (--dhcp6, --pppoe,
                --dot1x). Each guest's line also says how its own frames
                were tagged. And it judges a capture made anywhere, a
                real switch's or ISP's port included (-r).

USAGE: arp_icmp_vlan0.py [-h] [--mac MAC] [--ip ADDR[/LEN]] [-4 | -6]
                         [--answer-multicast-ping] [--probe [ADDR ...]]
                         [--dhcp] [--ra] [--boot-file [ARCH=]FILE]
                         [--router-lifetime SECONDS] [--dhcp6]
                         [--delegate PREFIX/LEN] [--delegated-length LEN]
                         [--pppoe] [--ac-name NAME] [--dot1x]
                         [--expect-framing TAGS]
                         [--vlan VID] [--prio PCP] [--dei] [--tpid TPID]
                         [--untagged] [--no-pad] [--allow-physical]
                         [--any-address] [--user USER] [--keep-root]
                         [--exit-on-down] [-c N] [--timeout SECONDS]
                         [--until-verdict] [-w FILE] [-r FILE]
                         [--switch-mac MAC] [--json FILE] [--metrics FILE]
                         [--json-interval SECONDS] [-q | -v] [--busy-poll]
                         [-V] [--self-test] [INTERFACE ...]

Judging a capture: arp_icmp_vlan0.py -r FILE [--switch-mac MAC] [--json FILE]

The design card: "a Scapy sniff() loop on a TAP interface uses a prn callback
that matches ARP requests and ICMP echo requests and sends Dot1Q(vlan=0) tagged
replies with sendp". Its steps, and the names that do them here:

  sniff() loop     Loop.run(): a packet socket per interface (Interfaces,
                   open_socket(): Scapy's L2Socket's, opened directly),
                   read by a blocking receive when one interface is served,
                   else by epoll (Loop._drain); not sniff(), which dissects
                   every frame into Scapy layers first
  prn callback     Loop.handle(link, frame, stamp): reassembly, then the
                   services; the usual echo request takes a shortcut,
                   Loop.handle_plain() with plain_echo_replier's reply
  "matches ... and Service.answer(), the contract of every service, as Scapy's
   [makes] tagged  AnsweringMachine has it (is_request, make_reply): the
   replies"        frame is offered to each service in turn (answer_with);
                   Replies answers ARP, NDP and echo with one parse_*() and
                   one *_reply() per row of KINDS, on the frame's bytes
  Dot1Q(vlan=0)    Framing.tags: Scapy's Dot1Q, built once, on every reply
  sendp            Loop.send(): the socket's own send(), not sendp()
  (after it)       Loop.account(): the counts and the -w record, then each
                   service's Service.observe() (observe_with): the verdicts,
                   and the lines
  (beyond it)      Service.send_due(), from Loop.send_timed(): what a service
                   sends unasked (the Prober's probes, the Advertiser's
                   advertisements)

Reading order: main() -> Session (start, serve, finish) -> Loop.run() ->
Loop._drain() -> Loop.handle() -> the services -> Loop.account().

  An ARP request   Loop.handle -> answer_with -> Replies.answer -> answer_at
                   -> parse_arp_request, arp_reply -> Loop.send ->
                   Loop.account -> Replies.observe (the Guest's verdict)
  A DHCPDISCOVER   Loop.handle -> answer_with -> DhcpServer.answer ->
                   parse_dhcp_request, Leases.offer, dhcp_reply -> Loop.send
                   -> Loop.account -> DhcpServer.observe (the Client's verdict)

Why these steps and not the card's, measured: tests/figures/README.rst,
section Benchmark.

The file, top-down, in the order a frame travels: wire constants and the
KINDS table; framing and scope; the byte core; reassembly; the services'
contract; one section per service (the replies, the probe, DHCP, TFTP,
Router Advertisements, DHCPv6, PPPoE discovery, 802.1X, the guests' own
framing, the roll of guests) and the list of them; the loop; interfaces and sockets (the
kernel filter's programs beside kernel_filter()); privileges and signals;
errors and output; the fleet view (--metrics, --json-interval: StateWriter);
the command line; a run of the tool; judging a capture
(-r: Replay, the loop's counterpart, feeds the same services); namespaces
and the self-test; main.

Copyright (C) 2026 The arp_icmp_vlan0 authors. Licensed under the GNU General
Public License, version 2 only (see LICENSE), like Scapy which it builds on.
"""
import argparse
import atexit
import bisect
import codecs
import contextlib
import ctypes
import errno
import fcntl
import fnmatch
import hashlib
import heapq
import io
import ipaddress
import json
import os
import pwd
import queue
import random
import re
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple, Optional



class _NothingToRead:
    """Where Scapy is imported when the tool runs as root: a network
    namespace of its own, empty, made for the import and left at once.
    Scapy reads every interface and route of the namespace it is imported
    in (Scapy 2.6 and later three times, by netlink dissected into Scapy
    packets: 15.7 s and 344 MiB with 2,000 interfaces), and the tool uses none
    of it: it opens its own packet sockets (open_socket()) and builds every
    address into its frames. Without the privilege (unshare() refused), or
    imported as a module (the tests), Scapy is imported where the tool is."""

    CLONE_NEWNET = 0x40000000

    def __init__(self, wanted):
        self.home = None
        if not wanted or os.geteuid() != 0:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        self.setns = libc.setns
        try:
            home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        if libc.unshare(self.CLONE_NEWNET) != 0:
            os.close(home)
            return
        self.home = home
        try:  # its loopback up, as on any host (Scapy 2.5.0 warns of it down)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                request = struct.pack("16sH14x", b"lo", 0)
                flags = struct.unpack_from("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
                fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.home is None:
            return
        back = self.setns(self.home, self.CLONE_NEWNET)
        os.close(self.home)
        if back != 0:  # cannot be: unshare() needed the same privilege
            sys.exit(f"arp_icmp_vlan0: error: cannot return to the network namespace "
                     f"after importing Scapy: {os.strerror(ctypes.get_errno())}")


SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1

with _NothingToRead(__name__ == "__main__"):
    try:
        from scapy.arch.linux import PACKET_ADD_MEMBERSHIP, PACKET_AUXDATA, PACKET_MR_PROMISC
        from scapy.data import DLT_EN10MB, MTU, SO_ATTACH_FILTER, SO_TIMESTAMPNS, SOL_PACKET
        from scapy.error import log_runtime
        from scapy.layers.dhcp import BOOTP, DHCP
        from scapy.layers.dhcp6 import (DHCP6_Advertise, DHCP6_Reply, DHCP6OptIA_NA, DHCP6OptIA_PD,
                                        DHCP6OptIAAddress, DHCP6OptIAPrefix, DHCP6OptPref,
                                        DHCP6OptRapidCommit, DHCP6OptServerId, DHCP6OptStatusCode,
                                        DUID_LL)
        from scapy.layers.eap import EAP, EAP_MD5, EAPOL
        from scapy.layers.inet import ICMP, IP, UDP
        from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_RA,
                                        ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, IPv6)
        from scapy.layers.l2 import ARP, Dot1Q, Ether
        from scapy.layers.ppp import PPPoED, PPPoED_Tags, PPPoETag
        from scapy.libs.structures import bpf_insn, sock_fprog
        from scapy.utils import RawPcapWriter, mac2str, str2mac
        from scapy.utils6 import in6_getnsma, in6_getnsmac, in6_mactoifaceid
        SCAPY_MISSING = None
    except ImportError as exc:  # reported by main() as one line, not a traceback
        SCAPY_MISSING = exc

# ---------------------------------------------------------------- wire constants and kinds

__version__ = "1.8.0"

# Locally administered, unicast; its bytes spell "vlan0" in ASCII.
DEFAULT_MAC = "02:76:6c:61:6e:30"
# Run as this system user, if it exists, rather than nobody, whose other
# processes could signal the tool (README.rst, Safety).
DEDICATED_USER = "arp_icmp_vlan0"

# Exit statuses, as --help and README.rst list them.
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_DROPS, EXIT_NO_VERDICT, EXIT_RECORD_INCOMPLETE = 3, 4, 5

SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 << 20
SYSFS_NET = "/sys/class/net"
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772  # /sys/class/net/*/type
RTMGRP_LINK = 1
CAP_NET_RAW = 13
PR_SET_KEEPCAPS, PR_CAPBSET_DROP = 8, 24
LINUX_CAPABILITY_VERSION_3 = 0x20080522

ETH_HLEN, ETH_ZLEN = 14, 60  # Ethernet header; minimum frame without its FCS
ETH_P_ALL, ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0003, 0x0800, 0x0806, 0x86DD
ETH_P_PPP_DISC, ETH_P_PPP_SES, ETH_P_PAE = 0x8863, 0x8864, 0x888E  # PPPoE; 802.1X EAPOL
ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1 = 0x8100, 0x88A8, 0x9100
VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1)
VLAN_HLEN = 4
BROADCAST_MAC_BYTES = b"\xff" * 6
IPV4_ANY, IN6_UNSPECIFIED, IN6_LOOPBACK = bytes(4), bytes(16), bytes(15) + b"\x01"
IN6_ALL_NODES = socket.inet_pton(socket.AF_INET6, "ff02::1")
IN6_ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
IN6_LINK_LOCAL_PREFIX = b"\xfe\x80"  # fe80::/10, as every stack forms it: fe80::/64
IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_HOPOPTS, IPPROTO_FRAGMENT = 1, 58, 0, 44
IPV4_HLEN, IPV6_HLEN, IPV6_FRAG_HLEN, ICMP_HLEN = 20, 40, 8, 8
IP_FRAGMENT_BITS, IP_MORE_FRAGMENTS, IP_OFFSET_BITS = 0x3FFF, 0x2000, 0x1FFF
IPV6_OFFSET_BITS, IPV6_MORE_FRAGMENTS = 0xFFF8, 0x0001  # of the Fragment header
ARP_REQUEST, ARP_REPLY = 1, 2
ARP_ETHERNET_IPV4 = b"\x00\x01\x08\x00\x06\x04"  # hardware and protocol types, sizes
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
ND_HOP_LIMIT = 255  # RFC 4861: every Neighbor Discovery message
ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR = 1, 2
NA_FLAG_SOLICITED, NA_FLAG_OVERRIDE = 0x40000000, 0x20000000
REPLY_TTL = 64
MAX_DATAGRAM = 65535
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
PLAIN_IPV4 = b"\x08\x00\x45"  # ethertype IPv4, version 4 and a 20-byte header

# Scapy renamed Dot1Q's DEI field from "id" to "dei" after 2.5.0.
DOT1Q_DEI = "dei" if SCAPY_MISSING is None and any(
    f.name == "dei" for f in Dot1Q.fields_desc) else "id"


class Kind(NamedTuple):
    """A kind of request the core answers: one row of KINDS, and one parser
    and builder pair in the byte core."""
    name: str       # in the statistics and the JSON summary
    family: int     # the IP version it serves
    title: str      # in the start-up line
    replies: str    # what a verdict line calls its replies
    resolves: bool  # it asks for an address's MAC: the verdict's evidence
    unicast: str    # how a verdict line names one sent to the tool's MAC


KINDS = {kind.name: kind for kind in (
    Kind("arp", 4, "ARP", "ARP replies", True, "a unicast ARP request"),
    Kind("icmp echo", 4, "ICMP echo", "ICMP echo replies", False, "an ICMP echo request"),
    Kind("ndp", 6, "NDP", "Neighbor Advertisements", True,
         "a unicast Neighbor Solicitation"),
    Kind("icmp6 echo", 6, "ICMPv6 echo", "ICMPv6 echo replies", False,
         "an ICMPv6 echo request"),
)}
RESOLVER = {kind.family: kind for kind in KINDS.values() if kind.resolves}
FAMILY_OF_ETHERTYPE = {ETH_P_ARP: 4, ETH_P_IP: 4, ETH_P_IPV6: 6}


# ---------------------------------------------------------------- framing and scope

@dataclass(frozen=True)
class Framing:
    """How every reply is framed: its 802.1Q tags and padding."""
    vlans: tuple = (0,)       # VLAN IDs, outer first; () sends untagged replies
    prio: int = 0             # PCP of every tag
    dei: bool = False         # Drop Eligible Indicator of every tag
    tpid: int = ETH_P_8021Q   # TPID of the outer tag; inner tags use 0x8100
    pad: bool = True          # to the 60-byte Ethernet minimum, tags counted
    live: bool = True         # the tool's own (not a capture's): a drop's line hints
                              # at a run to compare with

    @property
    def hint(self):
        """What a drop's line ends with: the run to compare with."""
        return " (compare with --untagged)" if self.vlans and self.live else ""

    @cached_property
    def tags(self):
        """The tags' wire bytes (TPID and TCI of each), built with Scapy's
        Dot1Q once and reused for every reply."""
        stack = Ether(dst=DEFAULT_MAC, src=DEFAULT_MAC, type=self.tpid)
        for i, vlan in enumerate(self.vlans):
            inner = ETH_P_8021Q if i + 1 < len(self.vlans) else 0
            stack /= Dot1Q(prio=self.prio, vlan=vlan, type=inner, **{DOT1Q_DEI: self.dei})
        return bytes(stack)[12:12 + VLAN_HLEN * len(self.vlans)]

    @cached_property
    def heads(self):
        """ethertype -> the bytes between the MAC addresses and the payload."""
        return {ethertype: self.tags + ethertype.to_bytes(2, "big")
                for ethertype in (ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, ETH_P_PPP_DISC,
                                  ETH_P_PPP_SES, ETH_P_PAE)}

    def largest_frame(self, mtu):
        """The longest reply frame that leaves whole on a link of `mtu`:
        Linux lets a frame exceed the MTU by one tag, not two, so the tags
        beyond the first come off the room for the IP packet."""
        return ETH_HLEN + VLAN_HLEN + mtu if self.vlans else ETH_HLEN + mtu

    def frame(self, dst, src, ethertype, payload):
        frame = dst + src + self.heads[ethertype] + payload
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
    own: tuple = ()                # packed: the host parts of --ip prefixes (ADDR/LEN)
    # With --dhcp, the addresses leased (address -> MAC, the Leases' own
    # dict): a guest's, which the tool no longer answers for.
    leased: Optional[dict] = field(default=None, compare=False)
    capture = False  # reading a capture (-r): CaptureScope

    @cached_property
    def mac_bytes(self):
        return mac2str(self.mac)

    @cached_property
    def owned(self):
        """The tool's own addresses, given singly (a /32 or /128) or as the
        host part of a prefix: it defends them as their owner would,
        answering ARP probes and DAD for them."""
        return frozenset(net.network_address.packed for net in self.targets
                         if net.num_addresses == 1) | frozenset(self.own)

    def own_address(self, family):
        """The tool's own address of `family` (packed), or None: the source
        of its IPv4 probes, and with --dhcp the server's address."""
        given = list(self.own) + [net.network_address.packed for net in self.targets
                                  if net.num_addresses == 1]
        return next((packed for packed in given if len(packed) == (4 if family == 4 else 16)),
                    None)

    @cached_property
    def link_local(self):
        """The tool's IPv6 link-local address, packed (modified EUI-64)."""
        return ipaddress.IPv6Address(tool_link_local(self.mac)).packed

    def answers_for(self, packed):
        """True if the tool answers for packed IPv4 or IPv6 address `packed`.
        With no --ip, any unicast address but, as a host would, no IPv6
        link-local address other than its own: fe80:: addresses are each
        station's own, so answering for them would claim a neighbour's."""
        if self.leased and packed in self.leased:
            return False
        if self.targets:
            return wants_address(packed, self.targets)
        if len(packed) == 16 and packed[:2] == IN6_LINK_LOCAL_PREFIX:
            return packed == self.link_local
        return _is_unicast(packed)

@dataclass(frozen=True)
class CaptureScope(Scope):
    """Reading a capture (-r): the services stand in for the switch whose
    frames the capture holds; they answer for any unicast address (the
    switch's frames say which it answered), and each awaits the switch's
    answer instead of making its own where that needs the tool's own state
    (a lease, a cookie, a transfer)."""
    capture = True

    def answers_for(self, packed):
        return _is_unicast(packed)


def tool_link_local(mac):
    """The tool's own IPv6 link-local address (modified EUI-64 of its MAC)."""
    return str(ipaddress.IPv6Address("fe80::" + in6_mactoifaceid(mac)))

def _address_text(packed):
    """A packed IPv4 or IPv6 address as text."""
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)

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


# ---------------------------------------------------------------- the byte core
#
# The core works on the frame's bytes, not on dissected Scapy packets: at
# flood rates Scapy's per-packet dissection and building would be the
# ceiling (tests/figures/README.rst, Benchmark). answer_at() picks the kind
# of request by ethertype and ICMPv6 type; each kind has a parser ("is this
# a request?": the fields a reply needs, or None) and a builder ("make the
# reply": bytes). They read no globals and touch no system state; the tests
# check every reply field against Scapy's dissection. plain_echo_replier,
# last, is a shortcut to the same bytes for the usual echo request, checked
# against answer_at() on every test frame. Replies, the first service, is
# what puts this core behind the services' contract.

def ethertype_and_offset(frame):
    """The frame's ethertype and where its payload starts, looking past any
    VLAN tags (a tagged request is answered like an untagged one)."""
    offset = 12
    while len(frame) >= offset + 2:
        ethertype = frame[offset] << 8 | frame[offset + 1]
        if ethertype not in VLAN_TPIDS:
            return ethertype, offset + 2
        offset += VLAN_HLEN
    return None, None

def checksum(data):
    """The Internet checksum (RFC 1071) of `data`, what Scapy's checksum()
    returns, in one big-integer operation (2^16 = 1 modulo 0xFFFF): three are
    on an echo request's path, where Scapy's take longer in a process the
    request has just woken (tests/figures/benchmark.py, per call)."""
    value = int.from_bytes(data, "big") << 8 * (len(data) & 1)
    return 0xFFFF - (value % 0xFFFF or (0xFFFF if value else 0))

def ipv4_header_length(frame, offset):
    """The IPv4 header length of the packet at `offset`, if it is a whole,
    checksum-valid IPv4 packet; else None."""
    if len(frame) < offset + IPV4_HLEN:
        return None
    header_len = (frame[offset] & 0x0F) * 4
    total = frame[offset + 2] << 8 | frame[offset + 3]
    if (frame[offset] >> 4 != 4 or header_len < IPV4_HLEN or total < header_len
            or len(frame) < offset + total
            or checksum(frame[offset:offset + header_len]) != 0):
        return None
    return header_len


class Answer(NamedTuple):
    """What a service makes of a frame it takes (Service.answer)."""
    kind: str        # what the statistics count it as: a name in KINDS, "dhcp";
                     # with no reply, what it is ("an answer to a probe")
    request: tuple   # the parsed request (ArpRequest, EchoRequest, DhcpExchange,
                     # RouterSolicitation...); None from plain_echo_replier's
    reply: Optional[bytes]  # the reply frame, whole; None: nothing to send (an
                            # answer to what the service sent itself); RECORDED:
                            # reading a capture, the switch's (Service.answered_by)


RECORDED = b""  # a reply that reading a capture (-r) finds among the switch's frames

def reply_to(frame, scope, framing):
    """The core's Answer to `frame` (bytes, as received, tagged or not) if
    it is a request the tool answers, else None: answer_at() for a frame
    whose offsets are not known yet (the tests' way in; the loop knows them)."""
    ethertype, offset = ethertype_and_offset(frame)
    return answer_at(frame, ethertype, offset, scope, framing)

def answer_at(frame, ethertype, offset, scope, framing):
    """The Answer to `frame` if it is a request of a kind in KINDS that the
    tool answers within `scope`, framed by `framing`; else None. The
    frame's ethertype and payload offset are known."""
    if len(frame) < ETH_HLEN or frame[6:12] == scope.mac_bytes or frame[6] & 1:
        return None  # our own frame, or a multicast source
    families, mac = scope.families, scope.mac_bytes
    if ethertype == ETH_P_IP and 4 in families:
        request = parse_echo_request(frame, offset, scope)
        return request and Answer("icmp echo", request, echo_reply(request, mac, framing))
    if ethertype == ETH_P_ARP and 4 in families:
        request = parse_arp_request(frame, offset, scope)
        return request and Answer("arp", request, arp_reply(request, mac, framing))
    if ethertype == ETH_P_IPV6 and 6 in families:
        message = _icmpv6_message(frame, offset)
        if message is None:
            return None
        if message[0] == ICMPV6_ECHO_REQUEST:
            request = parse_echo6_request(frame, offset, message, scope)
            return request and Answer("icmp6 echo", request,
                                      echo6_reply(request, mac, framing))
        if message[0] == ND_NEIGHBOR_SOLICIT:
            request = parse_neighbor_solicitation(frame, offset, message, scope)
            return request and Answer("ndp", request,
                                      neighbor_advertisement(request, mac, framing))
    return None

@lru_cache(maxsize=4096)  # a switch's frame, held against each waiting ask's reply (-r)
def reply_signature(frame):
    """What pairs a reply with its request, in bytes: the destination MAC,
    the ethertype and, by protocol, the ARP operation and addresses, the
    ICMP or ICMPv6 type, identifier and sequence number (and the source), a
    Neighbor Advertisement's target; None for anything else. Reading a
    capture, a switch's frame answers an ask if it has the signature of the
    reply the tool would have sent (Service.answered_by)."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype is None or len(frame) < ETH_HLEN:
        return None
    head = (frame[:6], ethertype)
    if ethertype == ETH_P_ARP:
        arp = frame[offset:offset + 28]
        return head + (arp[6:8], arp[14:18], arp[24:28]) if len(arp) == 28 else None
    if ethertype == ETH_P_IP:
        header_len = ipv4_header_length(frame, offset)
        if header_len is None or frame[offset + 9] != IPPROTO_ICMP:
            return None
        message = frame[offset + header_len:offset + header_len + ICMP_HLEN]
        return head + (frame[offset + 12:offset + 16], message[:2], message[4:8])
    if ethertype == ETH_P_IPV6:
        message = _icmpv6_message(frame, offset)
        if message is None:
            return None
        if message[0] == ND_NEIGHBOR_ADVERT:
            return head + (message[:1], message[8:24])
        return head + (frame[offset + 8:offset + 24], message[:2], message[4:8])
    return None


class ArpRequest(NamedTuple):
    requester: bytes     # Ethernet source of the request
    source_mac: bytes    # the ARP sender's hardware address
    source: bytes        # the ARP sender's IPv4 address, packed (0.0.0.0: a probe)
    target: bytes        # the address asked for, packed

    @property
    def probe(self):
        """An RFC 5227 probe: is anyone using target?"""
        return self.source == IPV4_ANY

def parse_arp_request(frame, offset, scope):
    """An ARP who-has, to broadcast or to us, for an address we answer for.
    Not gratuitous ARP (sender = target), and a probe (sender 0.0.0.0, RFC
    5227) only for an address the tool owns (Scope.owned)."""
    arp = frame[offset:offset + 28]
    if (len(arp) < 28 or arp[:6] != ARP_ETHERNET_IPV4 or arp[7] != ARP_REQUEST
            or arp[6] != 0 or frame[:6] not in (BROADCAST_MAC_BYTES, scope.mac_bytes)):
        return None
    source_mac, source, target = arp[8:14], arp[14:18], arp[24:28]
    if source_mac == scope.mac_bytes or source_mac[0] & 1 or source == target:
        return None
    if source == IPV4_ANY:
        if target not in scope.owned:
            return None
    elif not _is_unicast(source) or not scope.answers_for(target):
        return None
    return ArpRequest(frame[6:12], source_mac, source, target)

def arp_reply(request, mac, framing):
    """The ARP is-at: `mac` owns the requested address. To a probe, as the
    kernel answers one, the target protocol address is 0.0.0.0."""
    body = (ARP_ETHERNET_IPV4 + ARP_REPLY.to_bytes(2, "big") + mac + request.target
            + request.source_mac + request.source)
    return framing.frame(request.requester, mac, ETH_P_ARP, body)

class EchoRequest(NamedTuple):
    requester: bytes     # Ethernet source of the request
    source: bytes        # IP source, packed (4 or 16 bytes)
    destination: bytes   # IP destination, packed (for IPv6: maybe a group)
    reply_source: bytes  # the reply's IP source: the destination, if unicast
    traffic_class: int   # IPv4 TOS or IPv6 traffic class, echoed back
    ident: int           # IPv4 identification (0 for IPv6)
    message: bytes       # the whole ICMP/ICMPv6 echo request message

def parse_echo_request(frame, offset, scope):
    """A whole, unfragmented, checksum-valid ICMP echo request sent to our
    MAC, from a unicast address, to an address we answer for."""
    if frame[:6] != scope.mac_bytes:
        return None
    header_len = ipv4_header_length(frame, offset)
    if header_len is None:
        return None
    _, tos, total, ident, fragment_bits, _, protocol, _, source, destination = (
        IPV4_HEADER.unpack_from(frame, offset))
    message = frame[offset + header_len:offset + total]  # Ethernet padding cut off
    if (protocol != IPPROTO_ICMP or fragment_bits & IP_FRAGMENT_BITS
            or len(message) < ICMP_HLEN or message[0] != ICMP_ECHO_REQUEST
            or message[1] != 0 or checksum(message) != 0 or not _is_unicast(source)
            or not scope.answers_for(destination)):
        return None
    return EchoRequest(frame[6:12], source, destination, destination, tos, ident, message)

def echo_reply(request, mac, framing):
    """The ICMP echo reply: the request's identifier, sequence and data,
    addresses swapped, TTL 64, the request's TOS and IP ID, no options."""
    message = request.message
    header = IPV4_HEADER.pack(0x45, request.traffic_class, IPV4_HLEN + len(message),
                              request.ident, 0, REPLY_TTL, IPPROTO_ICMP, 0,
                              request.reply_source, request.source)
    return framing.frame(request.requester, mac, ETH_P_IP, header[:10]
                         + checksum(header).to_bytes(2, "big") + header[12:]
                         + _echo_reply_message(message))

def _echo_reply_message(request):
    """The echo request message turned into the reply: type 0, and the
    checksum patched for it (RFC 1624, eqn. 3) rather than summed again."""
    # HC' = ~(~HC + ~m + m'), m and m' the first word before and after.
    patched = ((~(request[2] << 8 | request[3]) & 0xFFFF)
               + (~(ICMP_ECHO_REQUEST << 8) & 0xFFFF) + (ICMP_ECHO_REPLY << 8))
    patched = (patched & 0xFFFF) + (patched >> 16)
    patched = ~((patched & 0xFFFF) + (patched >> 16)) & 0xFFFF
    if patched == 0 and not any(request[4:]):
        patched = 0xFFFF  # all zeros sum to +0, whose complement is 0xFFFF
    return bytes([ICMP_ECHO_REPLY, 0]) + patched.to_bytes(2, "big") + request[4:]

def _icmpv6_message(frame, offset):
    """The ICMPv6 message of the IPv6 packet at `offset`, directly after the
    IPv6 header or after a Hop-by-Hop header; None if there is none, the
    packet is truncated or the checksum is wrong."""
    if len(frame) < offset + IPV6_HLEN:
        return None
    payload_len = frame[offset + 4] << 8 | frame[offset + 5]
    packet = frame[offset:offset + IPV6_HLEN + payload_len]
    if payload_len == 0 or len(packet) < IPV6_HLEN + payload_len:
        return None
    next_header, start = packet[6], IPV6_HLEN
    if next_header == IPPROTO_HOPOPTS:
        if len(packet) < IPV6_HLEN + 8:
            return None
        next_header, start = packet[IPV6_HLEN], IPV6_HLEN + (packet[IPV6_HLEN + 1] + 1) * 8
    message = packet[start:]
    if (next_header != IPPROTO_ICMPV6 or len(message) < ICMP_HLEN
            or _icmpv6_checksum(packet[8:24], packet[24:40], message) != 0):
        return None
    return message

def _icmpv6_checksum(source, destination, message):
    pseudo_header = source + destination + struct.pack("!I3xB", len(message),
                                                        IPPROTO_ICMPV6)
    return checksum(pseudo_header + message)

def _ipv6_header(traffic_class, payload_len, hop_limit, source, destination):
    return struct.pack("!IHBB16s16s", 6 << 28 | traffic_class << 20, payload_len,
                       IPPROTO_ICMPV6, hop_limit, source, destination)

class NeighborSolicitation(NamedTuple):
    requester: bytes     # Ethernet source of the solicitation
    source: bytes        # IPv6 source, packed (:: for DAD)
    target: bytes        # the address asked for, packed
    owned: bool          # the tool owns target (a single --ip): it overrides

    @property
    def probe(self):
        """Duplicate Address Detection: is anyone using target?"""
        return self.source == IN6_UNSPECIFIED

def _options(options):
    """The ND options' types, or None if one has length 0 or does not fit
    (RFC 4861 7.1.1)."""
    types = []
    while options:
        if len(options) < 2 or options[1] == 0 or options[1] * 8 > len(options):
            return None
        types.append(options[0])
        options = options[options[1] * 8:]
    return types

def _multicast_mac(address):
    """The Ethernet group address of packed IPv6 multicast `address`."""
    return mac2str(in6_getnsmac(address))

def parse_neighbor_solicitation(frame, offset, message, scope):
    """A valid Neighbor Solicitation (RFC 4861 7.1.1) for an address we
    answer for. DAD (source ::) only for an address the tool owns
    (Scope.owned): answering it for others would make every guest believe
    its own address is a duplicate."""
    if len(message) < 24 or message[1] != 0 or frame[offset + 7] != ND_HOP_LIMIT:
        return None
    source, destination = frame[offset + 8:offset + 24], frame[offset + 24:offset + 40]
    target, options = message[8:24], _options(message[24:])
    if options is None or not scope.answers_for(target):
        return None
    solicited_node = in6_getnsma(target)
    to_group = (destination, frame[:6]) == (solicited_node, _multicast_mac(solicited_node))
    if source == IN6_UNSPECIFIED:  # DAD: to the group, no source address option
        if target not in scope.owned or not to_group or ND_OPT_SOURCE_LLADDR in options:
            return None
    elif not _is_unicast(source):
        return None
    if not to_group and (destination, frame[:6]) != (target, scope.mac_bytes):
        return None
    return NeighborSolicitation(frame[6:12], source, target, target in scope.owned)

def neighbor_advertisement(request, mac, framing):
    """The Neighbor Advertisement: the target is at `mac` (Router clear, a
    Target Link-Layer Address option), hop limit 255. To the soliciter with
    Solicited set, or, for DAD, to all nodes without it (RFC 4861 7.2.4).
    Override is set only for an address the tool owns: for any other it
    answers as a proxy, whose advertisement must not override the real
    owner's entry in the soliciter's cache (RFC 4861 7.2.4, 7.2.5)."""
    override = NA_FLAG_OVERRIDE if request.owned else 0
    if request.probe:
        flags, destination, ether_dst = override, IN6_ALL_NODES, \
            _multicast_mac(IN6_ALL_NODES)
    else:
        flags, destination, ether_dst = (NA_FLAG_SOLICITED | override,
                                         request.source, request.requester)
    message = bytearray(struct.pack("!BBHI16sBB6s", ND_NEIGHBOR_ADVERT, 0, 0, flags,
                                    request.target, ND_OPT_TARGET_LLADDR, 1, mac))
    message[2:4] = _icmpv6_checksum(request.target, destination, message).to_bytes(2, "big")
    header = _ipv6_header(0, len(message), ND_HOP_LIMIT, request.target, destination)
    return framing.frame(ether_dst, mac, ETH_P_IPV6, header + bytes(message))

def parse_echo6_request(frame, offset, message, scope):
    """A well-formed ICMPv6 echo request from a unicast address, sent to our
    MAC for an address we answer for (or, if asked, to a multicast group)."""
    source, destination = frame[offset + 8:offset + 24], frame[offset + 24:offset + 40]
    if message[1] != 0 or not _is_unicast(source):
        return None
    if destination[0] == 0xFF:
        if not scope.multicast_ping6 or frame[:6] != _multicast_mac(destination):
            return None
        reply_source = scope.link_local  # RFC 4443 4.2: a unicast source
    elif frame[:6] != scope.mac_bytes or not scope.answers_for(destination):
        return None
    else:
        reply_source = destination
    traffic_class = (frame[offset] << 8 | frame[offset + 1]) >> 4 & 0xFF
    return EchoRequest(frame[6:12], source, destination, reply_source, traffic_class, 0,
                       message)

def echo6_reply(request, mac, framing):
    """The ICMPv6 echo reply: the request's identifier, sequence and data,
    addresses swapped, hop limit 64, the request's traffic class."""
    message = bytearray(request.message)
    message[0], message[2:4] = ICMPV6_ECHO_REPLY, b"\x00\x00"
    message[2:4] = _icmpv6_checksum(request.reply_source, request.source,
                                    message).to_bytes(2, "big")
    header = _ipv6_header(request.traffic_class, len(message), REPLY_TTL,
                          request.reply_source, request.source)
    return framing.frame(request.requester, mac, ETH_P_IPV6, header + bytes(message))

def fit_to_mtu(reply, mtu, framing):
    """`reply` as a list of frames none of whose IP packets exceeds `mtu`
    (less 4 bytes per tag beyond the first): an IPv4 echo reply cut into
    fragments (RFC 791), an IPv6 one given Fragment headers (RFC 8200 4.5),
    each framed anew. In bytes, as the rest of the core: a guest's 64 KB
    pings cost slices and a header each, not Scapy's layers."""
    if len(reply) <= framing.largest_frame(mtu):  # the usual case: it fits, padding and all
        return [reply]
    start = ETH_HLEN + len(framing.tags)
    budget = framing.largest_frame(mtu) - start  # for each IP packet
    ethertype = int.from_bytes(reply[start - 2:start], "big")
    if ethertype == ETH_P_IP:
        pieces = _ipv4_fragments(reply[start:], budget)
    elif ethertype == ETH_P_IPV6:
        pieces = _ipv6_fragments(reply[start:], budget)
    else:
        return [reply]
    return [framing.frame(reply[:6], reply[6:12], ethertype, piece) for piece in pieces]

def _ipv4_fragments(packet, budget):
    """IPv4 `packet` (its header without options, as the core builds one)
    in fragments of at most `budget` bytes: the header copied, with its
    length, offset, more-fragments bit and checksum each its own."""
    header_len = (packet[0] & 0x0F) * 4
    total = packet[2] << 8 | packet[3]
    header, data = packet[:header_len], packet[header_len:total]
    step = (budget - header_len) // 8 * 8
    pieces = []
    for at in range(0, len(data), step):
        chunk = data[at:at + step]
        head = bytearray(header)
        head[2:4] = (header_len + len(chunk)).to_bytes(2, "big")
        more = IP_MORE_FRAGMENTS if at + step < len(data) else 0
        head[6:8] = (more | at // 8).to_bytes(2, "big")
        head[10:12] = b"\x00\x00"
        head[10:12] = checksum(head).to_bytes(2, "big")
        pieces.append(bytes(head) + chunk)
    return pieces

def _ipv6_fragments(packet, budget):
    """IPv6 `packet` (an ICMPv6 message right after the header, as the core
    builds one) in fragments of at most `budget` bytes, each the header and
    a Fragment header (RFC 8200 4.5) with one random identification."""
    header, data = packet[:IPV6_HLEN], packet[IPV6_HLEN:]
    next_header, ident = header[6], random.getrandbits(32)
    step = (budget - IPV6_HLEN - IPV6_FRAG_HLEN) // 8 * 8
    pieces = []
    for at in range(0, len(data), step):
        chunk = data[at:at + step]
        head = bytearray(header)
        head[4:6] = (IPV6_FRAG_HLEN + len(chunk)).to_bytes(2, "big")
        head[6] = IPPROTO_FRAGMENT
        more = IPV6_MORE_FRAGMENTS if at + step < len(data) else 0
        fragment_header = struct.pack("!BBHI", next_header, 0, at | more, ident)
        pieces.append(bytes(head) + fragment_header + chunk)
    return pieces

def plain_echo_replier(scope, framing):
    """A function that takes a frame and returns reply_to(frame, scope,
    framing).reply, or None, in one step for the usual request: an untagged,
    unfragmented ICMP echo request with a bare 20-byte header, sent to the
    tool's MAC; None for anything else, which reply_to then decides. None
    instead of a function when the scope does not answer every IPv4
    address. It exists because a request wakes a sleeping process in which
    every function, object and page touched then costs cache and TLB misses:
    with it and a blocking receive, the idle round trip went from 1.53 to
    1.22 times the bare Python loop's (tests/figures/benchmark.py).
    tests/offline/test_core.py checks that both ways give the same bytes."""
    if scope.targets or 4 not in scope.families:
        return None
    mac, head = scope.mac_bytes, framing.heads[ETH_P_IP]
    short = ETH_ZLEN if framing.pad else 0  # a reply shorter than this is padded
    ttl_protocol = REPLY_TTL << 8 | IPPROTO_ICMP
    flags_ttl_protocol = bytes(2) + ttl_protocol.to_bytes(2, "big")  # no fragment bits

    def plain_echo_reply(frame):
        if (len(frame) < ETH_HLEN + IPV4_HLEN + ICMP_HLEN or frame[:6] != mac
                or frame[6:12] == mac or frame[6] & 1 or frame[12:15] != PLAIN_IPV4
                or frame[23] != IPPROTO_ICMP or frame[34] != ICMP_ECHO_REQUEST or frame[35]
                or (frame[20] << 8 | frame[21]) & IP_FRAGMENT_BITS):
            return None
        total = frame[16] << 8 | frame[17]
        message = frame[ETH_HLEN + IPV4_HLEN:ETH_HLEN + total]
        if (len(frame) < ETH_HLEN + total or len(message) < ICMP_HLEN
                or not 0 < frame[26] < 224 or frame[26] == 127     # _is_unicast(source)
                or not 0 < frame[30] < 224 or frame[30] == 127     # and destination
                or checksum(frame[ETH_HLEN:ETH_HLEN + IPV4_HLEN]) or checksum(message)):
            return None
        # The request's header with the flags word and the TTL changed and the
        # addresses swapped, its checksum patched for the two words (RFC 1624,
        # eqn. 3): the very sum, as every term is positive, in fewer steps.
        patched = ((~(frame[24] << 8 | frame[25]) & 0xFFFF)
                   + (~(frame[20] << 8 | frame[21]) & 0xFFFF)
                   + (~(frame[22] << 8 | IPPROTO_ICMP) & 0xFFFF) + ttl_protocol)
        patched = (patched & 0xFFFF) + (patched >> 16)
        patched = ~((patched & 0xFFFF) + (patched >> 16)) & 0xFFFF
        reply = (frame[6:12] + mac + head + frame[14:20] + flags_ttl_protocol
                 + patched.to_bytes(2, "big") + frame[30:34] + frame[26:30]
                 + _echo_reply_message(message))
        return reply if len(reply) >= short else reply + bytes(short - len(reply))
    return plain_echo_reply


# ---------------------------------------------------------------- reassembly

class Fragment(NamedTuple):
    """One fragment of an ICMP or ICMPv6 datagram."""
    key: tuple       # which datagram: interface, family, addresses, identification
    offset: int      # of its data in the datagram
    more: bool       # more fragments follow
    data: bytes
    first: tuple     # (frame head, IP header, family) of the offset-0 fragment, else None


def maybe_fragment(frame, ethertype, offset):
    """A quick look: could `frame` be an IPv4 or IPv6 fragment?"""
    if ethertype == ETH_P_IP:
        return len(frame) >= offset + IPV4_HLEN and bool(
            (frame[offset + 6] << 8 | frame[offset + 7]) & IP_FRAGMENT_BITS)
    return (ethertype == ETH_P_IPV6 and len(frame) > offset + 6
            and frame[offset + 6] == IPPROTO_FRAGMENT)


def fragment_of(frame, ethertype, offset, interface=""):
    """The Fragment that `frame` is, or None for anything else (which the
    core then takes as it is)."""
    if ethertype == ETH_P_IP:
        if (len(frame) < offset + IPV4_HLEN
                or not (frame[offset + 6] << 8 | frame[offset + 7]) & IP_FRAGMENT_BITS):
            return None
        header_len = ipv4_header_length(frame, offset)
        if header_len is None or frame[offset + 9] != IPPROTO_ICMP:
            return None
        total = frame[offset + 2] << 8 | frame[offset + 3]
        bits = frame[offset + 6] << 8 | frame[offset + 7]
        data_offset = (bits & IP_OFFSET_BITS) * 8
        key = (interface, 4, frame[offset + 12:offset + 20], frame[offset + 4:offset + 6])
        first = ((frame[:offset], frame[offset:offset + header_len], 4)
                 if data_offset == 0 else None)
        return Fragment(key, data_offset, bool(bits & IP_MORE_FRAGMENTS),
                        frame[offset + header_len:offset + total], first)
    if ethertype == ETH_P_IPV6:
        if len(frame) < offset + IPV6_HLEN or frame[offset + 6] != IPPROTO_FRAGMENT:
            return None
        start = offset + IPV6_HLEN
        payload_len = frame[offset + 4] << 8 | frame[offset + 5]
        if (len(frame) < start + IPV6_FRAG_HLEN or frame[start] != IPPROTO_ICMPV6
                or payload_len < IPV6_FRAG_HLEN or len(frame) < start + payload_len):
            return None
        bits = frame[start + 2] << 8 | frame[start + 3]
        data_offset = bits & IPV6_OFFSET_BITS
        key = (interface, 6, frame[offset + 8:offset + 40], frame[start + 4:start + 8])
        header = (frame[offset:offset + 6] + bytes([IPPROTO_ICMPV6])
                  + frame[offset + 7:start])
        first = (frame[:offset], header, 6) if data_offset == 0 else None
        return Fragment(key, data_offset, bool(bits & IPV6_MORE_FRAGMENTS),
                        frame[start + IPV6_FRAG_HLEN:start + payload_len], first)
    return None


class Reassembler:
    """Reassembles fragmented echo requests, within bounds: at most
    `max_datagrams` in flight and `max_bytes` held in all (the oldest are
    dropped first), each complete within `timeout` seconds and in at most
    MAX_PIECES fragments. A datagram whose fragments overlap or that would
    exceed 65,535 bytes is dropped, as the kernel drops it; an exact
    duplicate fragment is ignored. The work per fragment does not grow with
    the fragments held (a guest's flood of tiny ones must not starve the
    others). Time is passed in, so this stays testable."""

    def __init__(self, max_datagrams=64, max_bytes=1 << 20, timeout=10.0):
        self.max_datagrams, self.max_bytes, self.timeout = max_datagrams, max_bytes, timeout
        self.pending = {}  # key -> _Datagram, oldest first
        self.held = 0      # bytes of fragment data held
        self.reassembled = self.dropped = 0

    def add(self, piece, now):
        """The reassembled frame (Ethernet header of the first fragment) once
        `piece` completes its datagram, else None (pieces missing, or the
        datagram dropped)."""
        self._expire(now)
        datagram = self.pending.get(piece.key)
        if datagram is None:
            datagram = self.pending[piece.key] = _Datagram(now)
        outcome = datagram.add(piece)
        if outcome == "drop":
            self._drop(piece.key)
            return None
        if outcome == "added":
            self.held += len(piece.data)
            self._enforce_bounds()
        if piece.key in self.pending and datagram.complete():
            whole = datagram.assemble()
            if whole is None:  # its headers and data exceed 65,535 bytes
                self._drop(piece.key)
                return None
            del self.pending[piece.key]
            self.held -= datagram.size
            self.reassembled += 1
            return whole
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


MAX_PIECES = 256  # fragments per datagram: the largest ping over a 296-byte MTU


class _Datagram:
    """The fragments of one datagram received so far, kept in offset order,
    so that a new one is checked against its two neighbours only."""

    def __init__(self, started):
        self.started = started
        self.offsets = []    # sorted
        self.pieces = {}     # offset -> data
        self.end = None      # total data length, once the last fragment is in
        self.first = None    # Fragment.first of the offset-0 fragment
        self.size = 0

    def add(self, piece):
        """'added', 'duplicate' or 'drop' (overlap, oversize, inconsistency,
        too many fragments)."""
        offset, data = piece.offset, piece.data
        end = offset + len(data)
        if self.pieces.get(offset) == data and (piece.more or self.end == end):
            return "duplicate"
        if (end > MAX_DATAGRAM or (piece.more and len(data) % 8) or not data
                or (not piece.more and self.end not in (None, end))
                or (self.end is not None and end > self.end)
                or len(self.offsets) >= MAX_PIECES):
            return "drop"
        at = bisect.bisect_left(self.offsets, offset)
        before = self.offsets[at - 1] if at else None
        if ((before is not None and before + len(self.pieces[before]) > offset)
                or (at < len(self.offsets) and self.offsets[at] < end)):
            return "drop"  # overlaps a neighbour
        if not piece.more:
            self.end = end
        if piece.first is not None:
            self.first = piece.first
        self.offsets.insert(at, offset)
        self.pieces[offset] = data
        self.size += len(data)
        return "added"

    def complete(self):
        return self.end is not None and self.first is not None and self.size == self.end

    def assemble(self):
        """The whole datagram's frame, or None if an IPv4 one would not fit
        the 16-bit total length (header and data; kernel: "Oversized IP
        packet")."""
        head, header, family = self.first
        data = b"".join(self.pieces[o] for o in self.offsets)
        header = bytearray(header)
        if family == 4:
            if len(header) + len(data) > MAX_DATAGRAM:
                return None
            header[2:4] = (len(header) + len(data)).to_bytes(2, "big")
            header[6:8] = header[10:12] = b"\x00\x00"
            header[10:12] = checksum(header).to_bytes(2, "big")
        else:  # the Fragment header's next header is already in place of 44;
            header[4:6] = len(data).to_bytes(2, "big")  # data: at most 65,535
        return head + bytes(header) + data


# ---------------------------------------------------------------- the services' contract
#
# Everything that answers or judges a guest is a Service: the core's replies
# (Replies), the probe (Prober), DHCP (DhcpServer) and Router Advertisements
# (Advertiser), each in a section of its own below, as dnsmasq keeps one
# protocol per source file. The loop holds them in a list (services_from):
# it offers a frame to each in turn (answer_with), sends the reply of the
# first that answers, then shows the exchange to them all (observe_with) and
# prints the verdicts that formed; it asks each what it has to send unasked
# (send_due). It knows none of them by name. What one service tells another
# (a probe answered, an address leased) goes through Events.
#
# A judge gives each guest one of these verdicts, or None while the evidence
# says nothing yet; a drop anywhere is exit status 3, anything short of
# ACCEPTS or ANSWERS everywhere is 4 (overall_status).

ACCEPTS, DROPS = "accepts", "drops"   # the guest took, or dropped, the answers
ANSWERS = "answers"                   # --probe: it answered the tagged requests
NO_ANSWER = "no answer"               # --probe: nothing answered, tagged or not
UNCLEAR = "unclear"                   # --probe: two stations answered in turn
NO_VERDICT = "no verdict"             # the guest's silence says nothing: the reason why
COPES = (ACCEPTS, ANSWERS)            # the verdicts of a guest that copes

ASKS_FOR_DROPS = 3   # an answered ask, then two more in the run: it drops
EVIDENCE_KEPT = 32   # events per guest kept for the JSON summary
NAMED_IN_A_LINE = 3  # addresses (or guests) a line names before "and N more"
GUESTS_KEPT = 4096   # records a judge keeps in all (Book)
GUESTS_PER_INTERFACE = 256  # records a judge keeps of one interface's guests
LONGEST_WAIT = 3600  # seconds: "nothing due", the longest the loop waits


class Exchange(NamedTuple):
    """One frame received and what the tool did with it: what every
    service observes."""
    link: "Link"
    received: bytes             # as received (a fragment: the last one)
    stamp: float                # when it was received
    whole: bytes                # the request, reassembled if it came in fragments
    ethertype: int
    answer: Optional[Answer]    # None: ignored
    frames: tuple               # the reply's frames, as sent; () for none
    sent_at: Optional[float]    # when they were sent
    by: Optional["Service"] = None  # whose answer (None: the plain echo path's)

    @property
    def replied(self):
        """A reply went out (not ignored, nor taken without a reply)."""
        return self.answer is not None and self.answer.reply is not None


class Asks:
    """The rule every judge shares: a run of answered asks (an ARP request,
    a DHCPDISCOVER, a Router Solicitation...), each within `window` seconds
    of the one before, with nothing between that shows an answer arrived.
    ASKS_FOR_DROPS of them: the guest drops the answers."""

    __slots__ = ("window", "first", "last", "count")

    def __init__(self, window):
        self.window, self.first, self.last, self.count = window, 0.0, 0.0, 0

    def add(self, now):
        """One more answered ask, at `now`; True if the run is a drop."""
        if self.count and now - self.last <= self.window:
            self.last, self.count = now, self.count + 1
        else:
            self.first, self.last, self.count = now, now, 1
        return self.count >= ASKS_FOR_DROPS

    def clear(self):
        """An answer arrived: the run is over."""
        self.count = 0

    @property
    def span(self):
        return self.last - self.first


class Book:
    """Whom a judge keeps a record of. A record, once made, stays: a
    verdict formed is never forgotten, so that no flood of made-up guests
    erases one (a "drops" least of all). Room is shared fairly: at most
    GUESTS_PER_INTERFACE records an interface, GUESTS_KEPT in all, so that
    one interface's flood cannot take another's. A guest beyond them is
    counted, not tracked, and the exit status says so (no verdict for it)."""

    def __init__(self):
        self.kept = 0
        self.per_interface = {}  # interface -> records kept
        self.not_tracked = {}    # key -> None: guests turned away, up to GUESTS_KEPT
        self.more_not_tracked = 0  # beyond those

    def has_room(self, interface):
        return self.kept < GUESTS_KEPT and \
            self.per_interface.get(interface, 0) < GUESTS_PER_INTERFACE

    def admit(self, interface, key=None):
        """True, and one more record on `interface`, if there is room; else
        False, and `key` (the guest) counted as not tracked."""
        if self.has_room(interface):
            self.kept += 1
            self.per_interface[interface] = self.per_interface.get(interface, 0) + 1
            return True
        key = key or interface
        if key not in self.not_tracked:
            if len(self.not_tracked) < GUESTS_KEPT:
                self.not_tracked[key] = None
            else:
                self.more_not_tracked += 1
        return False

    @property
    def untracked(self):
        return len(self.not_tracked) + self.more_not_tracked

    def by_interface(self):
        """interface -> guests not tracked on it (those named)."""
        counts = {}
        for key in self.not_tracked:
            interface = key[0] if isinstance(key, tuple) else key
            counts[interface] = counts.get(interface, 0) + 1
        return counts

    def lines(self, what):
        if not self.untracked:
            return []
        where = ", ".join(f"{count:,} on {interface}"
                          for interface, count in self.by_interface().items())
        more = f" and {self.more_not_tracked:,} more" if self.more_not_tracked else ""
        return [f"{what} not tracked: {where}{more} (at most {GUESTS_PER_INTERFACE:,} an "
                f"interface, {GUESTS_KEPT:,} in all): no verdict for them"]

    def why(self, what):
        lines = self.lines(what)
        return lines[0] if lines else None


def remember(mapping, key, value, limit=GUESTS_KEPT):
    """mapping[key] = value, the newest entry; past `limit` entries the
    oldest makes way: a bounded record of the latest, where nothing judged
    is lost by forgetting (what a verdict rests on is in a Book)."""
    mapping.pop(key, None)
    if len(mapping) >= limit:
        del mapping[next(iter(mapping))]
    mapping[key] = value


def from_a_station(frame, scope):
    """`frame` comes from a station that may be answered: its Ethernet
    source is unicast and not the tool's own (the rule of every reply)."""
    return len(frame) >= ETH_HLEN and not frame[6] & 1 and frame[6:12] != scope.mac_bytes


class Budget:
    """What one interface may make a cold path (Scapy's dissection and
    building) cost: a burst of `burst` frames, then `rate` a second, on the
    frames' clock (a token bucket per interface). A guest's flood is then
    refused after a cheap look, and the other interfaces keep theirs."""

    def __init__(self, burst, rate):
        self.burst, self.rate = burst, rate
        self.buckets = {}  # interface -> [tokens, when last filled]
        self.over = {}     # interface -> frames refused

    def take(self, interface, now):
        """True if `interface` may spend one now."""
        bucket = self.buckets.get(interface)
        if bucket is None:
            if len(self.buckets) >= GUESTS_KEPT:  # interfaces long gone go first
                del self.buckets[next(iter(self.buckets))]
            bucket = self.buckets[interface] = [float(self.burst), now]
        tokens = min(self.burst, bucket[0] + max(0.0, now - bucket[1]) * self.rate)
        bucket[1] = max(bucket[1], now)
        if tokens < 1:
            bucket[0] = tokens
            if interface in self.over or len(self.over) < GUESTS_KEPT:
                self.over[interface] = self.over.get(interface, 0) + 1
            return False
        bucket[0] = tokens - 1
        return True


def _some(names, more):
    """The first few of `names`, and how many more there are (and `more`)."""
    more += max(0, len(names) - NAMED_IN_A_LINE)
    text = ", ".join(names[:NAMED_IN_A_LINE])
    return f"{text} and {more:,} more" if more else text


# What services tell each other, published in their observe(); the
# subscriber's handler takes the arguments named.
ASKED = "asked"            # (interface, ArpRequest or NeighborSolicitation, now): an
                           # ask the replies answered (not a probe or DAD)
LEASED = "leased"          # (interface, address, server, now, mac, stage, boot file):
                           # a DHCPACK to a REQUEST (the boot file named, or None)
PROBE_ANSWERED = "probe answered"  # (interface, mac, family, now): a guest answered
                                   # a tagged probe
HEARD = "heard"            # (interface, mac, now): a judge of every guest made a record


class Events:
    """The services' one channel to each other: a service subscribes to an
    event by name in its constructor; another publishes it. The loop knows
    neither."""

    def __init__(self):
        self.handlers = {}
        self.framings = {}  # (interface, MAC) -> OwnFraming: what Framings saw

    def subscribe(self, name, handler):
        self.handlers.setdefault(name, []).append(handler)

    def publish(self, name, *args):
        for handler in self.handlers.get(name, ()):
            handler(*args)


class Service:
    """The contract of everything that answers and judges; each method
    here is what a service that does not need it does.

    Answering, as Scapy's AnsweringMachine (is_request, make_reply; the
    loop sends): answer() takes a frame or leaves it to the next service.
    Judging: observe() takes every exchange as evidence and returns the
    records (a Guest, Probe or Client: each has a verdict and summary())
    whose verdict it formed or changed; verdicts(), decided(), lines(),
    why_no_verdict() and to_json() report. Sending unasked: due() and
    send_due(). Time is passed in everywhere (the frames' stamps' clock),
    so that a service is tested with timed frames and no loop."""

    counted = ()       # the Answer kinds of its replies, as the statistics list them
    taken_as = None    # the Stats counter of the frames it takes without a reply
    sends = False      # it has something due unasked: the loop asks due(), send_due()
    every_guest = False  # it judges every guest heard (the roll waits for its verdict)
    json_keys = ()     # its keys in the JSON summary (null when it is off)
    service = ""       # its name in the metrics' labels (and in a Client's record)
    held = ()          # the lists in its JSON part of what it holds for the guests of an
                       # interface (DHCP's leases...), which the metrics count
    needs_tags = False  # it reads the received frames' tags: the loop keeps them
    clock_only = False  # what send_due() gives is never a frame: reading a capture,
                        # it runs on the capture's clock (the others' frames are
                        # the switch's, in the capture: sent())

    def describe(self):
        """Its part of the start-up line."""
        return ""

    def filter(self):
        """Its program for the kernel filter (kernel_filter()), or None."""
        return None

    def answer(self, interface, frame, ethertype, offset, now):
        """The Answer to `frame` (received on `interface`; its ethertype and
        payload offset after any tags), or None to leave it to the next
        service. An Answer without a reply takes the frame for this service
        alone: an answer to what it sent itself."""
        return None

    def observe(self, exchange):
        """Take an Exchange as evidence; the records whose verdict it formed
        or changed."""
        return ()

    def due(self, now):
        """Seconds until send_due() has something to send."""
        return LONGEST_WAIT

    def send_due(self, now, served):
        """What is due at `now` on the interfaces `served` (names): a list of
        (interface, frame, the Stats counter or reply kind it counts as) to
        send, and of the records its silence decided."""
        return [], []

    def verdicts(self):
        """Every verdict it holds (None for a record without one yet)."""
        return []

    def decided(self):
        """Nothing it holds is waiting for a verdict."""
        return True

    def untracked(self):
        """Guests it heard but had no room to judge (Book): no verdict."""
        return 0

    def verdict_of(self, interface, mac):
        """Its verdict on guest (interface, `mac` bytes), for a judge of
        every guest (the roll asks); None if none yet, or not its kind."""
        return None

    def heard_of(self, interface, mac):
        """It holds a record of guest (interface, `mac` bytes): it heard the
        guest ask, whether or not its verdict has formed."""
        return False

    def lines(self):
        """A line per record, for the statistics."""
        return []

    def why_no_verdict(self):
        """Why it holds a record without a verdict, in one line; None if it
        holds none."""
        return None

    def to_json(self):
        """Its part of the JSON summary: json_keys and their values."""
        return {}

    # -- reading a capture (-r): the switch's frames stand in for the replies

    def answered_by(self, answer, frame, now):
        """The Answer the switch gave, if `frame` (one it sent, at `now`)
        answers `answer` (this service's Answer to a guest's frame): `answer`
        with `frame` as its reply, and with what `frame` says where the
        request holds what was answered; else None. By default `frame`
        answers it if it matches the reply this service would have sent in
        what pairs a reply with its request (reply_signature()). `frame`
        None: the capture ended before an answer could show; an Answer only
        for an ask the tool counts as answered before its answer goes (the
        Advertiser's), else None."""
        if frame is not None and answer.reply and \
                reply_signature(frame) == reply_signature(answer.reply):
            return answer._replace(reply=frame)
        return None

    def sent(self, interface, frame, now):
        """A frame the switch sent on `interface` at `now` that answered no
        ask (a probe, an advertisement, a Request to a group): the Stats
        counter it counts as if it is one this service sends of its own
        accord, else None."""
        return None

    def end(self, now):
        """The capture ends at `now`, and with it the run: the records whose
        verdict the end decides (a live run's clock would have, later)."""
        return []

    def settled(self):
        """Something was judged, and nothing is waiting for its verdict."""
        return all_settled([self])

    def status(self):
        """The --until-verdict exit status, if this were the only service."""
        return overall_status([self])


def answer_with(services, interface, frame, ethertype, offset, now):
    """(the first of `services`' Answer to `frame`, that service), or
    (None, None) if none takes it."""
    for service in services:
        answer = service.answer(interface, frame, ethertype, offset, now)
        if answer is not None:
            return answer, service
    return None, None


def observe_with(services, exchange):
    """Show `exchange` to the services; the records whose verdict it formed
    or changed, in the services' order. A frame taken without a reply (an
    answer to what a service sent itself) is that service's evidence alone."""
    if exchange.answer is not None and not exchange.replied:
        return list(exchange.by.observe(exchange))
    return [record for service in services for record in service.observe(exchange)]


def all_settled(services):
    """Something was judged, and nothing is waiting for its verdict."""
    return any(service.verdicts() for service in services) and all(
        service.decided() for service in services)


def overall_status(services):
    """The --until-verdict exit status: a drop anywhere wins; then anything
    without a verdict (an address nobody answers a probe at is one), or
    nothing judged at all."""
    verdicts = [verdict for service in services for verdict in service.verdicts()]
    if DROPS in verdicts:
        return EXIT_DROPS
    if not verdicts or any(verdict not in COPES for verdict in verdicts) or any(
            service.untracked() for service in services):
        return EXIT_NO_VERDICT
    return EXIT_OK


@dataclass
class Client:
    """What one guest (MAC) did on one interface with one service's
    answers (DHCP, Router Advertisements); bounded."""
    interface: str
    mac: str
    service: str                   # the service's name: "dhcp", "ra"
    answers: str                   # what the lines call its answers: "DHCP offers"
    answers_used: str              # ... once the guest used what they gave (used)
    window: float = field(repr=False)      # its asks' (Asks)
    framing: Framing = field(repr=False)   # the answers', for the line
    stage: str = ""                # a firmware's (iPXE, EDK2 PXE...); "" for the OS's client
    verdict: Optional[str] = None  # None, ACCEPTS, DROPS or NO_VERDICT
    reason: tuple = ()             # what formed the verdict
    address: Optional[str] = None  # the address offered, leased or taken
    tentative: bool = False        # the address is only offered: "(offered ...)"
    asks: Optional[Asks] = None    # its answered asks in a run
    answered_at: Optional[float] = None  # when the last answer went out
    offered: Optional[float] = None  # DHCP: when the last offer went out, unrequested
    acked: Optional[float] = None  # DHCP: when the address was ACKed; RA: first answered
    used: bool = False             # the guest used what the answers gave (DHCP: the lease)
    holds: tuple = ()              # DHCPv6: the addresses (packed) whose use accepts
    trid: Optional[int] = None     # DHCPv6: the transaction ID of its last message
    own: Optional[object] = field(default=None, repr=False)  # OwnFraming: its own frames
    evidence: deque = field(default_factory=lambda: deque(maxlen=EVIDENCE_KEPT))

    def __post_init__(self):
        self.asks = Asks(self.window)

    def summary(self):
        """The verdict in one line, and how the guest's own frames arrived."""
        return with_own(self._verdict_line(), self.own)

    def _verdict_line(self):
        framing = self.framing
        offered = "offered " if self.tentative else ""
        about = ([f"firmware, {self.stage}"] if self.stage else []) + (
            [f"{offered}{self.address}"] if self.address else [])
        who = f"{self.interface}: guest {self.mac}" + (f" ({'; '.join(about)})" if about else "")
        tagged = f"tagged {framing}" if framing.vlans else "untagged"
        if self.verdict == NO_VERDICT:
            why, = self.reason
            return f"{who}: no verdict on {self.answers} {tagged}: {why}"
        if self.verdict == DROPS:
            asked, count, span, answers = self.reason
            return (f"{who} sent {count} {asked} in {span:.1f} s and every one was answered: "
                    f"it drops {answers} {tagged}"
                    + framing.hint)
        if self.verdict == ACCEPTS:
            delay, did = self.reason
            what = self.answers_used if self.used else self.answers
            return f"{who} accepts {what} {tagged}: {delay * 1000:.1f} ms after the answer it {did}"
        return f"{who}: no verdict on {self.answers} {tagged} yet"

    def to_json(self):
        return {"interface": self.interface, "mac": self.mac, "service": self.service,
                "stage": self.stage or None, "address": self.address, "verdict": self.verdict,
                "line": self.summary(), "own_framing": self.own and self.own.to_json(),
                "evidence": list(self.evidence)}


class ClientService(Service):
    """A service that judges each client (interface, MAC) by its asks: the
    Client records, bounded, and the rules they share. An answered ask
    repeated ASKS_FOR_DROPS times (Asks, each within `window` of the one
    before) with nothing in between that shows the answer arrived: drops;
    what shows it arrived is the service's own (_accepted())."""

    service, answers, answers_used, window = "", "", "", 0.0
    awaited = ""  # what a guest it never heard from did not send: "no DHCPDISCOVER"
    record = Client  # the class of its records

    def __init__(self, framing, events=None):
        self.framing = framing
        self.events = Events() if events is None else events
        self.counted = (self.service,)
        self.clients = {}   # (interface, MAC bytes) -> Client, never forgotten
        self.book = Book()

    def _client(self, interface, mac, now, stage=None):
        """The Client (interface, `mac`), or (interface, `mac`, `stage`)
        for a service that judges each stage of a guest apart, made if
        there is room (Book); None if not: counted as not tracked."""
        key = (interface, mac) if stage is None else (interface, mac, stage)
        client = self.clients.get(key)
        if client is None and self.book.admit(interface, key):
            client = self.clients[key] = self.record(interface, str2mac(mac), self.service,
                                                     self.answers, self.answers_used,
                                                     self.window, self.framing, stage or "")
            client.own = self.events.framings.get((interface, mac))
            self.events.publish(HEARD, interface, mac, now)
        return client

    def verdict_of(self, interface, mac):
        client = self.clients.get((interface, mac))
        return client and client.verdict

    def heard_of(self, interface, mac):
        return (interface, mac) in self.clients

    def _asked(self, client, now, asked, answers):
        """An ask answered at `now`: a repeat, or drops (the Client, if its
        verdict changed)."""
        client.answered_at = now
        if client.asks.add(now) and client.verdict != DROPS:
            run = client.asks
            client.verdict, client.reason = DROPS, (asked, run.count, run.span, answers)
            return client
        return None

    def _accepted(self, client, now, did, delay):
        """The client showed that an answer arrived (`did`, `delay` after
        it): accepts (the Client, if its verdict changed)."""
        client.asks.clear()
        changed = client.verdict != ACCEPTS
        client.verdict, client.reason = ACCEPTS, (delay, did)
        client.evidence.append({"time": now, "event": "accepted", "did": did})
        return client if changed else None

    # -- the judge's side

    def verdicts(self):
        return [client.verdict for client in self.clients.values()]

    def decided(self):
        return all(client.verdict for client in self.clients.values())

    def untracked(self):
        return self.book.untracked

    def lines(self):
        return [client.summary() for client in self.clients.values()] + self.book.lines(
            f"{self.service.upper()} clients")

    def why_no_verdict(self):
        waiting = [f"{c.mac} on {c.interface}" for c in self.clients.values() if not c.verdict]
        if not waiting:
            return self.book.why(f"{self.service.upper()} clients")
        return f"no {self.service.upper()} verdict for {_some(waiting, 0)} yet"


# ---------------------------------------------------------------- service: the replies
#
# The core's kinds (ARP, NDP, ICMP and ICMPv6 echo) as a service, and the
# verdict on them. Whether a guest accepts the tagged replies is on the
# wire: a guest that drops the tool's ARP reply (or Neighbor Advertisement)
# asks again, about once a second, three times (Linux's default); one that
# accepted it stops asking and sends its next frame to the tool's MAC.
# README.rst, "Reading the verdict", states the rules below in words.

RETRY_WINDOW = 5.0   # seconds: an ask this soon after an answered one repeats it
ADDRESSES_KEPT = 8   # of a guest's own addresses, for the lines
TARGETS_KEPT = 8     # addresses a guest asked for whose runs of asks are kept


@dataclass
class Guest:
    """What one guest (MAC) did in one family on one interface after the
    tool answered it; bounded whatever the guest sends."""
    interface: str
    mac: str
    family: int
    framing: Framing = field(repr=False)             # the replies', for the line
    tool_mac: str = field(repr=False)                # the replies' source, for the line
    addresses: list = field(default_factory=list)  # its own, as it asked from them
    addresses_not_kept: int = 0
    verdict: Optional[str] = None                  # None, ACCEPTS or DROPS
    reason: tuple = ()                             # what formed the verdict
    runs: dict = field(default_factory=dict)       # target -> Asks for it
    targets_not_kept: int = 0                      # runs forgotten, oldest first
    asks: int = 0                                  # answered asks since the last acceptance
    awaiting: Optional[tuple] = None               # (stamp, target) of the last broadcast ask
    own: Optional[object] = field(default=None, repr=False)  # OwnFraming: its own frames
    evidence: deque = field(default_factory=lambda: deque(maxlen=EVIDENCE_KEPT))

    def summary(self):
        """The verdict in one line, and how the guest's own frames arrived."""
        return with_own(self._verdict_line(), self.own)

    def _verdict_line(self):
        framing = self.framing
        who = (f"{self.interface}: guest {self.mac} "
               f"({_some(self.addresses, self.addresses_not_kept)})")
        replies = (f"{RESOLVER[self.family].replies} {'tagged ' if framing.vlans else ''}"
                   f"{framing}")
        if self.verdict == DROPS:
            target, times, span = self.reason
            compare = framing.hint
            what = "request" if self.family == 4 else "solicitation"
            return (f"{who} asked for {target} {times} times in {span:.1f} s and every "
                    f"{what} was answered: it drops {replies}{compare}")
        if self.verdict == ACCEPTS:
            target, delay, frame = self.reason
            return (f"{who} accepts {replies}: {delay * 1000:.1f} ms after the reply for "
                    f"{target} it sent {frame} to {self.tool_mac}")
        return (f"{who}: no verdict on {replies} yet: {self.asks:,} answered "
                f"ask{'s' if self.asks != 1 else ''} for "
                f"{_some(list(self.runs), self.targets_not_kept)} and nothing "
                "since that tells whether a reply arrived")

    def to_json(self):
        return {"interface": self.interface, "mac": self.mac, "family": self.family,
                "addresses": self.addresses, "addresses_not_kept": self.addresses_not_kept,
                "verdict": self.verdict, "line": self.summary(),
                "own_framing": self.own and self.own.to_json(), "evidence": list(self.evidence)}


class Replies(Service):
    """ARP, Neighbor Solicitation and echo requests answered by the byte
    core (answer_at), and the evidence, per guest and family, of whether
    guests accept the replies.

    - An ask: an ARP request or Neighbor Solicitation that the tool answered
      (not a probe or DAD), broadcast (to the solicited-node group for NDP)
      or unicast to the tool's MAC; published as ASKED.
    - accepts: after an answered broadcast ask, a frame from that guest
      arrives unicast to the tool's MAC (it learnt the MAC from the reply).
    - drops: three answered asks for the same address, each within
      RETRY_WINDOW of the one before, with no acceptance in between.

    The state is bounded: the Book's room for guests, each with the bounds
    above."""

    json_keys = ("guests", "guests_not_tracked")
    service = "replies"

    def __init__(self, scope, framing, events=None):
        self.scope, self.framing = scope, framing
        self.events = Events() if events is None else events
        self.tool_mac = scope.mac_bytes
        self.counted = tuple(name for name, kind in KINDS.items()
                             if kind.family in scope.families)
        self.guests = {}     # (interface, guest MAC bytes, family) -> Guest, oldest first
        self.undecided = {}  # the keys of guests with no verdict yet, oldest first
        self.unicast_first = {}  # key -> (time, request): a guest's first ask, unicast
        self.book = Book()
        self.events.subscribe(PROBE_ANSWERED, self._probe_answered)

    def describe(self):
        return _describe(self.scope, self.framing)

    def filter(self):
        return REQUEST_FILTER

    def answer(self, interface, frame, ethertype, offset, now):
        return answer_at(frame, ethertype, offset, self.scope, self.framing)

    def observe(self, exchange):
        """The frame as evidence: the Guest whose verdict it formed or
        changed, if any."""
        frame, answer, now = exchange.whole, exchange.answer, exchange.stamp
        interface = exchange.link.name
        to_us = frame[:6] == self.tool_mac
        kind = answer and KINDS.get(answer.kind)
        if kind and kind.resolves and not answer.request.probe:
            guest = self._asked(interface, kind, answer.request, to_us, now)
            self.events.publish(ASKED, interface, answer.request, now)
            return (guest,) if guest else ()
        if to_us:
            family = kind.family if kind else FAMILY_OF_ETHERTYPE.get(
                ethertype_and_offset(frame)[0])
            guest = self.guests.get((interface, frame[6:12], family))
            if guest is not None and guest.awaiting is not None:
                what = kind.unicast if kind else f"an IPv{family} packet"
                guest = self._accepted(guest, what, now)
                return (guest,) if guest else ()
        return ()

    def _asked(self, interface, kind, request, to_us, now):
        """An ask the tool answered. A guest's first, if unicast (it knew
        the tool's MAC: a neighbour entry checked again), is no question
        yet: it is judged only if it asks again within RETRY_WINDOW."""
        key = (interface, request.requester, kind.family)
        guest = self.guests.get(key)
        if guest is None:
            first = self.unicast_first.pop(key, None)
            if to_us and (first is None or now - first[0] > RETRY_WINDOW):
                remember(self.unicast_first, key, (now, request))
                return None
            if not self.book.admit(interface, key):
                return None
            guest = self.guests[key] = Guest(interface, str2mac(request.requester),
                                             kind.family, self.framing, str2mac(self.tool_mac))
            guest.own = self.events.framings.get((interface, request.requester))
            self.undecided[key] = None
            if first is not None and now - first[0] <= RETRY_WINDOW:
                self._ask(key, guest, kind, first[1], True, first[0])
        return self._ask(key, guest, kind, request, to_us, now)

    def _ask(self, key, guest, kind, request, to_us, now):
        address = _address_text(request.source)
        if address not in guest.addresses:
            if len(guest.addresses) < ADDRESSES_KEPT:
                guest.addresses.append(address)
            else:
                guest.addresses_not_kept += 1
        target = _address_text(request.target)
        if to_us and guest.awaiting is not None:
            return self._accepted(guest, kind.unicast, now)
        guest.evidence.append({"time": now, "event": "asked", "for": target,
                               "to": "unicast" if to_us else "broadcast"})
        if not to_us:
            guest.awaiting = (now, target)
        guest.asks += 1
        run = guest.runs.get(target)
        if run is None:
            if len(guest.runs) >= TARGETS_KEPT:
                del guest.runs[next(iter(guest.runs))]
                guest.targets_not_kept += 1
            run = guest.runs[target] = Asks(RETRY_WINDOW)
        if run.add(now) and guest.verdict != DROPS:
            return self._decide(key, guest, DROPS, (target, run.count, run.span))
        if guest.verdict == DROPS:
            guest.reason = (target, run.count, run.span)
        return None

    def _accepted(self, guest, what, now):
        asked_at, target = guest.awaiting
        guest.awaiting = None
        guest.runs.clear()
        guest.asks = guest.targets_not_kept = 0
        guest.evidence.append({"time": now, "event": "sent", "frame": what,
                               "to": str2mac(self.tool_mac)})
        if guest.verdict == ACCEPTS:
            return None
        key = (guest.interface, mac2str(guest.mac), guest.family)
        return self._decide(key, guest, ACCEPTS, (target, now - asked_at, what))

    def _decide(self, key, guest, verdict, reason):
        guest.verdict, guest.reason = verdict, reason
        self.undecided.pop(key, None)
        return guest

    def _probe_answered(self, interface, mac, family, now):
        """PROBE_ANSWERED: the guest answered a tagged probe, which told it
        the tool's MAC: its next frame to that MAC says nothing more about
        the replies."""
        guest = self.guests.get((interface, mac, family))
        if guest is not None and guest.awaiting is not None:
            guest.awaiting = None
            guest.evidence.append({"time": now, "event": "answered a tagged probe"})

    # -- the judge's side

    def verdicts(self):
        return [guest.verdict for guest in self.guests.values()]

    def decided(self):
        """No guest heard is without a verdict (asked after every frame with
        --until-verdict: the set of undecided guests makes it one look)."""
        return not self.undecided

    def untracked(self):
        return self.book.untracked

    def lines(self):
        return [guest.summary() for guest in self.guests.values()] + self.book.lines("guests")

    def why_no_verdict(self):
        if not self.guests and not self.book.untracked:
            return ("no verdict: no guest was heard (no ARP request or Neighbor "
                    "Solicitation was answered)")
        waiting = [f"{g.mac} on {g.interface} (IPv{g.family})"
                   for g in self.guests.values() if g.verdict is None]
        if not waiting:
            return self.book.why("guests")
        return (f"no verdict for {_some(waiting, 0)}: nothing yet showed whether the "
                "replies arrived (neither a frame to the tool's MAC nor asks repeated)")

    def to_json(self):
        return {"guests": [guest.to_json() for guest in self.guests.values()],
                "guests_not_tracked": self.book.untracked}


# ---------------------------------------------------------------- service: the probe
#
# With --probe the tool asks a guest itself, as the other hosts behind a
# priority-tagging switch do: an ARP request (IPv4) or a Neighbor
# Solicitation (IPv6) for the address, tagged as the replies are; once the
# guest's MAC is known, echo requests to it, tagged. If the tagged requests
# go unanswered, an untagged control tells "drops tagged frames" (the
# control is answered) from "no answer" (down, filtered or nobody there),
# which is never counted as a drop. The controls teach the guest nothing
# (an ARP request from 0.0.0.0, RFC 5227; a DAD-form solicitation from ::),
# so that they cannot stand in for a reply in the other verdict. The probes
# are built with Scapy's layers: a few frames a second at most.

PROBE_INTERVAL = 1.0  # seconds between two probes of one address
PROBE_GRACE = 2.0     # after a phase's last probe, for a slow guest's answer
PROBES_SENT = {"resolve": 3, "control": 2, "ping": 3, "ping control": 2}
PROBES_LEARNT = 8     # guest addresses learnt, and probed, per interface
PROBES_KEPT = 4096    # probe records in all; beyond, an address is not probed
PROBE_RESTARTS = 2    # a probe starts again when another MAC answers, this often
CONTROL_SEQ = 0x8000  # echo sequence numbers from here on are the controls'
PROBE_DATA = b"arp_icmp_vlan0 probe"
LEASE_SETTLES = 3.0   # seconds after a DHCP lease (LEASED) before its address is probed
RESOLVE_WORDS = {4: "ARP requests", 6: "Neighbor Solicitations"}


def probe_refusal(packed, scope):
    """Why the tool does not probe packed address `packed`, or None: only a
    unicast address of a family it serves, not its own, and inside an --ip
    prefix of that family if one was given."""
    address = ipaddress.ip_address(packed)
    if not _is_unicast(packed):
        return f"{address} is not a unicast address"
    if address.version not in scope.families:
        return f"{address} is IPv{address.version}, which the tool does not serve here"
    if packed in scope.owned or packed == scope.link_local:
        return f"{address} is the tool's own address"
    prefixes = [net for net in scope.targets
                if net.version == address.version and net.num_addresses > 1]
    if prefixes and not any(_is_host_of(address, net) for net in prefixes):
        return (f"{address} is outside {', '.join(str(net) for net in prefixes)} "
                "(--ip): the tool probes only there")
    return None


def probe_resolve(mac, source, target, framing):
    """The ARP request or Neighbor Solicitation (to the solicited-node
    group) for `target`, from the tool's `mac`; `source`: the sender address
    (packed; for IPv4 0.0.0.0 makes it an RFC 5227 probe, for IPv6 :: a
    DAD-form solicitation, without the source link-layer option)."""
    if len(target) == 4:
        body = bytes(ARP(op=ARP_REQUEST, hwsrc=str2mac(mac), psrc=_address_text(source),
                         hwdst="00:00:00:00:00:00", pdst=_address_text(target)))
        return framing.frame(BROADCAST_MAC_BYTES, mac, ETH_P_ARP, body)
    group = in6_getnsma(target)
    packet = IPv6(src=_address_text(source), dst=_address_text(group), hlim=ND_HOP_LIMIT) / \
        ICMPv6ND_NS(tgt=_address_text(target))
    if source != IN6_UNSPECIFIED:
        packet /= ICMPv6NDOptSrcLLAddr(lladdr=str2mac(mac))
    return framing.frame(_multicast_mac(group), mac, ETH_P_IPV6, bytes(packet))


def probe_echo(mac, guest_mac, source, target, ident, seq, framing):
    """An ICMP or ICMPv6 echo request from `source` to `target`, unicast to
    `guest_mac`."""
    if len(target) == 4:
        packet = IP(src=_address_text(source), dst=_address_text(target), ttl=REPLY_TTL) / \
            ICMP(type=ICMP_ECHO_REQUEST, id=ident, seq=seq) / PROBE_DATA
        return framing.frame(guest_mac, mac, ETH_P_IP, bytes(packet))
    packet = IPv6(src=_address_text(source), dst=_address_text(target), hlim=REPLY_TTL) / \
        ICMPv6EchoRequest(id=ident, seq=seq, data=PROBE_DATA)
    return framing.frame(guest_mac, mac, ETH_P_IPV6, bytes(packet))


class ProbeAnswer(NamedTuple):
    kind: str       # "resolve" (ARP reply, Neighbor Advertisement) or "echo"
    address: bytes  # the probed address it answers for
    mac: bytes      # the answering station's
    to: bytes       # ARP: the target protocol address; else the IP destination
    seq: int        # echo: the sequence number


def parse_probe_answer(frame, tool_mac, ident):
    """The ProbeAnswer in `frame` (bytes, as received), or None: an ARP reply
    or an echo reply with the probes' identifier sent to `tool_mac`, or a
    Neighbor Advertisement sent to it or to all nodes."""
    if len(frame) < ETH_HLEN or frame[6] & 1 or frame[6:12] == tool_mac:
        return None
    ethertype, offset = ethertype_and_offset(frame)
    to_us = frame[:6] == tool_mac
    if ethertype == ETH_P_ARP:
        arp = frame[offset:offset + 28]
        if (len(arp) < 28 or arp[:6] != ARP_ETHERNET_IPV4 or arp[6:8] != b"\x00\x02"
                or not to_us or arp[18:24] != tool_mac or arp[8] & 1 or not any(arp[8:14])):
            return None
        return ProbeAnswer("resolve", arp[14:18], arp[8:14], arp[24:28], 0)
    if ethertype == ETH_P_IP and to_us:
        header_len = ipv4_header_length(frame, offset)
        if header_len is None:
            return None
        _, _, total, _, fragment_bits, _, protocol, _, source, destination = (
            IPV4_HEADER.unpack_from(frame, offset))
        message = frame[offset + header_len:offset + total]
        if (protocol != IPPROTO_ICMP or fragment_bits & IP_FRAGMENT_BITS
                or len(message) < ICMP_HLEN or message[:2] != bytes([ICMP_ECHO_REPLY, 0])
                or checksum(message) != 0 or message[4:6] != ident.to_bytes(2, "big")):
            return None
        return ProbeAnswer("echo", source, frame[6:12], destination,
                           int.from_bytes(message[6:8], "big"))
    if ethertype == ETH_P_IPV6:
        message = _icmpv6_message(frame, offset)
        if message is None or message[1] != 0:
            return None
        source, destination = frame[offset + 8:offset + 24], frame[offset + 24:offset + 40]
        if message[0] == ICMPV6_ECHO_REPLY and to_us and message[4:6] == ident.to_bytes(2, "big"):
            return ProbeAnswer("echo", source, frame[6:12], destination,
                               int.from_bytes(message[6:8], "big"))
        if (message[0] == ND_NEIGHBOR_ADVERT and len(message) >= 24
                and frame[offset + 7] == ND_HOP_LIMIT
                and (to_us or frame[:6] == IN6_ALL_NODES_MAC)):
            mac, options = frame[6:12], message[24:]
            if _options(options) is None:
                return None
            while options:  # the Target Link-Layer Address option names the station
                if options[0] == ND_OPT_TARGET_LLADDR and options[1] == 1:
                    mac = options[2:8]
                options = options[options[1] * 8:]
            if mac[0] & 1 or not any(mac):
                return None
            return ProbeAnswer("resolve", message[8:24], mac, destination, 0)
    return None


@dataclass
class Probe:
    """The probing of one address on one interface; bounded."""
    interface: str
    address: bytes                 # packed
    source: Optional[bytes]        # IPv4: the tool's address (None: ARP only); IPv6: link-local
    learnt: bool                   # from the guest's own frames, not the command line
    framing: Framing = field(repr=False)  # the probes', for the line
    phase: str = "resolve"         # resolve, control, ping, ping control, done
    sent: dict = field(default_factory=dict)  # phase -> probes sent in it
    next_at: float = 0.0
    mac: Optional[bytes] = None
    verdict: Optional[str] = None  # None, ANSWERS, DROPS, NO_ANSWER or UNCLEAR
    reason: tuple = ()             # what formed the verdict
    macs: list = field(default_factory=list)  # every MAC that answered, in order
    restarts: int = 0              # times another MAC answered and it began again
    evidence: deque = field(default_factory=lambda: deque(maxlen=EVIDENCE_KEPT))
    # Reading a capture: what an answer to each probe the switch sent would
    # hold (ProbeAnswer's kind, `to` and seq) -> that probe was tagged.
    recorded: dict = field(default_factory=dict, repr=False)

    @property
    def family(self):
        return 4 if len(self.address) == 4 else 6

    def summary(self):
        """The verdict in one line."""
        framing = self.framing
        where, address = self.interface, _address_text(self.address)
        tagged = f"tagged {framing}" if framing.vlans else "untagged"
        asked = RESOLVE_WORDS[self.family]
        who = f"{where}: guest {str2mac(self.mac)} ({address})" if self.mac else None
        if self.verdict == ANSWERS:
            pings, note = self.reason
            return f"{who} answers {asked}{pings} {tagged}{note}"
        if self.verdict == DROPS:
            what, = self.reason
            return f"{who} {what} but answers untagged ones: it drops frames {tagged}"
        if self.verdict == NO_ANSWER:
            unanswered, = self.reason
            return (f"{where}: nobody answered at {address}: {unanswered} went "
                    "unanswered (down, filtered, or nobody there): no verdict")
        if self.verdict == UNCLEAR:
            macs = ", ".join(str2mac(mac) for mac in self.macs)
            return f"{where}: {address} answered from {macs}: no verdict (one address, two stations?)"
        count = sum(self.sent.values())
        return f"{where}: probing {address}: no verdict yet ({count} probes sent)"

    def to_json(self):
        return {"interface": self.interface, "address": _address_text(self.address),
                "family": self.family, "mac": self.mac and str2mac(self.mac),
                "learnt": self.learnt, "verdict": self.verdict, "line": self.summary(),
                "evidence": list(self.evidence)}


class ProbeHeard(NamedTuple):
    """An answer to a probe (an Answer's request, with no reply)."""
    answer: ProbeAnswer
    tagged: bool       # it answers a tagged probe, not a control


class Prober(Service):
    """The probes of every address on every interface: send_due() says what
    to send when, answer() takes the answers to them, observe() judges.

    - answers: a tagged request was answered (and a tagged ping, if pings
      can be sent).
    - drops: the tagged requests (or pings) went unanswered and an untagged
      one was answered.
    - no answer: neither was answered; no verdict.
    - unclear: more than one MAC answered for the address, repeatedly.

    With --probe alone (no address) it learns what to probe from ASKED and
    LEASED; PROBE_ANSWERED tells the replies' judge that a guest answered a
    tagged probe."""

    taken_as, sends = "probe_answers", True
    json_keys = ("probes",)
    service = "probe"

    def __init__(self, addresses, scope, framing, ident, events=None):
        """`addresses`: packed, as --probe gave them; empty: learn them (but
        reading a capture, whose probes are the switch's: sent())."""
        self.addresses, self.learning = tuple(addresses), not addresses and not scope.capture
        self.scope, self.framing, self.ident = scope, framing, ident
        self.events = Events() if events is None else events
        self.control = Framing(vlans=(), pad=framing.pad)
        self.probes = {}     # (interface, address) -> Probe, in the order made
        self.pending = {}    # the keys of probes with no verdict yet
        self.due_at = []     # heap of (time, key) to look at a probe
        self.started = set()  # interfaces the command line's addresses are probed on
        self.learnt = {}     # interface -> addresses learnt on it
        self.not_probed = 0  # addresses not probed to stay within the bounds
        self.events.subscribe(ASKED, self._heard_ask)
        self.events.subscribe(LEASED, self._heard_lease)

    def describe(self):
        framing, scope = self.framing, self.scope
        how = f"tagged {framing}, an untagged control if unanswered" if framing.vlans \
            else "untagged"
        what = (", ".join(_address_text(packed) for packed in self.addresses)
                or f"every guest address it hears (up to {PROBES_LEARNT} an interface)")
        silent = ""
        if 4 in scope.families and scope.own_address(4) is None and any(
                len(packed) == 4 for packed in self.addresses):
            silent = (" (IPv4: ARP alone, no pings: the tool has no IPv4 address; give "
                      "--ip ADDR/LEN)")
        return f"; probing {what}, {how}{silent}"

    def filter(self):
        return probe_filter(self.scope.mac_bytes)

    # -- what to probe

    def _source(self, family):
        if family == 6:
            return self.scope.link_local
        return self.scope.own_address(4)

    def _add(self, interface, address, now, learnt, source=None):
        key = (interface, address)
        if key in self.probes:
            return None
        if len(self.probes) >= PROBES_KEPT:
            self.not_probed += 1
            return None
        family = 4 if len(address) == 4 else 6
        probe = Probe(interface, address, self._source(family) or source, learnt,
                      self.framing, next_at=now)
        self.probes[key] = probe
        self.pending[key] = None
        heapq.heappush(self.due_at, (now, key))
        return probe

    def _heard_ask(self, interface, request, now):
        """ASKED: a guest's ARP request or Neighbor Solicitation that the
        tool answered: with --probe alone, its sender's address is probed (a
        few per interface); the address it asked for is one it deems on its
        link, from which the tool may ping it when it has no IPv4 address."""
        address, asked_for = request.source, request.target
        probe = self.probes.get((interface, address))
        if probe is not None:
            if probe.source is None and len(address) == 4:
                probe.source = asked_for
            return
        if (not self.learning or probe_refusal(address, self.scope)
                or self.learnt.get(interface, 0) >= PROBES_LEARNT):
            return
        if self._add(interface, address, now, learnt=True, source=asked_for):
            self.learnt[interface] = self.learnt.get(interface, 0) + 1

    def _heard_lease(self, interface, address, server, now, *_):
        """LEASED: the tool leased `address` to a guest; with --probe alone
        it is probed, from the server's address, once the client has had
        the time to check it (RFC 5227: a few seconds)."""
        if self.learning and not probe_refusal(address, self.scope) \
                and self.learnt.get(interface, 0) < PROBES_LEARNT:
            if self._add(interface, address, now + LEASE_SETTLES, learnt=True, source=server):
                self.learnt[interface] = self.learnt.get(interface, 0) + 1

    # -- sending

    def _serving(self, served, now):
        """The interfaces (names) served now: the command line's addresses
        are probed on each from the first time it is."""
        for interface in served - self.started:
            self.started.add(interface)
            for address in self.addresses:
                self._add(interface, address, now, learnt=False)

    def due(self, now):
        return max(0.0, self.due_at[0][0] - now) if self.due_at else LONGEST_WAIT

    def send_due(self, now, served):
        """The probes due at `now` on the `served` interfaces, and the Probes
        decided now (their time is up)."""
        self._serving(served, now)
        frames, decided = [], []
        while self.due_at and self.due_at[0][0] <= now:
            at, key = heapq.heappop(self.due_at)
            probe = self.probes.get(key)
            if probe is None or probe.verdict is not None or probe.next_at != at:
                continue  # decided, or looked at again later
            if probe.interface not in served:
                probe.next_at = now + PROBE_INTERVAL  # it may come back
            else:
                frame = self._step(probe, now)
                if frame is not None:
                    frames.append((probe.interface, frame, "probes_sent"))
                if probe.verdict is not None:
                    decided.append(probe)
                    continue
            heapq.heappush(self.due_at, (probe.next_at, key))
        return frames, decided

    def _step(self, probe, now):
        """The next probe of `probe`'s phase, or, the phase over and
        unanswered, the next phase's first (or the verdict)."""
        while probe.verdict is None:
            phase, tagged = probe.phase, bool(self.framing.vlans)
            if phase in ("ping", "ping control") and probe.source is None:
                return self._decide(probe, ANSWERS, (
                    "", " (no pings: the tool has no IPv4 address to send them from; give "
                    "--ip ADDR/LEN)"))
            sent = probe.sent.get(phase, 0)
            if sent < PROBES_SENT[phase]:
                probe.sent[phase] = sent + 1
                probe.next_at = now + (PROBE_INTERVAL if sent + 1 < PROBES_SENT[phase]
                                       else PROBE_GRACE)
                return self._frame(probe, phase, sent, now)
            if phase == "resolve" and tagged:
                probe.phase = "control"
            elif phase == "resolve" or phase == "control":
                counts = f"{probe.sent['resolve']} {RESOLVE_WORDS[probe.family]} " + (
                    f"tagged {self.framing} and {probe.sent['control']} untagged" if tagged
                    else "untagged")
                return self._decide(probe, NO_ANSWER, (counts,))
            elif phase == "ping" and tagged:
                probe.phase = "ping control"
            else:
                return self._decide(probe, ANSWERS, (
                    "", "; its pings went unanswered, tagged and untagged (ICMP filtered?)"
                    if tagged else "; its pings went unanswered"))
        return None

    def _frame(self, probe, phase, sent, now):
        control = phase in ("control", "ping control")
        framing = self.control if control else self.framing
        mac = self.scope.mac_bytes
        if phase in ("resolve", "control"):
            unspecified = IPV4_ANY if probe.family == 4 else IN6_UNSPECIFIED
            source = unspecified if control else (probe.source or unspecified)
            frame = probe_resolve(mac, source, probe.address, framing)
            what = "ARP request" if probe.family == 4 else "Neighbor Solicitation"
        else:
            seq = (CONTROL_SEQ if control else 1) + sent
            frame = probe_echo(mac, probe.mac, probe.source, probe.address, self.ident, seq,
                               framing)
            what = "echo request"
        probe.evidence.append({"time": now, "event": "probe sent", "what": what,
                               "framing": str(framing)})
        return frame

    # -- the answers

    def answer(self, interface, frame, ethertype, offset, now):
        """A frame that answers one of the probes sent on `interface` is
        taken (an Answer with no reply, its request a ProbeHeard); any other
        is left to the others."""
        heard = parse_probe_answer(frame, self.scope.mac_bytes, self.ident)
        if heard is None:
            return None
        probe = self.probes.get((interface, heard.address))
        tagged = probe and self._answers_tagged(probe, heard)
        if tagged is None:
            return None
        return Answer("an answer to a probe", ProbeHeard(heard, tagged), None)

    def observe(self, exchange):
        """An answer to a probe (one this service took): the Probe it
        decided, if any."""
        answer = exchange.answer
        if exchange.by is not self or answer is None:
            return ()
        (heard, tagged), now = answer.request, exchange.stamp
        probe = self.probes[(exchange.link.name, heard.address)]
        if probe.mac is not None and heard.mac != probe.mac:
            return (probe,) if self._another_mac(probe, heard.mac, now) else ()
        if heard.mac not in probe.macs:
            probe.macs.append(heard.mac)
        probe.evidence.append({"time": now, "event": "probe answered",
                               "what": "echo reply" if heard.kind == "echo" else
                               "ARP reply" if probe.family == 4 else "Neighbor Advertisement",
                               "tagged": tagged, "from": str2mac(heard.mac)})
        decided = probe.verdict is None and self._judge(probe, heard, tagged, now)
        if tagged:
            self.events.publish(PROBE_ANSWERED, probe.interface, probe.mac, probe.family, now)
        return (probe,) if decided else ()

    def _judge(self, probe, heard, tagged, now):
        """What an answer to a probe with no verdict yet means; True if that
        decided it."""
        if heard.kind == "resolve":
            probe.mac = heard.mac
            if tagged and probe.phase in ("resolve", "control"):
                probe.phase, probe.next_at = "ping", now
                heapq.heappush(self.due_at, (now, (probe.interface, probe.address)))
            elif not tagged:
                self._decide(probe, DROPS, (f"does not answer {RESOLVE_WORDS[probe.family]} "
                                            f"tagged {self.framing}",))
        elif probe.phase in ("ping", "ping control"):
            if tagged:
                self._decide(probe, ANSWERS, (" and pings", ""))
            else:
                self._decide(probe, DROPS, (f"answers {RESOLVE_WORDS[probe.family]} tagged "
                                            f"{self.framing} but not pings",))
        return probe.verdict is not None

    def _answers_tagged(self, probe, answer):
        """Whether `answer` answers one of `probe`'s tagged probes (True) or
        its controls (False); None if it answers nothing sent yet: an answer
        counts as one to a control only once a control went out, and as one
        to a tagged probe only once a tagged one did. Reading a capture: as
        the latest probe the switch sent that it answers was."""
        if self.scope.capture:
            return probe.recorded.get((answer.kind, answer.to, answer.seq))
        sent = probe.sent
        if answer.kind == "echo":
            if answer.to != probe.source:
                return None
            if answer.seq < CONTROL_SEQ:
                return True if 1 <= answer.seq <= sent.get("ping", 0) else None
            return False if answer.seq - CONTROL_SEQ < sent.get("ping control", 0) else None
        if probe.family == 6:
            control = answer.to == IN6_ALL_NODES
            if control:
                return False if sent.get("control") else None  # else: unsolicited
            return True if sent.get("resolve") else None
        tagged_source = probe.source or IPV4_ANY
        if answer.to == IPV4_ANY:
            # A request from 0.0.0.0: a control once one went out, or, when
            # the tool has no IPv4 address, a tagged probe before that
            # (PROBE_GRACE separates them in time).
            if sent.get("control"):
                return False
            return True if tagged_source == IPV4_ANY and sent.get("resolve") else None
        return True if answer.to == tagged_source and sent.get("resolve") else None

    # -- reading a capture: the switch's probes

    def sent(self, interface, frame, now):
        """An ARP request, Neighbor Solicitation or echo request the switch
        sent to a guest: a probe of its target, tagged or an untagged
        control as the frame was, judged as the tool's own are."""
        ethertype, offset = ethertype_and_offset(frame)
        tagged = is_tagged(frame)
        if ethertype == ETH_P_ARP and 4 in self.scope.families:
            arp = frame[offset:offset + 28]
            if len(arp) < 28 or arp[:8] != ARP_ETHERNET_IPV4 + b"\x00\x01":
                return None
            target, key, what = arp[24:28], ("resolve", arp[14:18], 0), "ARP request"
            phase = "resolve" if tagged else "control"
        elif ethertype == ETH_P_IPV6 and 6 in self.scope.families:
            message = _icmpv6_message(frame, offset)
            if message is None or message[0] not in (ND_NEIGHBOR_SOLICIT, ICMPV6_ECHO_REQUEST) \
                    or len(message) < 24 and message[0] == ND_NEIGHBOR_SOLICIT:
                return None
            source = frame[offset + 8:offset + 24]
            if message[0] == ND_NEIGHBOR_SOLICIT:
                target, what = message[8:24], "Neighbor Solicitation"
                key = ("resolve", IN6_ALL_NODES if source == IN6_UNSPECIFIED else source, 0)
                phase = "resolve" if tagged else "control"
            else:
                target, what = frame[offset + 24:offset + 40], "echo request"
                key = ("echo", source, int.from_bytes(message[6:8], "big"))
                phase, self.ident = "ping" if tagged else "ping control", int.from_bytes(
                    message[4:6], "big")
        elif ethertype == ETH_P_IP and 4 in self.scope.families:
            header_len = ipv4_header_length(frame, offset)
            message = header_len and frame[offset + header_len:offset + header_len + ICMP_HLEN]
            if not message or frame[offset + 9] != IPPROTO_ICMP or len(message) < ICMP_HLEN \
                    or message[0] != ICMP_ECHO_REQUEST:
                return None
            target, what = frame[offset + 16:offset + 20], "echo request"
            key = ("echo", frame[offset + 12:offset + 16], int.from_bytes(message[6:8], "big"))
            phase, self.ident = "ping" if tagged else "ping control", int.from_bytes(
                message[4:6], "big")
        else:
            return None
        if probe_refusal(target, self.scope):  # the switch's own (DAD), or not unicast
            return None
        probe = self.probes.get((interface, target)) or self._add(interface, target, now,
                                                                  learnt=False)
        if probe is None:
            return None
        probe.sent[phase] = probe.sent.get(phase, 0) + 1
        remember(probe.recorded, key, tagged, EVIDENCE_KEPT)
        if probe.verdict is None and (phase.startswith("ping") or not
                                      probe.phase.startswith("ping")):
            probe.phase = phase
        if key[0] == "resolve" and tagged and len(target) == 4 and key[1] != IPV4_ANY:
            probe.source = key[1]
        probe.evidence.append({"time": now, "event": "probe sent", "what": what,
                               "framing": tags_text(tags_of(frame))})
        return "probes_sent"

    def end(self, now):
        """The capture's end decides what a live probe's last grace would:
        tagged requests and untagged controls unanswered, nobody answered;
        a tagged request answered, with no ping answered after it, answers."""
        decided = []
        for key in list(self.pending):
            probe = self.probes[key]
            sent, words = probe.sent, RESOLVE_WORDS[probe.family]
            if probe.phase in ("resolve", "control") and sent.get("resolve") \
                    and sent.get("control"):
                self._decide(probe, NO_ANSWER, (f"{sent['resolve']} {words} tagged and "
                                                f"{sent['control']} untagged",))
            elif probe.phase in ("ping", "ping control") and probe.mac is not None:
                pings = sent.get("ping", 0) + sent.get("ping control", 0)
                self._decide(probe, ANSWERS, ("", "; the capture shows no ping to it"
                                              if not pings else "; its pings went unanswered"))
            else:
                continue
            decided.append(probe)
        return decided

    def _another_mac(self, probe, mac, now):
        """A second station answers for the probe's address: the probe starts
        again for it, or, after PROBE_RESTARTS, ends without a verdict (True)."""
        if mac not in probe.macs:
            probe.macs.append(mac)
        probe.evidence.append({"time": now, "event": "another MAC answered",
                               "from": str2mac(mac), "was": str2mac(probe.mac)})
        key = (probe.interface, probe.address)
        probe.restarts += 1
        if probe.restarts > PROBE_RESTARTS:
            self._decide(probe, UNCLEAR, ())
            return True
        probe.phase, probe.sent, probe.mac = "resolve", {}, None
        probe.verdict, probe.reason, probe.next_at = None, (), now
        self.pending[key] = None
        heapq.heappush(self.due_at, (now, key))
        return False

    def _decide(self, probe, verdict, reason):
        probe.verdict, probe.reason, probe.phase = verdict, reason, "done"
        self.pending.pop((probe.interface, probe.address), None)
        return None

    # -- the judge's side

    def verdicts(self):
        """Each probe's verdict, but "no answer" on one interface for an
        address found on another (--probe ADDR with 'vnet*': one guest has
        it)."""
        found = {p.address for p in self.probes.values() if p.verdict in (ANSWERS, DROPS)}
        return [p.verdict for p in self.probes.values()
                if p.verdict != NO_ANSWER or p.address not in found]

    def decided(self):
        return not self.pending

    def lines(self):
        lines = [probe.summary() for probe in self.probes.values()]
        if self.not_probed:
            lines.append(f"{self.not_probed:,} addresses not probed (at most "
                         f"{PROBES_KEPT:,} probes in all)")
        return lines

    def why_no_verdict(self):
        """The probes with no verdict, in one line, or None."""
        found = {p.address for p in self.probes.values() if p.verdict in (ANSWERS, DROPS)}
        waiting = [f"{_address_text(p.address)} on {p.interface}"
                   for p in self.probes.values() if p.verdict not in (ANSWERS, DROPS)
                   and p.address not in found]
        if not waiting:
            return None
        return (f"no probe verdict for {_some(waiting, 0)}: nobody answered (or not yet), "
                "tagged or untagged")

    def to_json(self):
        return {"probes": [probe.to_json() for probe in self.probes.values()]}


# ---------------------------------------------------------------- service: DHCP
#
# With --dhcp the tool is also the guests' DHCP server, tagged like every
# reply, so that a guest that configures itself needs no console: its
# DHCPDISCOVER is the first thing it asks, and whether it goes on from the
# tagged offer is the verdict. A cold path: Scapy's BOOTP/DHCP layers parse
# and build (RFC 2131), as its DHCP_am does.

DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68
DHCP_DISCOVER, DHCP_OFFER, DHCP_REQUEST, DHCP_DECLINE = 1, 2, 3, 4
DHCP_ACK, DHCP_NAK, DHCP_RELEASE, DHCP_INFORM = 5, 6, 7, 8
DHCP_NAMES = {1: "DHCPDISCOVER", 2: "DHCPOFFER", 3: "DHCPREQUEST", 4: "DHCPDECLINE",
              5: "DHCPACK", 6: "DHCPNAK", 7: "DHCPRELEASE", 8: "DHCPINFORM"}
BOOTREQUEST, BOOTREPLY = 1, 2
BOOTP_BROADCAST = 0x8000
LEASE_TIME = 3600        # seconds (option 51); renewal at half (58), rebinding at 7/8 (59)
OFFER_HELD = 60.0        # seconds an offered address waits for its client's request
LEASES_KEPT = 4096       # leases and offers; beyond, the oldest offer (then lease) goes
LEASES_PER_INTERFACE = 16  # leases and offers held for one interface's clients
DECLINED_KEPT = 256      # addresses a client declined (in use), not offered again
DECLINED_PER_INTERFACE = 4  # of them declined from one interface at a time
DECLINED_FOR = 600.0     # seconds
DHCP_RETRY_WINDOW = 70.0  # seconds: a DISCOVER this soon after an offered one repeats it
DHCP_BUDGET = (32, 8.0)  # DHCP messages an interface may have parsed: a burst, then a second
BOOTP_FIXED = 236        # the BOOTP header before the options' magic cookie
DHCP_MAGIC = b"\x63\x82\x53\x63"
# Network boot (RFC 4578, the PXE specification): the client architecture
# (option 93) -> the --boot-file key that serves it.
ARCHITECTURES = {0: "bios", 6: "efi-ia32", 7: "efi-x64", 9: "efi-x64", 10: "efi-arm32",
                 11: "efi-arm64", 16: "efi-x64"}  # 16: x64 UEFI HTTP boot
BOOT_FILE_KEYS = ("bios", "efi-ia32", "efi-x64", "efi-arm32", "efi-arm64", "ipxe")
# A firmware's stage, from its vendor class (option 60) and user class (77):
# iPXE says "iPXE" in its user class (and UNDI 002001 or 003010 in its vendor
# class); EDK2's own PXE says UNDI 003000; UEFI HTTP boot says HTTPClient.
STAGE_IPXE, STAGE_EDK2, STAGE_HTTP, STAGE_PXE = "iPXE", "EDK2 PXE", "UEFI HTTP", "PXE"

def looks_like_dhcp(frame, offset):
    """The cheap look before any dissection, in bytes: a whole IPv4 UDP
    datagram to port 67 holding a BOOTREQUEST for Ethernet, straight from
    the client (giaddr 0.0.0.0: no relay), whose chaddr is the frame's
    Ethernet source, with the DHCP magic cookie. What fails here costs a
    few microseconds, whatever a guest sends."""
    header_len = ipv4_header_length(frame, offset)
    if header_len is None or frame[offset + 9] != socket.IPPROTO_UDP or (
            frame[offset + 6] << 8 | frame[offset + 7]) & IP_FRAGMENT_BITS:
        return False
    udp = offset + header_len
    bootp = udp + 8
    return (len(frame) >= bootp + BOOTP_FIXED + len(DHCP_MAGIC)
            and frame[udp + 2:udp + 4] == DHCP_SERVER_PORT.to_bytes(2, "big")
            and frame[bootp:bootp + 3] == b"\x01\x01\x06"  # BOOTREQUEST, Ethernet, 6
            and frame[bootp + 24:bootp + 28] == IPV4_ANY                   # giaddr
            and frame[bootp + 28:bootp + 34] == frame[6:12]                # chaddr
            and frame[bootp + BOOTP_FIXED:bootp + BOOTP_FIXED + 4] == DHCP_MAGIC)


def dhcp_message(frame, offset):
    """The DHCP message (Scapy's BOOTP and its options) of `frame` if it is
    a client's UDP datagram to port 67, unfragmented; else None."""
    if not looks_like_dhcp(frame, offset):
        return None
    try:
        packet = IP(frame[offset:])
    except Exception:  # what Scapy cannot dissect is no request
        return None
    bootp = packet.getlayer(BOOTP)
    if bootp is None or bootp.op != BOOTREQUEST or bootp.htype != 1 or bootp.hlen != 6 \
            or not bootp.haslayer(DHCP):
        return None
    options = {}
    for option in bootp[DHCP].options:
        if isinstance(option, tuple) and len(option) >= 2:
            options.setdefault(option[0], option[1])
    kind = options.get("message-type")
    return bootp, options, kind if isinstance(kind, int) else None


class DhcpAnswer(NamedTuple):
    """A server's DHCP message, as a capture holds it (-r)."""
    xid: int
    client: bytes        # chaddr
    kind: int            # DHCP_OFFER, DHCP_ACK or DHCP_NAK
    address: bytes       # yiaddr, packed
    server: bytes        # option 54, else the IPv4 source, packed
    network: Optional[object]  # yiaddr's IPv4Network by option 1, if given
    boot_file: Optional[str]   # option 67, else the file field; None if neither


@lru_cache(maxsize=2)  # a broadcast offer is offered to every guest's waiting ask in turn
def parse_dhcp_answer(frame):
    """The DhcpAnswer in `frame` if it is a server's OFFER, ACK or NAK (a
    BOOTREPLY from port 67 to 68), else None: Scapy's dissection after a
    look in bytes (reading a capture)."""
    ethertype, offset = ethertype_and_offset(frame)
    header_len = ethertype == ETH_P_IP and ipv4_header_length(frame, offset)
    if not header_len or frame[offset + 9] != socket.IPPROTO_UDP:
        return None
    udp = offset + header_len
    bootp = udp + 8
    if frame[udp:udp + 4] != struct.pack("!HH", DHCP_SERVER_PORT, DHCP_CLIENT_PORT) \
            or len(frame) < bootp + BOOTP_FIXED + len(DHCP_MAGIC) or frame[bootp] != 2:
        return None
    try:
        packet = IP(frame[offset:])
        reply = packet[BOOTP]
        options = {}
        for option in reply[DHCP].options:
            if isinstance(option, tuple) and len(option) >= 2:
                options.setdefault(option[0], option[1])
        kind = options.get("message-type")
        if kind not in (DHCP_OFFER, DHCP_ACK, DHCP_NAK):
            return None
        name = options.get("boot-file-name") or bytes(reply.file).rstrip(b"\0")
        server, mask = options.get("server_id"), options.get("subnet_mask")
        network = ipaddress.ip_network(f"{reply.yiaddr}/{mask}", strict=False) \
            if isinstance(mask, str) and kind != DHCP_NAK else None
        return DhcpAnswer(reply.xid, bytes(reply.chaddr)[:6], kind, _ip_packed(reply.yiaddr),
                          _ip_packed(server if isinstance(server, str) else packet.src),
                          network, name.decode(errors="replace") if name else None)
    except Exception:  # what Scapy cannot dissect answers nothing
        return None


class DhcpRequest(NamedTuple):
    requester: bytes   # the Ethernet source, which must be the client's hardware address
    kind: int          # the DHCP message type
    xid: int
    broadcast: bool    # the client asked for broadcast replies (the flags' B bit)
    ciaddr: bytes      # packed; 0.0.0.0 unless the client is bound
    requested: Optional[bytes]  # option 50
    server: Optional[bytes]     # option 54
    client_id: Optional[bytes] = None  # option 61
    vendor_class: bytes = b""   # option 60: "PXEClient:Arch:00007:UNDI:003000" and the like
    user_class: bytes = b""     # option 77: "iPXE" from iPXE
    arch: Optional[int] = None  # option 93, the first architecture listed

    @property
    def stage(self):
        """The firmware that asks (STAGE_*), or "" for an operating system's
        client."""
        return dhcp_stage(self.vendor_class, self.user_class)


def dhcp_stage(vendor_class, user_class):
    """The firmware stage a DHCP client's classes tell (STAGE_*), or "" for
    the client of a running operating system."""
    if b"iPXE" in user_class or re.search(rb"UNDI:00(2001|3010)", vendor_class):
        return STAGE_IPXE
    if vendor_class.startswith(b"HTTPClient"):
        return STAGE_HTTP
    if vendor_class.startswith(b"PXEClient"):
        return STAGE_EDK2 if b"UNDI:003000" in vendor_class else STAGE_PXE
    return ""


class DhcpExchange(NamedTuple):
    """A DHCP client's message and what the tool answered (an Answer's
    request)."""
    request: DhcpRequest
    sent: int          # DHCP_OFFER, DHCP_ACK or DHCP_NAK
    address: bytes     # what was offered or acknowledged; 0.0.0.0 with a NAK
    boot_file: Optional[str] = None  # the boot file the answer named


def parse_dhcp_request(frame, offset):
    """A client's DHCP message sent straight to us (no relay: giaddr
    0.0.0.0) from the hardware address it names; else None."""
    found = dhcp_message(frame, offset)
    if found is None:
        return None
    bootp, options, kind = found
    chaddr = bytes(bootp.chaddr)[:6]
    if kind not in DHCP_NAMES or chaddr != frame[6:12] or _ip_packed(bootp.giaddr) != IPV4_ANY:
        return None

    def address(name):
        value = options.get(name)
        try:
            return socket.inet_aton(value) if isinstance(value, str) else None
        except OSError:
            return None
    def raw(name):
        value = options.get(name)
        return value if isinstance(value, bytes) else b""
    arch = raw("pxe_client_architecture")
    return DhcpRequest(chaddr, kind, bootp.xid, bool(bootp.flags & BOOTP_BROADCAST),
                       _ip_packed(bootp.ciaddr), address("requested_addr"), address("server_id"),
                       raw("client_id") or None, raw("vendor_class_id"), raw("user_class"),
                       int.from_bytes(arch[:2], "big") if len(arch) >= 2 else None)


def _ip_packed(text):
    try:
        return socket.inet_aton(text)
    except (OSError, TypeError):
        return IPV4_ANY


def dhcp_reply(request, kind, yiaddr, server, network, mac, framing, boot_file=None):
    """The DHCPOFFER, DHCPACK or DHCPNAK to `request` from `server` (packed)
    for `yiaddr`, built with Scapy's layers, sent as RFC 2131 4.1 says: a
    NAK to broadcast; to a bound client (ciaddr) unicast to it; else to
    broadcast if the client asked for that, or unicast to its hardware
    address and yiaddr. With `boot_file` (a name the TFTP service serves),
    what a PXE client needs: the tool as next server (siaddr), the name in
    option 67 and the file field. Not option 60 "PXEClient": without the
    PXE vendor options (43) EDK2 takes such an offer for a BINL one and asks
    port 4011 (PXE-E16); a plain offer with a boot file it takes as it is,
    as iPXE does (what ISC dhcpd's filename and next-server give)."""
    options = [("message-type", kind), ("server_id", _address_text(server))]
    if boot_file and kind != DHCP_NAK:
        options += [("boot-file-name", boot_file.encode())]
    if kind != DHCP_NAK:
        options += [("subnet_mask", str(network.netmask)), ("router", _address_text(server)),
                    ("broadcast_address", str(network.broadcast_address))]
        if request.kind != DHCP_INFORM:
            options += [("lease_time", LEASE_TIME), ("renewal_time", LEASE_TIME // 2),
                        ("rebinding_time", LEASE_TIME * 7 // 8)]
    if kind == DHCP_NAK:
        destination, ether_dst = "255.255.255.255", BROADCAST_MAC_BYTES
    elif request.ciaddr != IPV4_ANY:
        destination, ether_dst = _address_text(request.ciaddr), request.requester
    elif request.broadcast:
        destination, ether_dst = "255.255.255.255", BROADCAST_MAC_BYTES
    else:
        destination, ether_dst = _address_text(yiaddr), request.requester
    packet = IP(src=_address_text(server), dst=destination, ttl=REPLY_TTL) / \
        UDP(sport=DHCP_SERVER_PORT, dport=DHCP_CLIENT_PORT) / \
        BOOTP(op=BOOTREPLY, xid=request.xid, flags=BOOTP_BROADCAST if request.broadcast else 0,
              ciaddr=_address_text(request.ciaddr) if kind == DHCP_ACK else "0.0.0.0",
              yiaddr=_address_text(yiaddr) if kind != DHCP_NAK and request.kind != DHCP_INFORM
              else "0.0.0.0", chaddr=request.requester + bytes(10),
              siaddr=_address_text(server) if boot_file and kind != DHCP_NAK else "0.0.0.0",
              file=boot_file.encode() if boot_file and kind != DHCP_NAK else b"") / \
        DHCP(options=options + ["end"])
    return framing.frame(ether_dst, mac, ETH_P_IP, bytes(packet))


@dataclass
class Lease:
    """An address held for one client (interface, MAC)."""
    address: bytes                     # packed
    state: str                         # "offered" or "bound"
    until: float
    client_id: Optional[bytes] = None  # option 61, if the client sent one


class Leases:
    """The addresses the DHCP server hands out from `network`, all but
    `server` (packed), in memory, bounded. A client is (interface, MAC):
    two guests with one MAC on two interfaces are two clients. A MAC gets
    the same address again (a hash of the MAC picks where in the pool its
    search starts, so also after the tool restarts); an offer lapses after
    OFFER_HELD; a declined address is not offered for DECLINED_FOR. The pool
    is shared fairly: one interface's clients hold LEASES_PER_INTERFACE
    leases and offers at most, and DECLINED_PER_INTERFACE declined
    addresses, so that no interface takes the pool from the others."""

    def __init__(self, network, server, holder=None):
        """`holder`: the dict to keep address -> client in (the Scope's
        `leased`, so that the tool answers no ARP for a leased address)."""
        self.network, self.server = network, server
        first = int(network.network_address) + (1 if network.num_addresses > 2 else 0)
        last = int(network.broadcast_address) - (1 if network.num_addresses > 2 else 0)
        self.first, self.size = first, last - first + 1
        self.by_client = {}    # (interface, MAC) -> Lease, the most recent last
        self.on = {}           # interface -> {client: None}: the clients holding one
        self.holder = {} if holder is None else holder  # address -> client
        self.declined = {}     # address -> (until, interface)
        self.refused = {}      # interface -> offers and leases refused at its cap

    def __contains__(self, packed):
        return packed in self.holder

    def lease_of(self, client, now):
        lease = self.by_client.get(client)
        if lease is not None and lease.until < now:
            self._drop(client)
            return None
        return lease

    def _drop(self, client):
        lease = self.by_client.pop(client)
        if self.holder.get(lease.address) == client:
            del self.holder[lease.address]
        held = self.on.get(client[0])
        if held is not None:
            held.pop(client, None)
            if not held:
                del self.on[client[0]]

    def _free(self, packed, client, now):
        """`packed` can be `client`'s: in the pool, not the server's, not
        declined, nobody else's (or theirs lapsed)."""
        if packed == self.server or not 0 <= int.from_bytes(packed, "big") - self.first < self.size:
            return False
        if self.declined.get(packed, (0, None))[0] > now:
            return False
        holder = self.holder.get(packed)
        return holder is None or holder == client or self.lease_of(holder, now) is None

    def preferred(self, client, now):
        """The address this client gets: its own, or the first free one
        from where its MAC's hash points; None if the pool has none."""
        lease = self.lease_of(client, now)
        if lease is not None:
            return lease.address
        start = int.from_bytes(hashlib.sha256(client[1]).digest()[:8], "big")
        # Among this many candidates one is free, whatever is held.
        for step in range(min(self.size, LEASES_KEPT + DECLINED_KEPT + 2)):
            packed = (self.first + (start + step) % self.size).to_bytes(4, "big")
            if self._free(packed, client, now):
                return packed
        return None

    def offer(self, client, requested, now, client_id=None):
        """The address to offer `client` (its requested one if free), held
        for it; None if there is none, or its interface is at its cap."""
        lease = self.lease_of(client, now)
        address = lease.address if lease else (
            requested if requested and self._free(requested, client, now)
            else self.preferred(client, now))
        if address is None or not self._make_room(client, now):
            return None
        state = lease.state if lease else "offered"
        self._hold(client, address, state,
                   now + (LEASE_TIME if state == "bound" else OFFER_HELD), client_id)
        return address

    def bind(self, client, address, now, client_id=None):
        """Lease `address` to `client` if it can be its (a REQUEST); True
        if it is now."""
        if not self._free(address, client, now) or not self._make_room(client, now):
            return False
        self._hold(client, address, "bound", now + LEASE_TIME, client_id)
        return True

    def _hold(self, client, address, state, until, client_id):
        old = self.by_client.pop(client, None)
        if old is not None and old.address != address and self.holder.get(old.address) == client:
            del self.holder[old.address]
        self.by_client[client] = Lease(address, state, until,
                                       client_id or (old and old.client_id))
        self.holder[address] = client
        self.on.setdefault(client[0], {})[client] = None

    def _make_room(self, client, now):
        """Room for `client`'s record: within its interface's cap (its
        oldest offer, unrequested, goes first) and LEASES_KEPT in all."""
        if client in self.by_client:
            return True
        interface = client[0]
        held = self.on.get(interface, {})
        for other in list(held):  # lapsed ones first
            self.lease_of(other, now)
        held = self.on.get(interface, {})
        if len(held) >= LEASES_PER_INTERFACE:
            offered = [c for c in held if self.by_client[c].state == "offered"]
            if not offered:
                self.refused[interface] = self.refused.get(interface, 0) + 1
                return False
            self._drop(offered[0])
        if len(self.by_client) < LEASES_KEPT:
            return True
        lapsed = [c for c, lease in self.by_client.items() if lease.until < now]
        offered = [c for c, lease in self.by_client.items() if lease.state == "offered"]
        victims = lapsed or offered
        if not victims:
            self.refused[interface] = self.refused.get(interface, 0) + 1
            return False
        self._drop(victims[0])
        return True

    def holds(self, client, address, client_id, now):
        """`client` holds `address` (offered or bound), and its client
        identifier, if the lease has one, is the message's: what a RELEASE
        or DECLINE must show (RFC 2131 4.3.4, 4.3.3)."""
        lease = self.lease_of(client, now)
        return (lease is not None and lease.address == address
                and (lease.client_id is None or lease.client_id == client_id))

    def release(self, client, address, client_id, now):
        """DHCPRELEASE: the lease is freed if `client` holds it."""
        if self.holds(client, address, client_id, now):
            self._drop(client)

    def decline(self, client, address, client_id, now):
        """DHCPDECLINE: if `client` holds `address`, it is freed and, within
        its interface's share of DECLINED_KEPT, not offered again for
        DECLINED_FOR (someone else uses it)."""
        if not self.holds(client, address, client_id, now):
            return
        self._drop(client)
        interface = client[0]
        for packed, (until, _) in list(self.declined.items()):
            if until <= now:
                del self.declined[packed]
        if sum(1 for _, by in self.declined.values() if by == interface) \
                >= DECLINED_PER_INTERFACE:
            return
        remember(self.declined, address, (now + DECLINED_FOR, interface), DECLINED_KEPT)

    def withdraw(self, client, now):
        """A REQUEST naming another server: the offer made to `client` (on
        its interface, to its MAC) is free again; a lease stays."""
        lease = self.lease_of(client, now)
        if lease is not None and lease.state == "offered":
            self._drop(client)


class DhcpServer(ClientService):
    """--dhcp: leases from the --ip prefix, and each client's verdict:
    accepts when it requests the offered address from the tool (then uses
    it after the ACK: an ARP probe or announcement for it, or a frame from
    it); drops when its DISCOVERs (or REQUESTs) go on although each was
    answered. A guest that boots from the network is several clients in
    turn, each judged apart: its firmware's stages (iPXE, EDK2's PXE...),
    then its operating system's. With --boot-file a PXE client's offer names
    the boot file (and the tool as its TFTP server). A stage whose silence
    says nothing about tags (EDK2's PXE offered no boot file, which it
    ignores; UEFI HTTP boot, whose offer the tool cannot complete) is no
    verdict, with the reason, never a drop. Each lease is published as
    LEASED."""

    service, window = "dhcp", DHCP_RETRY_WINDOW
    answers, answers_used = "DHCP offers", "DHCP offers and ACKs"
    awaited = "no DHCPDISCOVER"
    json_keys, every_guest, held = ("dhcp",), True, ("leases",)

    def __init__(self, network, server, scope, framing, events=None, boot_files=None):
        """`boot_files`: --boot-file's, key (BOOT_FILE_KEYS, or "" for every
        PXE client) -> the name the TFTP service serves it by."""
        super().__init__(framing, events)
        self.network, self.server, self.scope = network, server, scope
        self.boot_files = dict(boot_files or {})
        self.leases = Leases(network, server, scope.leased)
        self.budget = Budget(*DHCP_BUDGET)
        self.current = {}  # (interface, MAC) -> the key of its latest stage's Client

    def _boot_file_for(self, request):
        """The boot file a PXE client's offer names, by its stage (the
        "ipxe" key for iPXE) or architecture (option 93); None for another
        client, or none given for it."""
        stage = request.stage
        if not self.boot_files or not stage or stage == STAGE_HTTP:
            return None
        if stage == STAGE_IPXE and "ipxe" in self.boot_files:
            return self.boot_files["ipxe"]
        return self.boot_files.get(ARCHITECTURES.get(request.arch), self.boot_files.get(""))

    def describe(self):
        return (f"; a DHCP server for {self.network}, leasing its addresses but "
                f"{_address_text(self.server)} (the server and router)")

    def filter(self):
        return DHCP_FILTER

    def answer(self, interface, frame, ethertype, offset, now):
        """The Answer to a DHCP client's message, or None (not one, relayed,
        for another server, over its interface's budget, or nothing to
        say). The cheap look comes first; Scapy's dissection only within
        the interface's budget (DHCP_BUDGET)."""
        if ethertype != ETH_P_IP or not from_a_station(frame, self.scope) \
                or not looks_like_dhcp(frame, offset) or not self.budget.take(interface, now):
            return None
        request = parse_dhcp_request(frame, offset)
        if request is None:
            return None
        if self.scope.capture:  # the switch's answer, if any, is in the capture
            if request.kind not in (DHCP_DISCOVER, DHCP_REQUEST, DHCP_INFORM) \
                    or request.server not in (None, self.server):
                return None
            return Answer("dhcp", DhcpExchange(request, None, IPV4_ANY), RECORDED)
        leases, client = self.leases, (interface, request.requester)
        kind, address = None, None
        if request.kind == DHCP_DISCOVER:
            address = leases.offer(client, request.requested, now, request.client_id)
            kind = address and DHCP_OFFER
        elif request.kind == DHCP_REQUEST:
            if request.server is not None and request.server != self.server:
                leases.withdraw(client, now)  # it chose another server
                return None
            address = request.requested or request.ciaddr
            if address == IPV4_ANY:
                return None
            if request.server is None and leases.lease_of(client, now) is None \
                    and address != leases.preferred(client, now):
                # INIT-REBOOT or renewing with no record: silent (RFC 2131
                # 4.3.2) unless the address is not even on this network.
                if ipaddress.ip_address(address) in self.network:
                    return None
                kind = DHCP_NAK
            elif request.server is not None:  # SELECTING: only what was offered
                lease = leases.lease_of(client, now)
                kind = DHCP_ACK if lease and lease.address == address and leases.bind(
                    client, address, now, request.client_id) else DHCP_NAK
            else:
                kind = DHCP_ACK if leases.bind(client, address, now,
                                               request.client_id) else DHCP_NAK
        elif request.kind == DHCP_RELEASE:
            if request.server in (None, self.server):
                leases.release(client, request.ciaddr, request.client_id, now)
            return None
        elif request.kind == DHCP_DECLINE:
            if request.requested and request.server in (None, self.server):
                leases.decline(client, request.requested, request.client_id, now)
            return None
        elif request.kind == DHCP_INFORM and request.ciaddr != IPV4_ANY:
            kind, address = DHCP_ACK, request.ciaddr
        if kind is None:
            return None
        address = IPV4_ANY if kind == DHCP_NAK else address
        boot_file = self._boot_file_for(request)
        reply = dhcp_reply(request, kind, address, self.server, self.network,
                           self.scope.mac_bytes, self.framing, boot_file)
        return Answer("dhcp", DhcpExchange(request, kind, address, boot_file), reply)

    def answered_by(self, answer, frame, now):
        """The switch's OFFER, ACK or NAK to the client's message (its xid,
        to its hardware address): what it gave, and the boot file named."""
        request = answer.request.request
        given = frame and parse_dhcp_answer(frame)
        if not given or given.xid != request.xid or given.client != request.requester \
                or request.kind == DHCP_DISCOVER and given.kind != DHCP_OFFER:
            return None
        address = IPV4_ANY if given.kind == DHCP_NAK else given.address
        return answer._replace(request=DhcpExchange(request, given.kind, address,
                                                    given.boot_file), reply=frame)

    def observe(self, exchange):
        """Its own exchanges, and a client's use of its lease: the Client
        whose verdict formed or changed, if any."""
        answer, now, interface = exchange.answer, exchange.stamp, exchange.link.name
        if answer is not None and answer.kind == "dhcp":
            client = self._exchanged(interface, answer.request, now)
            return (client,) if client else ()
        frame = exchange.whole
        client = self.clients.get(self.current.get((interface, frame[6:12])))
        if client is None or client.acked is None or client.used or client.stage:
            return ()
        address = socket.inet_aton(client.address)
        if self._uses(frame, address):
            client.used = True
            return (self._accepted(client, now, f"used {client.address}",
                                  now - client.acked) or client,)
        return ()

    def _exchanged(self, interface, exchanged, now):
        request, sent, address, boot_file = exchanged
        stage = request.stage
        client = self._client(interface, request.requester, now, stage)
        if client is None:
            return None
        remember(self.current, (interface, request.requester),
                 (interface, request.requester, stage))
        client.evidence.append({"time": now, "event": DHCP_NAMES[request.kind],
                                "answered": DHCP_NAMES[sent],
                                "address": _address_text(address),
                                **({"boot_file": boot_file} if boot_file else {})})
        if sent == DHCP_OFFER:
            client.address, client.offered = _address_text(address), now
            client.tentative = client.acked is None
            silent = self._silent(stage, boot_file)
            if silent:
                changed = client.verdict != NO_VERDICT
                client.verdict, client.reason = NO_VERDICT, (silent,)
                return client if changed else None
            return self._asked(client, now, "DHCPDISCOVERs", "DHCP offers")
        if sent != DHCP_ACK or request.kind != DHCP_REQUEST:
            return None
        client.address, client.acked, client.used = _address_text(address), now, False
        client.tentative = False
        self.events.publish(LEASED, interface, address, self.server, now, request.requester,
                            stage, boot_file)
        if request.server == self.server and client.offered is not None:
            offered, client.offered = client.offered, None
            return self._accepted(client, now, f"requested {client.address}", now - offered)
        return self._asked(client, now, "DHCPREQUESTs", "DHCP ACKs")

    @staticmethod
    def _silent(stage, boot_file):
        """Why a stage's silence after a plain offer says nothing about
        tags, or None if its silence is a drop."""
        if stage == STAGE_HTTP:
            return ("UEFI HTTP boot waits for an offer with a boot URL, which the tool "
                    "cannot give")
        if stage in (STAGE_EDK2, STAGE_PXE) and not boot_file:
            return (f"{stage} ignores an offer without a boot file (option 67 or 60 "
                    "PXEClient), so its silence says nothing about tags; give --boot-file")
        return None

    def verdict_of(self, interface, mac):
        client = self.clients.get(self.current.get((interface, mac)))
        return client and client.verdict

    def heard_of(self, interface, mac):
        return (interface, mac) in self.current

    @staticmethod
    def _uses(frame, address):
        """`frame` shows its sender using `address`: an ARP request for it
        or from it (the probe and announcement of RFC 5227), or IPv4 from it."""
        ethertype, offset = ethertype_and_offset(frame)
        if ethertype == ETH_P_ARP and len(frame) >= offset + 28:
            return address in (frame[offset + 14:offset + 18], frame[offset + 24:offset + 28])
        return ethertype == ETH_P_IP and frame[offset + 12:offset + 16] == address

    def lines(self):
        lines = super().lines()
        for interface, count in self.leases.refused.items():
            lines.append(f"{interface}: {count:,} DHCP offers or leases refused: its clients "
                         f"held {LEASES_PER_INTERFACE} (at most {LEASES_PER_INTERFACE} an "
                         "interface)")
        for interface, count in self.budget.over.items():
            lines.append(f"{interface}: {count:,} DHCP messages not answered: over its budget "
                         f"of {DHCP_BUDGET[1]:g} a second")
        return lines

    def to_json(self):
        return {"dhcp": {
            "clients": [client.to_json() for client in self.clients.values()],
            "leases": [{"interface": interface, "mac": str2mac(mac),
                        "address": _address_text(lease.address), "state": lease.state}
                       for (interface, mac), lease in self.leases.by_client.items()],
            "refused_at_cap": dict(self.leases.refused),
            "over_budget": dict(self.budget.over)}}


# ---------------------------------------------------------------- service: TFTP
#
# With --boot-file the tool is also a read-only TFTP server (RFC 1350, with
# the blksize, tsize and timeout options of RFC 2347-2349) for the boot files
# alone, read into memory at start: a name asked for is one of theirs or
# nothing (no path is ever opened after start, so no ".." or symbolic link
# can lead elsewhere), and a write request is refused. Every block goes
# tagged like the replies. A transfer is lock-step: a block, its
# acknowledgement, the next; a block unacknowledged goes again after the
# timeout, and the client's asking again for a block it was sent is the
# evidence that it drops them. In bytes: a block costs a slice and two
# checksums, so that a 2 MB boot file costs other guests nothing.

TFTP_PORT = 69
TFTP_RRQ, TFTP_WRQ, TFTP_DATA, TFTP_ACK, TFTP_ERROR, TFTP_OACK = 1, 2, 3, 4, 5, 6
TFTP_PORTS = (61440, 61695)  # the server's ports of its transfers (TIDs), as TFTP_FILTER passes
TFTP_BLOCK = 512             # bytes a block, unless the client asks (RFC 2348)
TFTP_BLOCK_MAX = 1468        # the largest that fits a 1,500-byte MTU whole
TFTP_TIMEOUT = 1.0           # seconds before a block goes again, unless the client asks
TFTP_RETRIES = 5             # times it goes again before the transfer is given up
TFTP_TRANSFERS = 64          # transfers under way at once, in all; one a client
TFTP_TRANSFERS_EACH = 8      # of them, on one interface (a guest that asks for long
                             # timeouts holds its own interface's, no other's)
TFTP_FILE_MAX = 64 << 20     # bytes of a boot file
TFTP_BUDGET = (8, 2.0)       # read requests an interface may make: a burst, then a second
TFTP_RETRY_WINDOW = 10.0     # seconds: a block asked for again this soon repeats the ask
IPPROTO_UDP = 17
TFTP_ERRORS = {0: "not defined", 1: "file not found", 2: "access violation",
               4: "illegal TFTP operation", 5: "unknown transfer ID", 8: "option refused"}


def udp_frame(framing, ether_dst, mac, source, destination, source_port, port, payload):
    """An IPv4 UDP datagram in a frame, in bytes: checksums computed, no
    options, TTL 64."""
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", source_port, port, length, 0) + payload
    summed = checksum(source + destination + struct.pack("!BBH", 0, IPPROTO_UDP, length) + udp)
    udp = udp[:6] + (summed or 0xFFFF).to_bytes(2, "big") + udp[8:]
    header = IPV4_HEADER.pack(0x45, 0, IPV4_HLEN + length, random.getrandbits(16), 0,
                              REPLY_TTL, IPPROTO_UDP, 0, source, destination)
    header = header[:10] + checksum(header).to_bytes(2, "big") + header[12:]
    return framing.frame(ether_dst, mac, ETH_P_IP, header + udp)


class TftpRequest(NamedTuple):
    """A client's TFTP packet to the tool, as its UDP datagram carried it."""
    client: tuple      # (IPv4 address packed, UDP port)
    port: int          # the tool's port it went to
    opcode: int
    body: bytes        # after the opcode


def parse_tftp(frame, offset, server, any_port=False):
    """The TftpRequest in `frame` if it is a whole IPv4 UDP datagram to the
    tool's address `server` (packed; None: any), to port 69 or a transfer's
    port (`any_port`: any port, reading a capture), with an opcode; else
    None."""
    header_len = ipv4_header_length(frame, offset)
    if header_len is None or frame[offset + 9] != IPPROTO_UDP or (
            frame[offset + 6] << 8 | frame[offset + 7]) & IP_FRAGMENT_BITS \
            or server is not None and frame[offset + 16:offset + 20] != server:
        return None
    total = frame[offset + 2] << 8 | frame[offset + 3]
    udp = offset + header_len
    if total < header_len + 12:
        return None
    source_port, port = struct.unpack_from("!HH", frame, udp)
    if port != TFTP_PORT and not TFTP_PORTS[0] <= port <= TFTP_PORTS[1] and not any_port:
        return None
    payload = frame[udp + 8:offset + total]
    return TftpRequest((frame[offset + 12:offset + 16], source_port), port,
                       payload[0] << 8 | payload[1], payload[2:])


def tftp_block(frame, client):
    """(the server's port, opcode, block number, the data or options) of a
    TFTP DATA or OACK in `frame` to `client` ((address packed, port)),
    reading a capture; else None."""
    ethertype, offset = ethertype_and_offset(frame)
    header_len = ethertype == ETH_P_IP and ipv4_header_length(frame, offset)
    if not header_len or frame[offset + 9] != IPPROTO_UDP \
            or frame[offset + 16:offset + 20] != client[0]:
        return None
    udp = offset + header_len
    total = frame[offset + 2] << 8 | frame[offset + 3]
    if total < header_len + 12:
        return None
    port, to = struct.unpack_from("!HH", frame, udp)
    opcode, block = struct.unpack_from("!HH", frame, udp + 8)
    if to != client[1] or opcode not in (TFTP_DATA, TFTP_OACK):
        return None
    start = udp + 12 if opcode == TFTP_DATA else udp + 10
    return port, opcode, block, frame[start:offset + total]


def tftp_read(frame):
    """`frame` holds a TFTP read request (IPv4 UDP to port 69, opcode 1)."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype != ETH_P_IP or len(frame) < offset + IPV4_HLEN + 10:
        return False
    udp = offset + (frame[offset] & 0x0F) * 4
    return frame[offset + 9] == IPPROTO_UDP and frame[udp + 2:udp + 4] == b"\x00\x45" and \
        frame[udp + 8:udp + 10] == b"\x00\x01"


def parse_read_request(body):
    """(file name, mode, options) of a read or write request's body, the
    option names lower-cased; None if it is not one (RFC 1350, 2347)."""
    fields = body.split(b"\0")
    if len(fields) < 3 or fields[-1] != b"" or len(fields) % 2 != 1:
        return None
    try:
        words = [field.decode("ascii") for field in fields[:-1]]
    except UnicodeDecodeError:
        return None
    options = {words[i].lower(): words[i + 1] for i in range(2, len(words), 2)}
    return words[0], words[1].lower(), options


def _tftp_error(code, text=None):
    return struct.pack("!HH", TFTP_ERROR, code) + (text or TFTP_ERRORS[code]).encode() + b"\0"


@dataclass
class Transfer:
    """One boot file going to one client, block by block."""
    key: tuple                     # (interface, MAC bytes): one a client
    client: tuple                  # (IPv4 address packed, UDP port)
    ether: bytes                   # the client's MAC
    port: int                      # the tool's
    name: str
    data: bytes = field(repr=False)
    size: int = TFTP_BLOCK         # the block size
    timeout: float = TFTP_TIMEOUT
    block: int = 0                 # the last one sent (0: the OACK)
    packet: bytes = field(default=b"", repr=False)  # the last frame sent, to send again
    sent_at: float = 0.0
    tries: int = 0
    started: float = 0.0
    final: int = -1                # reading a capture: the short block seen, which ends it

    @property
    def last(self):
        """The number of the last block (a short, maybe empty, one ends it)."""
        return len(self.data) // self.size + 1


class TftpServer(ClientService):
    """--boot-file: the boot files over TFTP, and each client's verdict:
    accepts when it acknowledged the last block (the file arrived); drops
    when it asks for one block again and again (three asks, each within
    TFTP_RETRY_WINDOW, each answered with the block: the blocks never reach
    it). A PXE client is expected once its lease named a boot file (LEASED):
    until it asks, it has no verdict."""

    service, window = "tftp", TFTP_RETRY_WINDOW
    answers = answers_used = "TFTP blocks"
    taken_as, sends = "acknowledgements", True
    json_keys = ("tftp",)

    def __init__(self, files, server, scope, framing, events=None):
        """`files`: name -> contents (bytes); `server`: the tool's address
        (packed), the next server its DHCP offers name."""
        super().__init__(framing, events)
        self.files, self.server, self.scope = dict(files), server, scope
        self.transfers = {}  # (interface, MAC) -> Transfer
        self.by_port = {}    # the tool's port -> Transfer
        self.stages = {}     # (interface, MAC) -> the stage its lease was for
        self.budget = Budget(*TFTP_BUDGET)
        self.refused = {}    # name asked for -> times (not served)
        self.events.subscribe(LEASED, self._leased)

    def describe(self):
        served = ", ".join(f"{name} ({len(data):,} bytes)" for name, data in self.files.items())
        return f"; TFTP for {served}, read-only"

    def filter(self):
        return TFTP_FILTER

    def _leased(self, interface, address, server, now, mac, stage, boot_file):
        """LEASED: a stage whose lease named a boot file will ask for it."""
        if not stage or not boot_file:
            return
        remember(self.stages, (interface, mac), stage)
        client = self._client(interface, mac, now, stage)
        if client is not None:
            client.address = _address_text(address)
            client.evidence.append({"time": now, "event": "lease", "boot_file": boot_file})

    # -- answering

    def answer(self, interface, frame, ethertype, offset, now):
        if ethertype != ETH_P_IP or not from_a_station(frame, self.scope):
            return None
        capture = self.scope.capture
        request = parse_tftp(frame, offset, None if capture else self.server, any_port=capture)
        if request is None:
            return None
        key = (interface, frame[6:12])
        if capture:
            return self._in_capture(key, request, now)
        if request.port == TFTP_PORT:
            if request.opcode not in (TFTP_RRQ, TFTP_WRQ) or not self.budget.take(interface, now):
                return None
            return self._requested(key, frame[6:12], request, now)
        transfer = self.by_port.get(request.port)
        if transfer is None or transfer.key != key or transfer.client != request.client:
            return None  # no transfer of this client's: no error, no reflection
        if request.opcode == TFTP_ERROR:
            self._end(transfer)
            return Answer("the transfer ended by the client", (transfer, 0, "error"), None)
        if request.opcode != TFTP_ACK or len(request.body) < 2:
            return None
        return self._acknowledged(transfer, int.from_bytes(request.body[:2], "big"), now)

    # -- reading a capture: the switch's blocks

    def _in_capture(self, key, request, now):
        """A client's read request, or its acknowledgement of a block of a
        transfer the switch began: what it awaits of the switch (the first
        block or OACK, the next block), or the last block acknowledged, or a
        block asked for again (taken: the evidence needs no answer)."""
        if request.port == TFTP_PORT and request.opcode == TFTP_RRQ:
            parsed = parse_read_request(request.body)
            if parsed is None:
                return None
            old = self.transfers.get(key)
            name = parsed[0].lstrip("/")[:64]
            again = old is not None and old.name == name and old.block <= 1
            transfer = Transfer(key, request.client, key[1], 0, name, b"", started=now)
            return Answer("tftp", (transfer, 1, "read again" if again else "read"), RECORDED)
        transfer = self.by_port.get(request.port)
        if transfer is None or transfer.key != key or transfer.client != request.client \
                or request.opcode != TFTP_ACK or len(request.body) < 2:
            return None
        block = int.from_bytes(request.body[:2], "big")
        if block == transfer.block & 0xFFFF:
            if transfer.final == transfer.block:
                self._end(transfer)
                return Answer("the last block acknowledged", (transfer, 0, "last"), None)
            return Answer("tftp", (transfer, transfer.block + 1, "next"), RECORDED)
        if block == (transfer.block - 1) & 0xFFFF:
            return Answer("a block asked for again", (transfer, transfer.block, "again"), None)
        return None

    def answered_by(self, answer, frame, now):
        """The switch's block (or OACK) that a read request or an
        acknowledgement awaits: from the server to the client's port; the
        transfer goes on from it (its port, block size, data, last block)."""
        transfer, wanted, how = answer.request
        if frame is None or transfer is None or answer.reply is None:
            return None
        given = tftp_block(frame, transfer.client)
        if given is None:
            return None
        port, opcode, block, payload = given
        if how in ("read", "read again"):
            if opcode == TFTP_OACK:
                options = parse_read_request(b"x\0octet\0" + payload)
                size = options and options[2].get("blksize", "")
                transfer.size = int(size) if size.isdigit() and int(size) >= 8 else TFTP_BLOCK
                transfer.block = 0
            elif opcode != TFTP_DATA or block != 1:
                return None
            old = self.transfers.get(transfer.key)
            if old is not None:
                self._end(old)
            transfer.port = port
            self.transfers[transfer.key], self.by_port[port] = transfer, transfer
        elif opcode != TFTP_DATA or port != transfer.port or block != wanted & 0xFFFF \
                or transfer.block != wanted - 1:
            return None
        if opcode == TFTP_DATA:
            transfer.block, transfer.data = wanted, transfer.data + payload
            if len(payload) < transfer.size:
                transfer.final = wanted
        transfer.packet = frame  # this copy answered: one after it is sent again
        return answer._replace(reply=frame)

    def sent(self, interface, frame, now):
        """A transfer's last block sent again: counted."""
        for transfer in self.transfers.values():
            given = frame is not transfer.packet and transfer.key[0] == interface and \
                tftp_block(frame, transfer.client)
            if given and given[0] == transfer.port and given[1] == TFTP_DATA \
                    and given[2] == transfer.block & 0xFFFF:
                return "resent"
        return None

    def _reply(self, transfer, payload, now):
        transfer.packet = udp_frame(self.framing, transfer.ether, self.scope.mac_bytes,
                                    self.server, transfer.client[0], transfer.port,
                                    transfer.client[1], payload)
        transfer.sent_at, transfer.tries = now, 0
        return transfer.packet

    def _requested(self, key, ether, request, now):
        """A read request (or a write request, refused): the first block or
        the OACK, or an error from a port of its own (RFC 1350: a new TID)."""
        parsed = parse_read_request(request.body)
        port = self._free_port(key)
        error = None
        if parsed is None:
            error = _tftp_error(4)
        elif request.opcode == TFTP_WRQ:
            error = _tftp_error(2, "access violation: the tool takes no file")
        elif parsed[1] != "octet":
            error = _tftp_error(0, "only octet mode")
        elif parsed[0].lstrip("/") not in self.files:
            error = _tftp_error(1)
            name = parsed[0][:64]
            if name in self.refused or len(self.refused) < GUESTS_KEPT:
                self.refused[name] = self.refused.get(name, 0) + 1
        elif port is None:
            error = _tftp_error(0, "too many transfers; try again")
        if error is not None:
            frame = udp_frame(self.framing, ether, self.scope.mac_bytes, self.server,
                              request.client[0], port or TFTP_PORT, request.client[1], error)
            return Answer("tftp", (None, 0, "refused"), frame)
        name, _, options = parsed
        old = self.transfers.get(key)
        # The same file asked for again before a block was acknowledged: the
        # first block (or the OACK) did not arrive.
        again = old is not None and old.name == name.lstrip("/") and old.block <= 1
        if old is not None:
            self._end(old)
        transfer = Transfer(key, request.client, ether, port, name.lstrip("/"),
                            self.files[name.lstrip("/")], started=now)
        agreed = self._agree(transfer, options)
        self.transfers[key], self.by_port[port] = transfer, transfer
        if agreed:
            payload = struct.pack("!H", TFTP_OACK) + b"".join(
                f"{option}\0{value}\0".encode() for option, value in agreed)
        else:
            transfer.block = 1
            payload = self._block(transfer, 1)
        return Answer("tftp", (transfer, 1, "read again" if again else "read"),
                      self._reply(transfer, payload, now))

    @staticmethod
    def _agree(transfer, options):
        """The options agreed (RFC 2347-2349), set on `transfer`."""
        agreed = []
        for option, value in options.items():
            if not value.isdigit():
                continue
            number = int(value)
            if option == "blksize" and 8 <= number <= 65464:
                transfer.size = min(number, TFTP_BLOCK_MAX)
                agreed.append((option, transfer.size))
            elif option == "tsize":
                agreed.append((option, len(transfer.data)))
            elif option == "timeout" and 1 <= number <= 255:
                transfer.timeout = float(number)
                agreed.append((option, number))
        return agreed

    @staticmethod
    def _block(transfer, number):
        data = transfer.data[(number - 1) * transfer.size:number * transfer.size]
        return struct.pack("!HH", TFTP_DATA, number & 0xFFFF) + data

    def _acknowledged(self, transfer, block, now):
        """An ACK: of the last block sent, the next (or the end); of the one
        before, the client asking again (no block goes again for it: RFC
        1123 4.2.3.1; the timeout sends it)."""
        if block == transfer.block & 0xFFFF:
            if transfer.block == transfer.last:
                self._end(transfer)
                return Answer("the last block acknowledged", (transfer, 0, "last"), None)
            transfer.block += 1
            return Answer("tftp", (transfer, transfer.block, "next"),
                          self._reply(transfer, self._block(transfer, transfer.block), now))
        if block == (transfer.block - 1) & 0xFFFF:
            return Answer("a block asked for again", (transfer, transfer.block, "again"), None)
        return None

    def _free_port(self, key):
        """A port for a new transfer of `key`'s (its old one ends), or None
        when there are as many as may be, in all or on its interface."""
        start = random.randrange(TFTP_PORTS[0], TFTP_PORTS[1] + 1)
        count = TFTP_PORTS[1] - TFTP_PORTS[0] + 1
        others = [other for other in self.transfers if other != key]
        if len(others) >= TFTP_TRANSFERS or \
                sum(other[0] == key[0] for other in others) >= TFTP_TRANSFERS_EACH:
            return None
        for step in range(count):
            port = TFTP_PORTS[0] + (start - TFTP_PORTS[0] + step) % count
            if port not in self.by_port:
                return port
        return None

    def _end(self, transfer):
        self.transfers.pop(transfer.key, None)
        self.by_port.pop(transfer.port, None)

    # -- judging

    def observe(self, exchange):
        """Its own exchanges: the read request and each acknowledgement an
        ask for the next block (a block asked for again repeats the ask);
        the last one acknowledged, the file fetched."""
        answer = exchange.answer
        if answer is None or exchange.by is not self:
            return ()
        transfer, wanted, how = answer.request
        if transfer is None or answer.kind == "the transfer ended by the client":
            return ()
        interface, mac = transfer.key
        now = exchange.stamp
        client = self._client(interface, mac, now, self.stages.get(transfer.key, ""))
        if client is None:
            return ()
        client.address = _address_text(transfer.client[0])
        if answer.kind == "the last block acknowledged":
            client.evidence.append({"time": now, "event": "fetched", "file": transfer.name,
                                    "bytes": len(transfer.data)})
            changed = self._accepted(client, now, f"fetched {transfer.name} "
                                     f"({len(transfer.data):,} bytes, {transfer.last:,} blocks)",
                                     now - transfer.started)
            return (changed,) if changed else ()
        if how in ("read", "read again"):
            client.evidence.append({"time": now, "event": "read request", "file": transfer.name,
                                    "again": how == "read again"})
        if how in ("read", "next"):
            client.asks.clear()
        changed = self._asked(client, now, f"requests for block {wanted:,} of {transfer.name}",
                              "TFTP blocks")
        return (changed,) if changed else ()

    # -- sending again

    def due(self, now):
        if not self.transfers:
            return LONGEST_WAIT
        return max(0.0, min(t.sent_at + t.timeout for t in self.transfers.values()) - now)

    def send_due(self, now, served):
        frames, decided = [], []
        for transfer in list(self.transfers.values()):
            if transfer.sent_at + transfer.timeout > now:
                continue
            if transfer.tries >= TFTP_RETRIES or transfer.key[0] not in served:
                self._end(transfer)
                record = self._stalled(transfer, now)
                if record is not None:
                    decided.append(record)
                continue
            transfer.tries += 1
            transfer.sent_at = now
            frames.append((transfer.key[0], transfer.packet, "resent"))
        return frames, decided

    def _stalled(self, transfer, now):
        """A transfer given up, its client silent: no verdict (gone, or
        dropping the blocks without asking again), unless it had one."""
        interface, mac = transfer.key
        client = self.clients.get((interface, mac, self.stages.get(transfer.key, "")))
        if client is None or client.verdict is not None:
            return None
        client.verdict, client.reason = NO_VERDICT, (
            f"it stopped acknowledging {transfer.name} at block {transfer.block:,} and "
            f"asked no more after {TFTP_RETRIES} tries: gone, or dropping the blocks",)
        return client

    def lines(self):
        lines = super().lines()
        for name, count in self.refused.items():
            lines.append(f"TFTP: {count:,} requests for {name!r}, not served (file not found)")
        return lines

    def to_json(self):
        return {"tftp": {"clients": [client.to_json() for client in self.clients.values()],
                         "files": {name: len(data) for name, data in self.files.items()},
                         "not_served": dict(self.refused)}}


# ---------------------------------------------------------------- service: Router Advertisements
#
# With --ra the tool is also the guests' router's advertisements, tagged
# like every reply: a guest's Router Solicitation is the first thing it
# asks for IPv6, and whether it takes an address in the prefix from the
# tagged advertisement is the verdict. As RFC 4861 6.2.6 asks, every answer
# waits a random time up to MAX_RA_DELAY_TIME, and answers to all nodes (to
# a soliciter without an address) are MIN_DELAY_BETWEEN_RAS apart at least;
# so are unicast answers to one soliciter. The advertisement is built once
# with Scapy's ICMPv6 ND layers; each destination gets a fresh checksum.

ND_ROUTER_SOLICIT, ND_ROUTER_ADVERT = 133, 134
ND_OPT_PREFIX_INFORMATION = 3
RA_RETRY_WINDOW = 10.0   # seconds: Linux solicits 4 s apart
RA_INITIAL = (0.0, 16.0, 32.0)  # RFC 4861 6.2.4: the first advertisements, 16 s apart
RA_INTERVAL = (200.0, 600.0)    # then MinRtrAdvInterval..MaxRtrAdvInterval
RA_VALID, RA_PREFERRED = 86400, 14400  # the prefix's lifetimes, seconds (radvd's)
MIN_DELAY_BETWEEN_RAS = 3.0  # seconds (RFC 4861 10)
MAX_RA_DELAY_TIME = 0.5      # seconds
UNICAST_RA_BUDGET = (4, 1.0)  # unicast answers an interface gets: a burst, then a second;
                              # beyond, its soliciters are answered to all nodes


def router_advertisement_message(scope, prefix, lifetime, managed=False):
    """The ICMPv6 Router Advertisement for `prefix` (on-link, autonomous)
    from the tool, its checksum zero, built with Scapy's layers; `managed`
    (--dhcp6 too): the M and O flags set, so that hosts ask DHCPv6."""
    message = ICMPv6ND_RA(chlim=REPLY_TTL, routerlifetime=lifetime, cksum=0,
                          M=int(managed), O=int(managed)) / \
        ICMPv6NDOptSrcLLAddr(lladdr=scope.mac) / \
        ICMPv6NDOptPrefixInfo(prefixlen=prefix.prefixlen, L=1, A=1, validlifetime=RA_VALID,
                              preferredlifetime=RA_PREFERRED,
                              prefix=str(prefix.network_address))
    return bytes(message)


def router_advertisement(scope, framing, message, destination, ether_dst):
    """`message` (router_advertisement_message()) to `destination`, from the
    tool's link-local address, hop limit 255."""
    message = bytearray(message)
    message[2:4] = _icmpv6_checksum(scope.link_local, destination, message).to_bytes(2, "big")
    header = _ipv6_header(0, len(message), ND_HOP_LIMIT, scope.link_local, destination)
    return framing.frame(ether_dst, scope.mac_bytes, ETH_P_IPV6, header + bytes(message))


def parse_router_advertisement(frame):
    """(the first /64 on-link prefix it advertises or None, its router
    lifetime) if `frame` is a valid Router Advertisement, else None."""
    ethertype, offset = ethertype_and_offset(frame)
    message = ethertype == ETH_P_IPV6 and _icmpv6_message(frame, offset)
    if not message or len(message) < 16 or message[0] != ND_ROUTER_ADVERT \
            or message[1] != 0 or frame[offset + 7] != ND_HOP_LIMIT:
        return None
    options, prefix = message[16:], None
    while len(options) >= 8 and options[1]:
        if options[0] == ND_OPT_PREFIX_INFORMATION and options[1] == 4 and prefix is None \
                and options[2] == 64:
            prefix = ipaddress.IPv6Network((options[16:32], 64), strict=False)
        options = options[options[1] * 8:]
    return prefix, message[6] << 8 | message[7]


class RouterSolicitation(NamedTuple):
    requester: bytes   # the Ethernet source
    source: bytes      # the IPv6 source, packed (:: before the guest has an address)


def parse_router_solicitation(frame, offset, message):
    """A valid Router Solicitation (RFC 4861 6.1.1), else None."""
    if len(message) < 8 or message[0] != ND_ROUTER_SOLICIT or message[1] != 0 \
            or frame[offset + 7] != ND_HOP_LIMIT:
        return None
    source = frame[offset + 8:offset + 24]
    options = _options(message[8:])
    if options is None or source == IN6_UNSPECIFIED and ND_OPT_SOURCE_LLADDR in options:
        return None
    return RouterSolicitation(frame[6:12], source)


def _link_local_unicast(packed):
    """fe80::/10, as a soliciter with its link-local address sends from."""
    return packed[0] == 0xFE and packed[1] & 0xC0 == 0x80


class Advertiser(ClientService):
    """--ra: Router Advertisements for the --ip /64, in answer to each
    Router Solicitation (unicast to a soliciter with a link-local address,
    as radvd's AdvRASolicitedUnicast does; to all nodes for one from ::) and
    unsolicited to all nodes at RFC 4861's pace; each soliciter's verdict:
    accepts when it then takes an address in the prefix (its DAD for it, or
    a frame from it), drops when its solicitations go on although each was
    answered. A solicitation is taken at once and answered a moment later
    (send_due), within RFC 4861 6.2.6's bounds; one that comes before the
    answer to the last has gone is covered by it, no new ask."""

    service, window = "ra", RA_RETRY_WINDOW
    answers = answers_used = "Router Advertisements"
    awaited = "no Router Solicitation nor an address taken from the prefix"
    every_guest = True
    taken_as, sends = "answered_later", True
    json_keys = ("ra",)

    def __init__(self, prefix, lifetime, scope, framing, events=None, managed=False):
        super().__init__(framing, events)
        self.counted = ()  # its answers go later: counted as advertisements
        self.prefix, self.lifetime, self.scope = prefix, lifetime, scope
        self.message = router_advertisement_message(scope, prefix, lifetime, managed)
        self.next_at = {}     # interface -> when its next unsolicited advertisement is due
        self.count = {}       # interface -> unsolicited advertisements sent
        self.advertised = {}  # interface -> when the last to all nodes went
        self.multicast_at = {}  # interface -> when the answer to all nodes due goes
        self.unicast_at = {}    # (interface, MAC) -> (when, destination): an answer due
        self.answered = {}      # (interface, MAC) -> when its last answer goes or went
        self.unicast_budget = Budget(*UNICAST_RA_BUDGET)
        self.started = set()

    def describe(self):
        return (f"; Router Advertisements for {self.prefix} (router lifetime "
                f"{self.lifetime} s)")

    def filter(self):
        return SOLICITATION_FILTER

    def answer(self, interface, frame, ethertype, offset, now):
        """A valid Router Solicitation from a station is taken, its answer
        due within MAX_RA_DELAY_TIME (or when the bounds allow): unicast to
        a link-local source (within the interface's UNICAST_RA_BUDGET), to
        all nodes from :: or another unicast source (or past the budget);
        never to a multicast, loopback or other source."""
        if ethertype != ETH_P_IPV6 or not from_a_station(frame, self.scope) \
                or len(frame) < offset + IPV6_HLEN + 8 or frame[offset + 6] != IPPROTO_ICMPV6 \
                or frame[offset + IPV6_HLEN] != ND_ROUTER_SOLICIT:
            return None
        message = _icmpv6_message(frame, offset)
        solicitation = message and parse_router_solicitation(frame, offset, message)
        if solicitation is None:
            return None
        source, key = solicitation.source, (interface, solicitation.requester)
        if source != IN6_UNSPECIFIED and not _is_unicast(source):
            return None
        if self.scope.capture:  # the switch's advertisement, if any, is in the capture
            return Answer("answered a moment later", (solicitation, None, False), RECORDED)
        delay = random.uniform(0, MAX_RA_DELAY_TIME)
        last = self.answered.get(key)
        if last is not None and now <= last:
            at = last  # the answer due covers it
        elif _link_local_unicast(source) and (key in self.clients or self.book.has_room(interface)) \
                and self.unicast_budget.take(interface, now):
            at = max(now + delay, (last or -MIN_DELAY_BETWEEN_RAS) + MIN_DELAY_BETWEEN_RAS)
            self.unicast_at[key] = (at, source)
        else:
            at = self.multicast_at.get(interface)
            if at is None:
                at = max(now + delay, self.advertised.get(interface, -MIN_DELAY_BETWEEN_RAS)
                         + MIN_DELAY_BETWEEN_RAS)
                self.multicast_at[interface] = at
        covered = last is not None and now <= last
        return Answer("answered a moment later", (solicitation, at, covered), None)

    def observe(self, exchange):
        """Its own exchanges, and a guest taking an address in the prefix:
        the Client whose verdict formed or changed, if any."""
        answer, now, interface = exchange.answer, exchange.stamp, exchange.link.name
        if answer is not None and exchange.by is self:
            (solicitation, at, covered) = answer.request
            key = (interface, solicitation.requester)
            if covered:
                return ()
            remember(self.answered, key, at)  # when the answer to its last ask goes
            client = self._client(interface, solicitation.requester, now)
            if client is None:
                return ()
            client.acked = client.acked or now
            client.evidence.append({"time": now, "event": "Router Solicitation",
                                    "answered": "Router Advertisement", "at": at})
            changed = self._asked(client, now, "Router Solicitations", "Router Advertisements")
            client.answered_at = at
            return (changed,) if changed else ()
        frame = exchange.whole
        client = self.clients.get((interface, frame[6:12]))
        if client is not None and (client.acked is None or client.verdict == ACCEPTS):
            return ()
        address = self._address_in_prefix(frame)
        if address is None:
            return ()
        if client is None:  # it took the prefix from an unsolicited advertisement
            if interface not in self.advertised:
                return ()
            client = self._client(interface, frame[6:12], now)
            if client is None:
                return ()
            client.answered_at = client.acked = self.advertised[interface]
        client.address = _address_text(address)
        client = self._accepted(client, now, f"took {client.address}",
                                max(0.0, now - client.answered_at))
        return (client,) if client else ()

    def answered_by(self, answer, frame, now):
        """The switch's Router Advertisement to the guest, or to all nodes,
        answers its solicitation (its first since the last answer); at the
        capture's end, the solicitation counts as answered, as the tool
        counts one when its answer is due (a moment later)."""
        solicitation = answer.request[0]
        if frame is None:
            return answer._replace(request=(solicitation, now, False), reply=None)
        if frame[:6] not in (solicitation.requester, IN6_ALL_NODES_MAC) \
                or parse_router_advertisement(frame) is None:
            return None
        return answer._replace(request=(solicitation, now, False), reply=frame)

    def sent(self, interface, frame, now):
        """A Router Advertisement to all nodes: a guest may take the prefix
        from it unasked."""
        if frame[:6] != IN6_ALL_NODES_MAC or parse_router_advertisement(frame) is None:
            return None
        remember(self.advertised, interface, now)
        return "advertisements"

    def _address_in_prefix(self, frame):
        """The address in the prefix that `frame` shows its sender taking:
        the target of its DAD solicitation, or its IPv6 source."""
        ethertype, offset = ethertype_and_offset(frame)
        if ethertype != ETH_P_IPV6 or len(frame) < offset + IPV6_HLEN:
            return None
        source = frame[offset + 8:offset + 24]
        message = _icmpv6_message(frame, offset) if source == IN6_UNSPECIFIED else None
        candidate = message[8:24] if message and message[0] == ND_NEIGHBOR_SOLICIT \
            and len(message) >= 24 else source
        return candidate if ipaddress.ip_address(candidate) in self.prefix else None

    # -- what goes out: the answers, and the unsolicited advertisements

    def _serving(self, served, now):
        for interface in served - self.started:
            self.started.add(interface)
            self.next_at[interface], self.count[interface] = now, 0

    def due(self, now):
        times = [*self.next_at.values(), *self.multicast_at.values(),
                 *(at for at, _ in self.unicast_at.values())]
        return max(0.0, min(times) - now) if times else LONGEST_WAIT

    def send_due(self, now, served):
        self._serving(served, now)
        frames = []
        if self.due(now) > 0:
            return frames, []
        for key, (at, destination) in list(self.unicast_at.items()):
            if at <= now:
                del self.unicast_at[key]
                if key[0] in served:
                    frames.append((key[0], router_advertisement(
                        self.scope, self.framing, self.message, destination, key[1]), "advertisements"))
        for interface, at in list(self.multicast_at.items()):
            if at <= now:
                del self.multicast_at[interface]
                if interface in served:
                    frames.append((interface, self._to_all_nodes(interface, now),
                                   "advertisements"))
        for interface, at in list(self.next_at.items()):
            if at > now or interface not in served:
                continue
            spaced = self.advertised.get(interface, -MIN_DELAY_BETWEEN_RAS) + MIN_DELAY_BETWEEN_RAS
            if spaced > now:  # an answer to all nodes went a moment ago
                self.next_at[interface] = spaced
                continue
            self.multicast_at.pop(interface, None)  # this one answers that solicitation too
            frames.append((interface, self._to_all_nodes(interface, now), "advertisements"))
            sent = self.count[interface] = self.count[interface] + 1
            if sent < len(RA_INITIAL):
                self.next_at[interface] = now + RA_INITIAL[sent] - RA_INITIAL[sent - 1]
            else:
                self.next_at[interface] = now + random.uniform(*RA_INTERVAL)
        return frames, []

    def _to_all_nodes(self, interface, now):
        self.advertised[interface] = now
        return router_advertisement(self.scope, self.framing, self.message, IN6_ALL_NODES,
                                    IN6_ALL_NODES_MAC)

    def to_json(self):
        return {"ra": [client.to_json() for client in self.clients.values()]}


# ---------------------------------------------------------------- service: DHCPv6
#
# With --dhcp6 the tool is also the guests' DHCPv6 server (RFC 8415), tagged
# like every reply: addresses (IA_NA) from the --ip IPv6 /64 and, with
# --delegate, prefixes (IA_PD): what a router or CPE asks its ISP for on its
# WAN port. The verdict is DHCP's: a Request naming the tool's DUID after a
# tagged Advertise accepts it; Solicits that go on although each was
# answered drop it. The options are read in bytes (a bounded walk) after a
# cheap look and within the interface's budget; the answers are built with
# Scapy's DHCPv6 layers.

DHCP6_CLIENT_PORT, DHCP6_SERVER_PORT = 546, 547
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY = 1, 2, 3, 4, 5, 6, 7
RELEASE, DECLINE, INFORMATION_REQUEST = 8, 9, 11
DHCP6_NAMES = {SOLICIT: "Solicit", ADVERTISE: "Advertise", REQUEST: "Request",
               CONFIRM: "Confirm", RENEW: "Renew", REBIND: "Rebind", REPLY: "Reply",
               RELEASE: "Release", DECLINE: "Decline",
               INFORMATION_REQUEST: "Information-request"}
OPTION_CLIENTID, OPTION_SERVERID, OPTION_IA_NA, OPTION_IAADDR = 1, 2, 3, 5
OPTION_RAPID_COMMIT, OPTION_IA_PD, OPTION_IAPREFIX = 14, 25, 26
STATUS_SUCCESS, STATUS_NO_ADDRS, STATUS_NOT_ON_LINK, STATUS_NO_PREFIX = 0, 2, 4, 6
# RFC 8415 16: which messages carry a Server Identifier (True), none (False).
DHCP6_SERVER_ID = {SOLICIT: False, REQUEST: True, CONFIRM: False, RENEW: True,
                   REBIND: False, RELEASE: True, DECLINE: True, INFORMATION_REQUEST: None}
DHCP6_PREFERRED, DHCP6_VALID = 3600, 7200  # seconds: an address's or prefix's lifetimes
DHCP6_T1, DHCP6_T2 = 1800, 2880            # renew and rebind: RFC 8415's 0.5 and 0.8
DHCP6_RETRY_WINDOW = 40.0  # seconds: Solicits go 1, 2, 4, 8... s apart (RFC 8415 15)
DHCP6_RETRANSMIT_MIN = 0.9  # seconds: the soonest a client sends a message again (IRT less
                            # RAND's 10%); a new transaction sooner is a client starting over
DHCP6_BUDGET = (32, 8.0)   # DHCPv6 messages an interface may have parsed: a burst, a second
BINDINGS_PER_INTERFACE = 32  # addresses and prefixes held for one interface's clients
IAS_PER_MESSAGE = 4        # IA_NAs and IA_PDs answered in one message, each
DUID_MAX = 130             # RFC 8415 11.1: a DUID is 128 octets at most, its type 2 more
DELEGATED_LENGTH = 56      # --delegate's default prefix length handed out


def looks_like_dhcp6(frame, offset):
    """The cheap look, in bytes: an IPv6 UDP datagram from a link-local
    address to port 547, whole, holding a client's message type."""
    end = offset + IPV6_HLEN
    if len(frame) < end + 12 or frame[offset] >> 4 != 6 or frame[offset + 6] != IPPROTO_UDP \
            or not _link_local_unicast(frame[offset + 8:offset + 24]):
        return False
    payload_len = frame[offset + 4] << 8 | frame[offset + 5]
    return (len(frame) >= end + payload_len and payload_len >= 12
            and frame[end + 2:end + 4] == DHCP6_SERVER_PORT.to_bytes(2, "big")
            and frame[end + 4] << 8 | frame[end + 5] == payload_len
            and frame[end + 8] in DHCP6_SERVER_ID)


def dhcp6_options(data):
    """code -> [values] of a DHCPv6 options area, in order; None if one runs
    past the end. A bounded walk: a frame holds a few hundred at most."""
    options, i = {}, 0
    while i < len(data):
        if i + 4 > len(data):
            return None
        code, length = struct.unpack_from("!HH", data, i)
        value = data[i + 4:i + 4 + length]
        if len(value) != length:
            return None
        options.setdefault(code, []).append(value)
        i += 4 + length
    return options


class Dhcp6Request(NamedTuple):
    requester: bytes    # the Ethernet source
    source: bytes       # its link-local address, packed: where the answer goes
    kind: int           # the message type
    trid: int           # transaction ID
    client_id: bytes    # the Client Identifier option, whole: echoed as it came
    server_id: Optional[bytes]  # the Server Identifier's DUID, or None
    ia_na: tuple        # IAIDs (int) of its IA_NAs, IAS_PER_MESSAGE at most
    ia_pd: tuple        # ... of its IA_PDs
    rapid_commit: bool
    addresses: tuple    # (IAID, packed address) named in its IA_NAs
    prefixes: tuple     # (IAID, packed prefix, length) named in its IA_PDs


def _ia_contents(values, inner):
    """[(IAID, [inner option values])] of IA_NA or IA_PD option values."""
    found = []
    for value in values[:IAS_PER_MESSAGE]:
        options = dhcp6_options(value[12:]) if len(value) >= 12 else None
        if options is None:
            return None
        found.append((int.from_bytes(value[:4], "big"), options.get(inner, [])))
    return found


def parse_dhcp6_request(frame, offset):
    """A client's DHCPv6 message to a server, valid as RFC 8415 16 asks
    (a Client Identifier; a Server Identifier where one belongs and none
    elsewhere); else None."""
    if not looks_like_dhcp6(frame, offset):
        return None
    end = offset + IPV6_HLEN
    payload_len = frame[offset + 4] << 8 | frame[offset + 5]
    message = frame[end + 8:end + payload_len]
    options = dhcp6_options(message[4:])
    if options is None:
        return None
    kind = message[0]
    client_ids, server_ids = options.get(OPTION_CLIENTID, []), options.get(OPTION_SERVERID, [])
    if len(client_ids) > 1 or len(server_ids) > 1 or (
            kind != INFORMATION_REQUEST and not client_ids):
        return None
    if DHCP6_SERVER_ID[kind] is not None and bool(server_ids) != DHCP6_SERVER_ID[kind]:
        return None
    if any(not 2 <= len(duid) <= DUID_MAX for duid in client_ids + server_ids):
        return None
    na = _ia_contents(options.get(OPTION_IA_NA, []), OPTION_IAADDR)
    pd = _ia_contents(options.get(OPTION_IA_PD, []), OPTION_IAPREFIX)
    if na is None or pd is None or kind == INFORMATION_REQUEST and (na or pd):
        return None
    addresses = tuple((iaid, value[:16]) for iaid, values in na for value in values
                      if len(value) >= 24)
    prefixes = tuple((iaid, value[9:25], value[8]) for iaid, values in pd for value in values
                     if len(value) >= 25 and value[8] <= 128)
    client_id = b""
    if client_ids:
        duid = client_ids[0]
        client_id = struct.pack("!HH", OPTION_CLIENTID, len(duid)) + duid
    return Dhcp6Request(frame[6:12], frame[offset + 8:offset + 24], kind,
                        int.from_bytes(message[1:4], "big"), client_id,
                        server_ids[0] if server_ids else None,
                        tuple(iaid for iaid, _ in na), tuple(iaid for iaid, _ in pd),
                        OPTION_RAPID_COMMIT in options, addresses, prefixes)


class Dhcp6Answer(NamedTuple):
    """A server's Advertise or Reply, as a capture holds it (-r)."""
    client: bytes       # the Ethernet destination
    kind: int           # ADVERTISE or REPLY
    trid: int
    granted: tuple      # (option, IAID, value) as Dhcp6Exchange has them


def parse_dhcp6_answer(frame):
    """The Dhcp6Answer in `frame` if it is a server's Advertise or Reply
    (UDP from port 547 to 546), else None: a bounded walk in bytes."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype != ETH_P_IPV6 or len(frame) < offset + IPV6_HLEN + 12 \
            or frame[offset + 6] != IPPROTO_UDP:
        return None
    end = offset + IPV6_HLEN
    payload_len = frame[offset + 4] << 8 | frame[offset + 5]
    message = frame[end + 8:end + payload_len]
    if frame[end:end + 4] != struct.pack("!HH", DHCP6_SERVER_PORT, DHCP6_CLIENT_PORT) \
            or len(message) < 4 or message[0] not in (ADVERTISE, REPLY):
        return None
    options = dhcp6_options(message[4:])
    na = options and _ia_contents(options.get(OPTION_IA_NA, []), OPTION_IAADDR)
    pd = options and _ia_contents(options.get(OPTION_IA_PD, []), OPTION_IAPREFIX)
    if na is None or pd is None:
        return None
    granted = tuple((OPTION_IA_NA, iaid, value[:16]) for iaid, values in na
                    for value in values if len(value) >= 24) + tuple(
        (OPTION_IA_PD, iaid, value[9:25] + value[8:9]) for iaid, values in pd
        for value in values if len(value) >= 25 and value[8] <= 128)
    return Dhcp6Answer(frame[:6], message[0], int.from_bytes(message[1:4], "big"), granted)


def server_duid(mac):
    """The tool's DUID: DUID-LL (type 3) of its MAC, Ethernet (1)."""
    return b"\x00\x03\x00\x01" + mac


def dhcp6_reply(request, kind, granted, refused, scope, framing, status=None):
    """The Advertise or Reply to `request`, built with Scapy's layers, from
    the tool's link-local address to the client's: the Client Identifier as
    it came, the tool's DUID-LL, preference 255 in an Advertise (the client
    need not wait for others), Rapid Commit in a Reply to a Solicit, an
    IA_NA or IA_PD per IA `granted` ((OPTION_IA_NA or OPTION_IA_PD, IAID,
    packed value)) and an empty one with its status per IA `refused`, and
    `status` (a code) for the message if given."""
    options = DHCP6OptServerId(duid=DUID_LL(lladdr=scope.mac))
    if kind == ADVERTISE:
        options /= DHCP6OptPref(prefval=255)
    if kind == REPLY and request.kind == SOLICIT:
        options /= DHCP6OptRapidCommit()
    for option, iaid, value in granted:
        if option == OPTION_IA_NA:
            options /= DHCP6OptIA_NA(iaid=iaid, T1=DHCP6_T1, T2=DHCP6_T2, ianaopts=[
                DHCP6OptIAAddress(addr=_address_text(value[:16]), preflft=DHCP6_PREFERRED,
                                  validlft=DHCP6_VALID)])
        else:
            options /= DHCP6OptIA_PD(iaid=iaid, T1=DHCP6_T1, T2=DHCP6_T2, iapdopt=[
                DHCP6OptIAPrefix(preflft=DHCP6_PREFERRED, validlft=DHCP6_VALID,
                                 plen=value[16], prefix=_address_text(value[:16]))])
    for option, iaid in refused:
        code = STATUS_NO_ADDRS if option == OPTION_IA_NA else STATUS_NO_PREFIX
        text = "no addresses available" if option == OPTION_IA_NA else "no prefix available"
        cls = DHCP6OptIA_NA if option == OPTION_IA_NA else DHCP6OptIA_PD
        sub = "ianaopts" if option == OPTION_IA_NA else "iapdopt"
        options /= cls(iaid=iaid, **{sub: [DHCP6OptStatusCode(statuscode=code,
                                                              statusmsg=text)]})
    if status is not None:
        options /= DHCP6OptStatusCode(statuscode=status, statusmsg={
            STATUS_SUCCESS: "success", STATUS_NOT_ON_LINK: "not on link"}.get(status, ""))
    head = (DHCP6_Advertise if kind == ADVERTISE else DHCP6_Reply)(trid=request.trid)
    message = bytes(head) + request.client_id + bytes(options)
    packet = IPv6(src=_address_text(scope.link_local), dst=_address_text(request.source),
                  hlim=REPLY_TTL) / UDP(sport=DHCP6_SERVER_PORT, dport=DHCP6_CLIENT_PORT) / \
        message
    return framing.frame(request.requester, scope.mac_bytes, ETH_P_IPV6, bytes(packet))


@dataclass
class Binding:
    """An address or prefix held for one IA of one client."""
    value: bytes        # packed address; for a prefix, its 16 bytes and its length
    until: float
    bound: bool         # requested (a Reply), not only advertised


class Bindings:
    """The addresses (IA_NA) and prefixes (IA_PD) the DHCPv6 server holds,
    in memory, bounded as DHCP's Leases are: an IA is (interface, MAC, kind,
    IAID), so a guest names only its own; a MAC's hash picks where its
    search starts (the same address and prefix again, also after a
    restart); one interface's clients hold BINDINGS_PER_INTERFACE at most,
    all of them LEASES_KEPT, the oldest advertised one making way first."""

    def __init__(self, network, own, delegate, holder=None):
        """`network`: the IA_NA /64 or None; `own`: the tool's address in it
        (never handed out); `delegate`: (IPv6Network, length) or None;
        `holder`: address -> IA of the addresses bound (the Scope's `leased`)."""
        self.network, self.own, self.delegate = network, own, delegate
        self.by_ia = {}      # IA -> Binding, the most recent last
        self.holder = {}     # value -> IA
        self.leased = {} if holder is None else holder
        self.on = {}         # interface -> {IA: None}
        self.declined = {}   # value -> until
        self.refused = {}    # interface -> IAs refused at its cap

    def _drop(self, ia):
        binding = self.by_ia.pop(ia)
        if self.holder.get(binding.value) == ia:
            del self.holder[binding.value]
            self.leased.pop(binding.value[:16] if ia[2] == OPTION_IA_NA else None, None)
        held = self.on.get(ia[0])
        if held is not None:
            held.pop(ia, None)
            if not held:
                del self.on[ia[0]]

    def of(self, ia, now):
        binding = self.by_ia.get(ia)
        if binding is not None and binding.until < now:
            self._drop(ia)
            return None
        return binding

    def _candidates(self, ia):
        """Where `ia`'s search goes, in order: hash-picked addresses in the
        /64, or prefixes of the delegated length in --delegate's."""
        seed = hashlib.sha256(ia[1] + ia[3].to_bytes(4, "big") + bytes([ia[2]])).digest()
        start = int.from_bytes(seed[:8], "big")
        if ia[2] == OPTION_IA_NA:
            if self.network is None:
                return
            base = self.network.network_address.packed[:8]
            for step in range(LEASES_KEPT + 2):
                iid = hashlib.sha256(seed + step.to_bytes(4, "big")).digest()[:8]
                if int.from_bytes(iid, "big") > 0xFFFF:  # not ::, nor the low ones kept
                    yield base + iid                     # for routers (ADDR::1 and such)
            return
        if self.delegate is None:
            return
        network, length = self.delegate
        count = 1 << (length - network.prefixlen)
        first = int(network.network_address)
        for step in range(min(count, LEASES_KEPT + 2)):
            value = first + ((start + step) % count << (128 - length))
            yield value.to_bytes(16, "big") + bytes([length])

    def _free(self, value, ia, now):
        if value[:16] == self.own or self.declined.get(value, 0) > now:
            return False
        holder = self.holder.get(value)
        return holder is None or holder == ia or self.of(holder, now) is None

    def assign(self, ia, now, bound):
        """The value `ia` holds (advertised, or `bound`), kept or found;
        None if there is none, or its interface is at its cap."""
        binding = self.of(ia, now)
        value = binding.value if binding else next(
            (v for v in self._candidates(ia) if self._free(v, ia, now)), None)
        if value is None or not self._make_room(ia, now):
            return None
        bound = bound or bool(binding and binding.bound)
        self.by_ia.pop(ia, None)
        self.by_ia[ia] = Binding(value, now + (DHCP6_VALID if bound else OFFER_HELD), bound)
        self.holder[value] = ia
        if bound and ia[2] == OPTION_IA_NA:
            self.leased[value[:16]] = (ia[0], ia[1])
        self.on.setdefault(ia[0], {})[ia] = None
        return value

    def _make_room(self, ia, now):
        if ia in self.by_ia:
            return True
        held = self.on.get(ia[0], {})
        for other in list(held):
            self.of(other, now)
        held = self.on.get(ia[0], {})
        if len(held) >= BINDINGS_PER_INTERFACE:
            advertised = [other for other in held if not self.by_ia[other].bound]
            if not advertised:
                self.refused[ia[0]] = self.refused.get(ia[0], 0) + 1
                return False
            self._drop(advertised[0])
        if len(self.by_ia) >= LEASES_KEPT:
            victims = [other for other, binding in self.by_ia.items()
                       if binding.until < now or not binding.bound]
            if not victims:
                self.refused[ia[0]] = self.refused.get(ia[0], 0) + 1
                return False
            self._drop(victims[0])
        return True

    def release(self, ia, value, now, declined=False):
        """Release (or Decline): `ia`'s binding goes if it holds `value`; a
        declined address is not handed out for DECLINED_FOR."""
        binding = self.of(ia, now)
        if binding is None or binding.value[:16] != value[:16]:
            return
        self._drop(ia)
        if declined and sum(1 for until in self.declined.values() if until > now) \
                < DECLINED_KEPT:
            remember(self.declined, binding.value, now + DECLINED_FOR, DECLINED_KEPT)


def _ia_text(value):
    """A granted address, or prefix with its length, as text."""
    text = _address_text(value[:16])
    return f"{text}/{value[16]}" if len(value) > 16 else text


class Dhcp6Exchange(NamedTuple):
    request: Dhcp6Request
    sent: int           # ADVERTISE or REPLY
    granted: tuple      # (option, IAID, value) handed out


class Dhcp6Server(ClientService):
    """--dhcp6: addresses and delegated prefixes, and each client's verdict:
    accepts when it requests what a tagged Advertise offered, naming the
    tool's DUID (or, after a Rapid Commit Reply, uses the address: its DAD
    or a frame from it; or renews); drops when its Solicits (or Requests)
    go on although each was answered. Rapid Commit is honoured for a
    Solicit with an IA_NA, whose use shows on the wire; a Solicit for a
    prefix alone gets an Advertise (RFC 8415 18.3.1 lets the server
    choose), so that its Request is the evidence."""

    service, window = "dhcp6", DHCP6_RETRY_WINDOW
    answers, answers_used = "DHCPv6 Advertises", "DHCPv6 Advertises and Replies"
    awaited = "no DHCPv6 Solicit"
    json_keys, every_guest, held = ("dhcp6",), True, ("bindings",)

    def __init__(self, network, own, delegate, scope, framing, events=None):
        super().__init__(framing, events)
        self.network, self.delegate, self.scope = network, delegate, scope
        self.duid = server_duid(scope.mac_bytes)
        self.bindings = Bindings(network, own, delegate, scope.leased)
        self.budget = Budget(*DHCP6_BUDGET)

    def describe(self):
        what = [f"addresses in {self.network}"] if self.network else []
        if self.delegate:
            what.append(f"/{self.delegate[1]} prefixes of {self.delegate[0]}")
        return f"; a DHCPv6 server for {' and '.join(what)} (DUID-LL {self.scope.mac})"

    def filter(self):
        return DHCP6_FILTER

    def answer(self, interface, frame, ethertype, offset, now):
        """The Advertise or Reply to a client's message, or None (not one,
        for another server, over its interface's budget)."""
        if ethertype != ETH_P_IPV6 or not from_a_station(frame, self.scope) \
                or not looks_like_dhcp6(frame, offset) or not self.budget.take(interface, now):
            return None
        request = parse_dhcp6_request(frame, offset)
        if request is not None and self.scope.capture:  # the switch's answer: in the capture
            return Answer("dhcp6", Dhcp6Exchange(request, None, ()), RECORDED)
        if request is None or request.server_id not in (None, self.duid):
            return None
        kind, client = request.kind, (interface, request.requester)
        granted, refused, status, sent = [], [], None, REPLY
        if kind in (SOLICIT, REQUEST, RENEW, REBIND):
            bound = kind != SOLICIT or (request.rapid_commit and bool(request.ia_na))
            sent = REPLY if bound else ADVERTISE
            for option, iaids in ((OPTION_IA_NA, request.ia_na), (OPTION_IA_PD, request.ia_pd)):
                for iaid in iaids:
                    value = self.bindings.assign((*client, option, iaid), now, bound)
                    if value is None:
                        refused.append((option, iaid))
                    else:
                        granted.append((option, iaid, value))
        elif kind in (RELEASE, DECLINE):
            for iaid, address in request.addresses:
                self.bindings.release((*client, OPTION_IA_NA, iaid), address, now,
                                      declined=kind == DECLINE)
            for iaid, prefix, length in request.prefixes:
                self.bindings.release((*client, OPTION_IA_PD, iaid), prefix, now)
            status = STATUS_SUCCESS
        elif kind == CONFIRM:
            if not request.addresses:
                return None  # RFC 8415 18.3.3: nothing to confirm, no answer
            on_link = self.network is not None and all(
                ipaddress.ip_address(address) in self.network for _, address in request.addresses)
            status = STATUS_SUCCESS if on_link else STATUS_NOT_ON_LINK
        reply = dhcp6_reply(request, sent, granted, refused, self.scope, self.framing, status)
        return Answer("dhcp6", Dhcp6Exchange(request, sent, tuple(granted)), reply)

    def answered_by(self, answer, frame, now):
        """The switch's Advertise or Reply to the client (its transaction
        ID, to its MAC): what it granted."""
        request = answer.request.request
        given = frame and parse_dhcp6_answer(frame)
        if not given or given.trid != request.trid or given.client != request.requester \
                or given.kind == ADVERTISE and request.kind != SOLICIT:
            return None
        return answer._replace(request=Dhcp6Exchange(request, given.kind, given.granted),
                               reply=frame)

    def observe(self, exchange):
        answer, now, interface = exchange.answer, exchange.stamp, exchange.link.name
        if answer is not None and answer.kind == "dhcp6":
            client = self._exchanged(interface, answer.request, now)
            return (client,) if client else ()
        frame = exchange.whole
        client = self.clients.get((interface, frame[6:12]))
        if client is None or client.acked is None or client.used or not client.holds:
            return ()
        used = self._uses(frame, client.holds)
        if used is None:
            return ()
        client.used = True
        return (self._accepted(client, now, f"used {_address_text(used)}",
                               now - client.acked) or client,)

    def _exchanged(self, interface, exchanged, now):
        request, sent, granted = exchanged
        kind = request.kind
        client = self._client(interface, request.requester, now)
        if client is None:
            return None
        what = ", ".join(_ia_text(value) for _, _, value in granted)
        client.evidence.append({"time": now, "event": DHCP6_NAMES[kind],
                                "answered": DHCP6_NAMES[sent],
                                "granted": [_ia_text(value) for _, _, value in granted]})
        if what:
            client.address = what
        if kind == SOLICIT and request.trid != client.trid and client.answered_at is not None \
                and now - client.answered_at < DHCP6_RETRANSMIT_MIN:
            client.asks.clear()  # not a retransmission: a client (re)starting, as networkd does
        client.trid = request.trid
        if kind == SOLICIT and sent == ADVERTISE:
            client.offered, client.tentative = now, client.acked is None
            return self._asked(client, now, "Solicits", "DHCPv6 Advertises")
        if kind == SOLICIT:  # Rapid Commit: the Reply's address in use is the evidence
            client.acked, client.tentative, client.used = now, False, False
            client.holds = tuple(value[:16] for option, _, value in granted
                                 if option == OPTION_IA_NA)
            return self._asked(client, now, "Solicits", "DHCPv6 Replies")
        if kind == INFORMATION_REQUEST:
            changed = self._asked(client, now, "Information-requests", "DHCPv6 Replies")
            if changed is None and client.verdict is None:
                client.verdict, client.reason = NO_VERDICT, (
                    "it sent only Information-requests, and a Reply taken leaves no trace "
                    "on the wire (three in a run would show a drop)",)
                return client
            return changed
        # The messages that name the tool's DUID (Request, Renew, Release,
        # Decline) or follow what it gave (Rebind, Confirm).
        changed = None
        if kind == REQUEST and client.offered is not None:
            offered, client.offered = client.offered, None
            changed = self._accepted(client, now, f"requested {what or 'its IAs'}",
                                     now - offered)
        elif kind != REQUEST and client.acked is not None and client.verdict != ACCEPTS:
            client.used = True
            changed = self._accepted(client, now, f"sent a {DHCP6_NAMES[kind]}",
                                     now - client.acked)
        if kind == REQUEST:
            client.acked, client.tentative = now, False
            client.holds = tuple(value[:16] for option, _, value in granted
                                 if option == OPTION_IA_NA)
            return self._asked(client, now, "Requests", "DHCPv6 Replies") or changed
        return changed

    @staticmethod
    def _uses(frame, addresses):
        """The address of `addresses` that `frame` shows its sender using:
        the target of its DAD, or its IPv6 source; else None."""
        ethertype, offset = ethertype_and_offset(frame)
        if ethertype != ETH_P_IPV6 or len(frame) < offset + IPV6_HLEN:
            return None
        source = frame[offset + 8:offset + 24]
        if source in addresses:
            return source
        message = _icmpv6_message(frame, offset) if source == IN6_UNSPECIFIED else None
        if message and message[0] == ND_NEIGHBOR_SOLICIT and message[8:24] in addresses:
            return message[8:24]
        return None

    def lines(self):
        lines = super().lines()
        for interface, count in self.bindings.refused.items():
            lines.append(f"{interface}: {count:,} DHCPv6 addresses or prefixes refused: its "
                         f"clients held {BINDINGS_PER_INTERFACE} (at most "
                         f"{BINDINGS_PER_INTERFACE} an interface)")
        for interface, count in self.budget.over.items():
            lines.append(f"{interface}: {count:,} DHCPv6 messages not answered: over its "
                         f"budget of {DHCP6_BUDGET[1]:g} a second")
        return lines

    def to_json(self):
        return {"dhcp6": {
            "clients": [client.to_json() for client in self.clients.values()],
            "bindings": [{"interface": interface, "mac": str2mac(mac),
                          "ia": "na" if option == OPTION_IA_NA else "pd", "iaid": iaid,
                          "value": _ia_text(binding.value), "bound": binding.bound}
                         for (interface, mac, option, iaid), binding
                         in self.bindings.by_ia.items()],
            "refused_at_cap": dict(self.bindings.refused),
            "over_budget": dict(self.budget.over)}}


# ---------------------------------------------------------------- service: PPPoE discovery
#
# With --pppoe the tool is also an access concentrator's discovery stage
# (RFC 2516), tagged like every reply, as an ISP's or ONT's is on a CPE's
# WAN port: a PADI is offered a PADO (AC-Name, the Service-Name asked, an
# AC-Cookie), a PADR that returns the cookie is confirmed with a PADS and a
# session ID, a PADT ends the session. The verdict: a PADR with the tool's
# cookie accepts the PADO; a session frame (the client's LCP
# Configure-Request) after the PADS accepts the PADS too; PADIs (or PADRs)
# that go on although each was answered drop. No PPP beyond: the session's
# first frame is answered with a PADT that says so. Tags are read in bytes
# (a bounded walk); the answers are built with Scapy's PPPoE layers.

PADI, PADO, PADR, PADS, PADT = 0x09, 0x07, 0x19, 0x65, 0xA7
PPPOE_NAMES = {PADI: "PADI", PADO: "PADO", PADR: "PADR", PADS: "PADS", PADT: "PADT"}
PPPOE_VERSION_TYPE = 0x11
TAG_SERVICE_NAME, TAG_AC_NAME, TAG_HOST_UNIQ, TAG_AC_COOKIE = 0x0101, 0x0102, 0x0103, 0x0104
TAG_RELAY_SESSION_ID, TAG_GENERIC_ERROR = 0x0110, 0x0203
PPPOE_HLEN = 6
PPP_LCP = 0xC021
PPPOE_RETRY_WINDOW = 70.0  # seconds: RP-PPPoE's PADIs and PADRs go 5, 10, 20 s apart
PPPOE_BUDGET = (32, 8.0)   # discovery frames an interface may have parsed: a burst, a second
SESSION_GRACE = 3.0        # seconds --until-verdict waits after a PADS for the session's
                           # first frame (pppd's LCP comes at once; pppoe -d sends none)
SESSIONS_PER_INTERFACE = 64
TAG_ECHOED_MAX = 256       # bytes of a Host-Uniq or Relay-Session-Id echoed back
DEFAULT_AC_NAME = "arp_icmp_vlan0"


def pppoe_tags(data):
    """tag type -> [values] of a discovery frame's tags, in order, up to
    End-Of-List; None if one runs past the end."""
    tags, i = {}, 0
    while i + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, i)
        if kind == 0:
            break
        value = data[i + 4:i + 4 + length]
        if len(value) != length:
            return None
        tags.setdefault(kind, []).append(value)
        i += 4 + length
    return tags


class PppoeRequest(NamedTuple):
    requester: bytes    # the Ethernet source
    code: int           # PADI, PADR or PADT
    session: int
    service: bytes      # the Service-Name asked
    host_uniq: Optional[bytes]
    relay: Optional[bytes]
    cookie: Optional[bytes]
    to_tool: bool       # sent to the tool's MAC (a PADI goes to broadcast)


def parse_pppoe_discovery(frame, offset, mac):
    """A client's PADI, PADR or PADT, valid as RFC 2516 asks (a PADI to
    broadcast with one Service-Name, session 0; a PADR to the tool, session
    0; a PADT to the tool); else None. `mac`: the tool's (bytes)."""
    if len(frame) < offset + PPPOE_HLEN or frame[offset] != PPPOE_VERSION_TYPE:
        return None
    code = frame[offset + 1]
    session = frame[offset + 2] << 8 | frame[offset + 3]
    length = frame[offset + 4] << 8 | frame[offset + 5]
    data = frame[offset + PPPOE_HLEN:offset + PPPOE_HLEN + length]
    tags = pppoe_tags(data) if len(data) == length else None
    if tags is None or code not in (PADI, PADR, PADT):
        return None
    to_tool = frame[:6] == mac
    services = tags.get(TAG_SERVICE_NAME, [])
    if code == PADI and (frame[:6] != BROADCAST_MAC_BYTES or session or len(services) != 1):
        return None
    if code == PADR and (not to_tool or session or len(services) != 1):
        return None
    if code == PADT and not to_tool:
        return None

    def first(kind):
        values = tags.get(kind)
        return values[0][:TAG_ECHOED_MAX] if values else None
    return PppoeRequest(frame[6:12], code, session, services[0] if services else b"",
                        first(TAG_HOST_UNIQ), first(TAG_RELAY_SESSION_ID),
                        first(TAG_AC_COOKIE), to_tool)


def parse_pppoe_offer(frame):
    """(code, session ID, its tags) if `frame` is an access concentrator's
    PADO, PADS or PADT (reading a capture), else None."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype != ETH_P_PPP_DISC or len(frame) < offset + PPPOE_HLEN \
            or frame[offset] != PPPOE_VERSION_TYPE or frame[offset + 1] not in (PADO, PADS, PADT):
        return None
    length = frame[offset + 4] << 8 | frame[offset + 5]
    data = frame[offset + PPPOE_HLEN:offset + PPPOE_HLEN + length]
    tags = pppoe_tags(data) if len(data) == length else None
    if tags is None:
        return None
    return frame[offset + 1], frame[offset + 2] << 8 | frame[offset + 3], tags


def pppoe_discovery(code, request, session, tags, mac, framing):
    """A PADO, PADS or PADT to `request`'s client with `tags` ((type,
    value)) and its Host-Uniq and Relay-Session-Id echoed, built with
    Scapy's PPPoE layers."""
    echoed = [(TAG_HOST_UNIQ, request.host_uniq), (TAG_RELAY_SESSION_ID, request.relay)]
    tag_list = [PPPoETag(tag_type=kind, tag_value=value)
                for kind, value in list(tags) + echoed if value is not None]
    packet = PPPoED(code=code, sessionid=session) / PPPoED_Tags(tag_list=tag_list)
    return framing.frame(request.requester, mac, ETH_P_PPP_DISC, bytes(packet))


class PppoeExchange(NamedTuple):
    request: PppoeRequest
    sent: int          # PADO, PADS or PADT
    session: int       # the session ID a PADS gave, or ended; 0 for a PADO


class PppoeServer(ClientService):
    """--pppoe: PPPoE discovery as an access concentrator, and each client's
    verdict (the section's comment)."""

    service, window = "pppoe", PPPOE_RETRY_WINDOW
    answers, answers_used = "PPPoE PADOs", "PPPoE PADOs and PADS"
    awaited = "no PADI"
    json_keys, every_guest, sends, clock_only = ("pppoe",), True, True, True
    held = ("sessions",)

    def __init__(self, ac_name, scope, framing, events=None):
        super().__init__(framing, events)
        self.ac_name, self.scope = ac_name.encode(), scope
        self.secret = os.urandom(16)
        self.sessions = {}   # (interface, MAC) -> its session ID
        self.by_id = {}      # (interface, session ID) -> MAC
        self.closed = {}     # interface -> sessions ended (PADT), counted
        self.refused = {}    # interface -> PADRs refused at its cap
        self.budget = Budget(*PPPOE_BUDGET)
        self.awaiting = {}   # (interface, MAC) -> when its PADS went, no session frame yet

    def describe(self):
        return f"; PPPoE discovery as access concentrator {self.ac_name.decode()!r}"

    def filter(self):
        return PPPOE_FILTER

    def cookie(self, interface, mac):
        """The AC-Cookie for a client: a keyed hash of (interface, MAC), so
        that a PADR proves it came after this tool's PADO to that client."""
        return hashlib.sha256(self.secret + interface.encode() + b"\0" + mac).digest()[:16]

    def _session_for(self, key):
        """The session ID of client `key`, made if there is room: nonzero,
        unique on its interface; None if the interface holds its cap."""
        session = self.sessions.get(key)
        if session is not None:
            return session
        interface = key[0]
        if sum(1 for k in self.sessions if k[0] == interface) >= SESSIONS_PER_INTERFACE \
                or len(self.sessions) >= LEASES_KEPT:
            self.refused[interface] = self.refused.get(interface, 0) + 1
            return None
        start = int.from_bytes(hashlib.sha256(key[1]).digest()[:2], "big")
        for step in range(0xFFFF):
            session = (start + step) % 0xFFFF + 1
            if (interface, session) not in self.by_id:
                break
        self.sessions[key], self.by_id[(interface, session)] = session, key[1]
        return session

    def _end(self, key):
        session = self.sessions.pop(key, None)
        if session is not None:
            del self.by_id[(key[0], session)]
            self.closed[key[0]] = self.closed.get(key[0], 0) + 1

    def answer(self, interface, frame, ethertype, offset, now):
        """The PADO, PADS or PADT to a client's discovery or session frame,
        or None. A session frame costs a lookup; discovery frames are
        parsed within the interface's budget."""
        if ethertype == ETH_P_PPP_SES:
            return self._session_frame(interface, frame, offset)
        if ethertype != ETH_P_PPP_DISC or not from_a_station(frame, self.scope) \
                or not self.budget.take(interface, now):
            return None
        request = parse_pppoe_discovery(frame, offset, self.scope.mac_bytes)
        if request is None:
            return None
        key, mac = (interface, request.requester), self.scope.mac_bytes
        if self.scope.capture and request.code in (PADI, PADR):  # the switch's: in the capture
            return Answer("pppoe", PppoeExchange(request, PADO if request.code == PADI else PADS,
                                                 0), RECORDED)
        if request.code == PADI:
            tags = [(TAG_AC_NAME, self.ac_name), (TAG_SERVICE_NAME, request.service),
                    (TAG_AC_COOKIE, self.cookie(*key))]
            reply = pppoe_discovery(PADO, request, 0, tags, mac, self.framing)
            return Answer("pppoe", PppoeExchange(request, PADO, 0), reply)
        if request.code == PADR:
            if request.cookie != self.cookie(*key):
                return None  # not after this tool's PADO to this client
            session = self._session_for(key)
            if session is None:
                tags = [(TAG_SERVICE_NAME, request.service),
                        (TAG_GENERIC_ERROR, b"no room for another session")]
                return Answer("pppoe", PppoeExchange(request, PADS, 0),
                              pppoe_discovery(PADS, request, 0, tags, mac, self.framing))
            reply = pppoe_discovery(PADS, request, session,
                                    [(TAG_SERVICE_NAME, request.service)], mac, self.framing)
            return Answer("pppoe", PppoeExchange(request, PADS, session), reply)
        if self.sessions.get(key) == request.session:  # PADT: the client ends it
            self._end(key)
        return None

    def _session_frame(self, interface, frame, offset):
        """A session frame of a session this tool gave: evidence that the
        PADS arrived; answered with a PADT (no PPP here), once."""
        if len(frame) < offset + PPPOE_HLEN + 2 or frame[offset] != PPPOE_VERSION_TYPE \
                or frame[offset + 1] != 0 or frame[:6] != self.scope.mac_bytes:
            return None
        session = frame[offset + 2] << 8 | frame[offset + 3]
        key = (interface, frame[6:12])
        if self.by_id.get((interface, session)) != frame[6:12]:
            return None
        request = PppoeRequest(frame[6:12], 0, session, b"", None, None, None, True)
        self._end(key)
        if self.scope.capture:  # the evidence itself: no answer awaited
            return Answer("pppoe", PppoeExchange(request, PADT, session), None)
        reply = pppoe_discovery(PADT, request, session, [(
            TAG_GENERIC_ERROR, b"arp_icmp_vlan0 tests discovery only: no PPP")],
            self.scope.mac_bytes, self.framing)
        return Answer("pppoe", PppoeExchange(request, PADT, session), reply)

    def observe(self, exchange):
        answer, now, interface = exchange.answer, exchange.stamp, exchange.link.name
        if answer is None or answer.kind != "pppoe":
            return ()
        request, sent, session = answer.request
        client = self._client(interface, request.requester, now)
        if client is None:
            return ()
        event = PPPOE_NAMES.get(request.code, "session frame")
        client.evidence.append({"time": now, "event": event, "answered": PPPOE_NAMES[sent],
                                "session": session})
        if request.code == PADI:
            client.offered = now
            return self._records(self._asked(client, now, "PADIs", "PPPoE PADOs"))
        if request.code == PADR:
            changed = None
            if client.offered is not None:
                offered, client.offered = client.offered, None
                changed = self._accepted(client, now, "sent a PADR with its cookie",
                                         now - offered)
            if session and self.scope.capture and len(self.sessions) < LEASES_KEPT:
                self.sessions[(interface, request.requester)] = session  # the switch's
                self.by_id[(interface, session)] = request.requester
            if session:
                client.acked, client.tentative, client.used = now, False, False
                client.address = f"session {session}"
                remember(self.awaiting, (interface, request.requester), now)
            return self._records(self._asked(client, now, "PADRs", "PPPoE PADS") or changed)
        if request.code == 0 and client.acked is not None and not client.used:
            client.used = True
            self.awaiting.pop((interface, request.requester), None)
            return self._records(self._accepted(
                client, now, f"sent a session frame on session {session}",
                now - client.acked) or client)
        return ()

    def answered_by(self, answer, frame, now):
        """The switch's PADO to a PADI, or PADS to a PADR, to the client; a
        PADS's session is then the client's."""
        request, sent, _ = answer.request
        offer = frame and frame[:6] == request.requester and parse_pppoe_offer(frame)
        if not offer or offer[0] != sent:
            return None
        return answer._replace(request=PppoeExchange(request, sent, offer[1]), reply=frame)

    @staticmethod
    def _records(client):
        return (client,) if client else ()

    def decided(self):
        """Every client judged, and none just sent a PADS whose session may
        start: --until-verdict waits SESSION_GRACE for its first frame."""
        return super().decided() and not self.awaiting

    def due(self, now):
        if not self.awaiting:
            return LONGEST_WAIT
        return max(0.0, next(iter(self.awaiting.values())) + SESSION_GRACE - now)

    def send_due(self, now, served):
        """Nothing to send; a PADS whose session did not start within
        SESSION_GRACE is waited for no more (its PADO's verdict stands)."""
        for key, sent in list(self.awaiting.items()):
            if sent + SESSION_GRACE > now:
                break  # the oldest first
            del self.awaiting[key]
        return [], []

    def lines(self):
        lines = super().lines()
        for interface, count in self.refused.items():
            lines.append(f"{interface}: {count:,} PPPoE sessions refused (at most "
                         f"{SESSIONS_PER_INTERFACE} an interface)")
        for interface, count in self.budget.over.items():
            lines.append(f"{interface}: {count:,} PPPoE discovery frames not answered: over "
                         f"its budget of {PPPOE_BUDGET[1]:g} a second")
        return lines

    def to_json(self):
        return {"pppoe": {
            "clients": [client.to_json() for client in self.clients.values()],
            "sessions": [{"interface": interface, "mac": str2mac(mac), "session": session}
                         for (interface, mac), session in self.sessions.items()],
            "ended": dict(self.closed), "refused_at_cap": dict(self.refused),
            "over_budget": dict(self.budget.over)}}


# ---------------------------------------------------------------- service: 802.1X
#
# With --dot1x the tool is also a wired 802.1X authenticator (IEEE 802.1X,
# EAP over LAN), tagged like every reply, as an ISP's ONT is that sends its
# EAPOL frames priority-tagged: an EAPOL-Start, a link coming up, and every
# DOT1X_PERIOD seconds, bring an EAP-Request/Identity (to the PAE group
# address unasked); an EAP-Response/Identity brings an EAP-MD5 challenge,
# and any answer to that an EAP-Success: a test authenticator, which lets
# everyone in and says so. The verdict: an EAP-Response/Identity accepts the
# tagged Requests; DOT1X_UNANSWERED Requests without one while the
# supplicant's EAPOL-Starts keep coming (it is there, and hears nothing)
# drop them. Frames are read in bytes; the answers are built with Scapy's
# EAPOL and EAP layers.

PAE_GROUP_MAC = b"\x01\x80\xc2\x00\x00\x03"
EAPOL_VERSION = 2  # 802.1X-2004, as hostapd sends
EAPOL_EAP, EAPOL_START, EAPOL_LOGOFF = 0, 1, 2
EAP_REQUEST, EAP_RESPONSE, EAP_SUCCESS, EAP_FAILURE = 1, 2, 3, 4
EAP_TYPE_IDENTITY, EAP_TYPE_NAK, EAP_TYPE_MD5 = 1, 3, 4
EAP_TYPE_NAMES = {EAP_TYPE_IDENTITY: "Identity", EAP_TYPE_NAK: "Nak", EAP_TYPE_MD5: "MD5"}
EAPOL_HLEN, EAP_HLEN = 4, 4
DOT1X_PERIOD = 5.0      # seconds between the Requests to the PAE group
DOT1X_UNANSWERED = 3    # Requests without a Response, and a Start after them: drops
DOT1X_BUDGET = (32, 8.0)  # EAPOL frames an interface may have parsed: a burst, a second
EAP_SERVER_NAME = b"arp_icmp_vlan0 test authenticator: accepts everyone"


class Eapol(NamedTuple):
    requester: bytes        # the Ethernet source
    kind: int               # EAPOL_EAP, EAPOL_START or EAPOL_LOGOFF
    code: Optional[int]     # an EAP packet's code
    ident: Optional[int]    # ... and identifier
    method: Optional[int]   # ... and type (a Request's or Response's)
    identity: bytes = b""   # a Response/Identity's


def parse_eapol(frame, offset, mac):
    """A supplicant's EAPOL-Start, -Logoff or EAP-Response, sent to the PAE
    group address or the tool; else None."""
    if frame[:6] not in (PAE_GROUP_MAC, mac) or len(frame) < offset + EAPOL_HLEN:
        return None
    kind = frame[offset + 1]
    length = frame[offset + 2] << 8 | frame[offset + 3]
    body = frame[offset + EAPOL_HLEN:offset + EAPOL_HLEN + length]
    if len(body) != length or kind not in (EAPOL_EAP, EAPOL_START, EAPOL_LOGOFF):
        return None
    if kind != EAPOL_EAP:
        return Eapol(frame[6:12], kind, None, None, None)
    if length < EAP_HLEN + 1 or body[0] != EAP_RESPONSE \
            or body[2] << 8 | body[3] != length:
        return None
    identity = body[5:5 + 64] if body[4] == EAP_TYPE_IDENTITY else b""
    return Eapol(frame[6:12], kind, body[0], body[1], body[4], identity)


def eap_sent(frame):
    """What an authenticator's EAPOL frame says, in the words of the
    evidence ("EAP-Request/Identity", "EAP-Success"...), or None if it is
    not an EAP-Request, -Success or -Failure (reading a capture)."""
    ethertype, offset = ethertype_and_offset(frame)
    body = frame[offset + EAPOL_HLEN:] if ethertype == ETH_P_PAE else b""
    if len(body) < EAP_HLEN or frame[offset + 1] != EAPOL_EAP:
        return None
    if body[0] == EAP_REQUEST and len(body) > EAP_HLEN:
        method = {EAP_TYPE_MD5: "MD5-Challenge"}.get(body[4]) or EAP_TYPE_NAMES.get(body[4],
                                                                                  body[4])
        return f"EAP-Request/{method}"
    return {EAP_SUCCESS: "EAP-Success", EAP_FAILURE: "EAP-Failure"}.get(body[0])


def eap_frame(destination, code, ident, mac, framing, method=None, challenge=b""):
    """An EAP-Request (Identity, or MD5-Challenge with `challenge`) or
    EAP-Success in EAPOL, built with Scapy's layers."""
    if method == EAP_TYPE_MD5:
        eap = EAP_MD5(code=code, id=ident, value=challenge, optional_name=EAP_SERVER_NAME)
    elif method is not None:
        eap = EAP(code=code, id=ident, type=method)
    else:
        eap = EAP(code=code, id=ident)
    return framing.frame(destination, mac, ETH_P_PAE,
                         bytes(EAPOL(version=EAPOL_VERSION, type=EAPOL_EAP) / eap))


@dataclass
class Supplicant(Client):
    """An 802.1X client: its drops are Requests that went unanswered."""
    unanswered: list = field(default_factory=list)  # when the Requests since a Response went
    asked: Optional[float] = None    # when the last EAP-Request/Identity went to it
    started: Optional[float] = None  # its first EAPOL-Start since a Response

    def summary(self):
        if self.verdict != DROPS:
            return super().summary()
        count, span = self.reason
        tagged = f"tagged {self.framing}" if self.framing.vlans else "untagged"
        return (f"{self.interface}: guest {self.mac} kept sending EAPOL-Starts while {count} "
                f"EAP-Requests went unanswered in {span:.1f} s: it drops EAP-Requests "
                f"{tagged}" + self.framing.hint)


class Dot1xAuthenticator(ClientService):
    """--dot1x: a wired 802.1X authenticator that accepts everyone (the
    section's comment), and each supplicant's verdict."""

    service, window = "dot1x", 0.0
    answers, answers_used = "EAP-Requests", "EAP-Requests and EAP-Success"
    awaited = "no EAPOL-Start nor an answer to an EAP-Request"
    json_keys, every_guest = ("dot1x",), True
    record, sends = Supplicant, True

    def __init__(self, scope, framing, events=None):
        super().__init__(framing, events)
        self.scope = scope
        self.ident = {}      # (interface, MAC) -> the last EAP identifier sent
        self.next_at = {}    # interface -> when its next Request to the group goes
        self.group_sent = {}  # interface -> when the last went
        self.earliest = 0.0  # the soonest of next_at
        self.on = {}         # interface -> {MAC: its Supplicant}
        self.budget = Budget(*DOT1X_BUDGET)

    def describe(self):
        return "; an 802.1X authenticator (EAP-MD5, accepts everyone)"

    def filter(self):
        return EAPOL_FILTER

    def _next_ident(self, key):
        ident = (self.ident.get(key, random.randrange(256)) + 1) % 256
        remember(self.ident, key, ident)
        return ident

    def answer(self, interface, frame, ethertype, offset, now):
        if ethertype != ETH_P_PAE or not from_a_station(frame, self.scope) \
                or not self.budget.take(interface, now):
            return None
        eapol = parse_eapol(frame, offset, self.scope.mac_bytes)
        if eapol is None or eapol.kind == EAPOL_LOGOFF:
            return None
        key, mac = (interface, eapol.requester), self.scope.mac_bytes
        if self.scope.capture:  # the switch's answer, if any, is in the capture
            return Answer("dot1x", (eapol, None), RECORDED)
        if eapol.kind == EAPOL_START:
            reply = eap_frame(eapol.requester, EAP_REQUEST, self._next_ident(key), mac,
                              self.framing, EAP_TYPE_IDENTITY)
            return Answer("dot1x", (eapol, "EAP-Request/Identity"), reply)
        if eapol.method == EAP_TYPE_IDENTITY:
            reply = eap_frame(eapol.requester, EAP_REQUEST, self._next_ident(key), mac,
                              self.framing, EAP_TYPE_MD5, os.urandom(16))
            return Answer("dot1x", (eapol, "EAP-Request/MD5-Challenge"), reply)
        reply = eap_frame(eapol.requester, EAP_SUCCESS, eapol.ident, mac, self.framing)
        return Answer("dot1x", (eapol, "EAP-Success"), reply)

    def answered_by(self, answer, frame, now):
        """The switch's EAP-Request, -Success or -Failure to the supplicant
        (or to the PAE group) after its EAPOL-Start or EAP-Response."""
        eapol = answer.request[0]
        said = frame and frame[:6] in (eapol.requester, PAE_GROUP_MAC) and eap_sent(frame)
        return answer._replace(request=(eapol, said), reply=frame) if said else None

    def sent(self, interface, frame, now):
        """An EAP-Request/Identity to the PAE group: asked of every
        supplicant on the interface."""
        if frame[:6] != PAE_GROUP_MAC or eap_sent(frame) != "EAP-Request/Identity":
            return None
        self._to_group(interface, now)
        return "eap_requests"

    def observe(self, exchange):
        answer, now, interface = exchange.answer, exchange.stamp, exchange.link.name
        if answer is None or answer.kind != "dot1x":
            return ()
        eapol, sent = answer.request
        client = self._client(interface, eapol.requester, now)
        if client is None:
            return ()
        if eapol.requester not in self.on.get(interface, {}):  # heard first answering one
            self.on.setdefault(interface, {})[eapol.requester] = client
            client.asked = self.group_sent.get(interface)
        event = "EAPOL-Start" if eapol.kind == EAPOL_START else \
            f"EAP-Response/{EAP_TYPE_NAMES.get(eapol.method, eapol.method)}"
        client.evidence.append({"time": now, "event": event, "answered": sent})
        if eapol.kind == EAPOL_START:
            if client.unanswered and client.verdict is None and \
                    len(client.unanswered) >= DOT1X_UNANSWERED:
                client.verdict = DROPS
                client.reason = (len(client.unanswered), now - client.unanswered[0])
                return (client,)
            self._sent(client, now)
            client.asked = now
            return ()
        if eapol.method == EAP_TYPE_IDENTITY:
            client.address = f"identity {eapol.identity.decode(errors='replace')!r}"
            asked = client.asked if client.asked is not None else now
            client.unanswered.clear()
            client.acked = now
            changed = self._accepted(client, now, "answered with its identity", now - asked)
            return (changed,) if changed else ()
        if sent == "EAP-Success" and not client.used:
            client.used = True
            return (self._accepted(client, now, "answered the MD5 challenge",
                                   now - (client.acked or now)) or client,)
        return ()

    def decided(self):
        """Every supplicant judged, and none in the middle of the exchange
        (a challenge out, no answer yet): --until-verdict lets it reach the
        EAP-Success."""
        return super().decided() and not any(
            client.acked is not None and not client.used for client in self.clients.values())

    def _sent(self, client, now):
        if client.verdict is None and len(client.unanswered) < 64:
            client.unanswered.append(now)

    # -- the Requests to the PAE group: at link up, then every DOT1X_PERIOD

    def due(self, now):
        return max(0.0, self.earliest - now)

    def send_due(self, now, served):
        frames = []
        if now < self.earliest and len(served) == len(self.next_at):
            return frames, []
        for interface in served:
            if self.next_at.get(interface, now) > now:
                continue
            self.next_at[interface] = now + DOT1X_PERIOD
            known = self.on.get(interface, {})
            if known and all(client.verdict is not None for client in known.values()):
                continue  # every supplicant here has its verdict: no need to ask
            self._to_group(interface, now)
            frames.append((interface, eap_frame(PAE_GROUP_MAC, EAP_REQUEST,
                                                self._next_ident((interface, PAE_GROUP_MAC)),
                                                self.scope.mac_bytes, self.framing,
                                                EAP_TYPE_IDENTITY), "eap_requests"))
        for interface in [name for name in self.next_at if name not in served]:
            del self.next_at[interface]
        self.earliest = min(self.next_at.values(), default=now + DOT1X_PERIOD)
        return frames, []

    def _to_group(self, interface, now):
        """An EAP-Request/Identity to the PAE group on `interface` at `now`:
        one more unanswered for each supplicant there still judged."""
        known = self.on.get(interface, {})
        for client in known.values():
            if client.verdict is None:
                self._sent(client, now)
            client.asked = now
        remember(self.group_sent, interface, now)

    def lines(self):
        lines = super().lines()
        for interface, count in self.budget.over.items():
            lines.append(f"{interface}: {count:,} EAPOL frames not answered: over its budget "
                         f"of {DOT1X_BUDGET[1]:g} a second")
        return lines

    def to_json(self):
        return {"dot1x": {"clients": [client.to_json() for client in self.clients.values()],
                          "over_budget": dict(self.budget.over)}}


# ---------------------------------------------------------------- service: the guests' own framing
#
# How each guest's own frames arrive: untagged, or with which tags (tcpdump
# -e's words), per protocol where they differ. A user checking a CPE against
# an ISP that wants, say, vlan 0 p 6 on its DHCP reads it in the guest's
# line. Read from the tags Scapy puts back on a received frame (the
# kernel's PACKET_AUXDATA); with -q and neither -w nor a service beyond the
# replies, frames are read without them (the fast path), and this is off.
# It answers nothing and judges nothing: it is first in the list, so that
# every frame is seen, and records (a Guest, a Client) read what it saw
# through the Events they share.

FRAMINGS_PER_GUEST = 8  # (protocol, framing) pairs kept of one guest; beyond, counted
PROTOCOL_OF_ETHERTYPE = {ETH_P_ARP: "ARP", ETH_P_IP: "IPv4", ETH_P_IPV6: "IPv6",
                         ETH_P_PPP_DISC: "PPPoE discovery", ETH_P_PPP_SES: "PPPoE session",
                         ETH_P_PAE: "EAPOL"}
PROTOCOL_OF_PORT = {(4, DHCP_SERVER_PORT): "DHCP", (4, 69): "TFTP",
                    (6, DHCP6_SERVER_PORT): "DHCPv6"}


def is_tagged(frame):
    """`frame` carries an 802.1Q (or 802.1ad, 0x9100) tag: the switch's
    frames in a capture (-r)."""
    return len(frame) >= 14 and frame[12] << 8 | frame[13] in VLAN_TPIDS


def tags_of(frame):
    """A received frame's 802.1Q tags, outer first: ((VID, PCP, DEI), ...)."""
    tags, i = [], 12
    while len(frame) >= i + 4 and frame[i] << 8 | frame[i + 1] in VLAN_TPIDS:
        tci = frame[i + 2] << 8 | frame[i + 3]
        tags.append((tci & 0xFFF, tci >> 13, bool(tci & 0x1000)))
        i += VLAN_HLEN
    return tuple(tags)


def framed_as(tags, expected):
    """`tags` (tags_of()) are what --expect-framing's `expected` says: the
    same VIDs in order, and each priority given the same."""
    return len(tags) == len(expected) and all(
        vid == want and (pcp is None or prio == pcp)
        for (vid, prio, _), (want, pcp) in zip(tags, expected))


def expected_text(expected):
    """--expect-framing's value in tcpdump's words."""
    if not expected:
        return "untagged"
    return "tagged " + ", ".join(f"vlan {vid}" + (f", p {pcp}" if pcp is not None else "")
                                 for vid, pcp in expected)


def tags_text(tags):
    """Tags (tags_of()) in tcpdump -e's words, outer first ("tagged vlan 0,
    p 6"), or "untagged"."""
    if not tags:
        return "untagged"
    return "tagged " + ", ".join(f"vlan {vid}, p {pcp}" + (", DEI" if dei else "")
                                 for vid, pcp, dei in tags)


def protocol_of(frame, ethertype, offset):
    """What a guest's frame carries, as the framing lines name it: DHCP,
    DHCPv6 and TFTP by their ports, else the ethertype's protocol."""
    family = FAMILY_OF_ETHERTYPE.get(ethertype) if ethertype != ETH_P_ARP else None
    if family == 4 and len(frame) >= offset + IPV4_HLEN + 4 and frame[offset + 9] == IPPROTO_UDP:
        udp = offset + (frame[offset] & 0x0F) * 4
        port = frame[udp + 2:udp + 4]
    elif family == 6 and len(frame) >= offset + IPV6_HLEN + 4 and frame[offset + 6] == IPPROTO_UDP:
        port = frame[offset + IPV6_HLEN + 2:offset + IPV6_HLEN + 4]
    else:
        port = b""
    if len(port) == 2:
        named = PROTOCOL_OF_PORT.get((family, port[0] << 8 | port[1]))
        if named:
            return named
    if ethertype is None:  # its tags run to the end of the frame
        return "a truncated frame"
    return PROTOCOL_OF_ETHERTYPE.get(ethertype, f"ethertype {ethertype:#06x}")


class OwnFraming:
    """How one guest's frames arrived: (protocol, framing) -> frames; with
    --expect-framing, how many were not framed so, and which pairs."""

    __slots__ = ("seen", "more", "unexpected", "total", "off")

    def __init__(self):
        self.seen, self.more, self.unexpected, self.total, self.off = {}, 0, 0, 0, {}

    def add(self, protocol, framing, as_expected=True):
        key = (protocol, framing)
        self.total += 1
        if not as_expected:
            self.unexpected += 1
            if key in self.off or len(self.off) < FRAMINGS_PER_GUEST:
                self.off[key] = None
        if key in self.seen:
            self.seen[key] += 1
        elif len(self.seen) < FRAMINGS_PER_GUEST:
            self.seen[key] = 1
        else:
            self.more += 1

    def __str__(self):
        """"untagged"; "tagged vlan 0, p 6"; or per protocol where they
        differ: "DHCP tagged vlan 0, p 6; ARP untagged"."""
        protocols = {}
        for protocol, framing in self.seen:
            protocols.setdefault(framing, []).append(protocol)
        if len(protocols) == 1:
            return next(iter(protocols))
        return "; ".join(f"{', '.join(names)} {framing}" for framing, names in protocols.items())

    def to_json(self):
        return [{"protocol": protocol, "framing": framing, "frames": frames}
                for (protocol, framing), frames in self.seen.items()]


def with_own(line, own):
    """A record's line, and how the guest's own frames arrived."""
    return f"{line}; its own frames: {own}" if own is not None and own.seen else line


class Framings(Service):
    """The guests' own framing (the section's comment), per (interface,
    MAC), bounded (Book); published in the Events' `framings`."""

    json_keys, needs_tags = ("framing", "expected_framing"), True

    def __init__(self, scope, events=None, expected=None):
        """`expected`: --expect-framing's ((VID, PCP or None), ...), () for
        untagged; None: nothing expected."""
        self.scope, self.expected = scope, expected
        self.events = Events() if events is None else events
        self.guests = self.events.framings
        self.book = Book()

    def _see(self, interface, frame, ethertype, offset):
        if not from_a_station(frame, self.scope):
            return
        key = (interface, frame[6:12])
        own = self.guests.get(key)
        if own is None:
            if not self.book.admit(interface, key):
                return
            own = self.guests[key] = OwnFraming()
        tags = tags_of(frame)
        as_expected = self.expected is None or framed_as(tags, self.expected)
        own.add(protocol_of(frame, ethertype, offset), tags_text(tags), as_expected)

    def answer(self, interface, frame, ethertype, offset, now):
        self._see(interface, frame, ethertype, offset)
        return None

    def observe(self, exchange):
        if exchange.by is None and exchange.answer is not None:  # the plain echo path
            ethertype, offset = ethertype_and_offset(exchange.received)
            self._see(exchange.link.name, exchange.received, ethertype, offset)
        return ()

    def lines(self):
        """With --expect-framing, a line per guest that sent frames framed
        otherwise: a finding about the guest, not a verdict on the tool's
        answers (the exit status is the judges')."""
        if self.expected is None:
            return []
        return [f"{interface}: guest {str2mac(mac)}: {own.unexpected:,} of {own.total:,} frames "
                f"not {expected_text(self.expected)} as expected: "
                + "; ".join(f"{protocol} {framing}" for protocol, framing in own.off)
                for (interface, mac), own in self.guests.items() if own.unexpected]

    def to_json(self):
        return {"framing": [{"interface": interface, "mac": str2mac(mac), "frames": own.to_json(),
                             "line": str(own),
                             **({"not_as_expected": own.unexpected}
                                if self.expected is not None else {})}
                            for (interface, mac), own in self.guests.items()],
                "expected_framing": None if self.expected is None
                else expected_text(self.expected)}


# ---------------------------------------------------------------- the roll of guests
#
# With more than the replies to judge (--dhcp, --ra), exit status 0 must mean
# that every judge asked for has judged every guest heard: a guest that took
# its lease at once and solicits only later must not end the run first, and
# one that never solicits must not pass for one that copes.

JUDGED_WITHIN = 15.0  # seconds from a guest's first frame for every judge to hear from it
MISSING = "not judged"  # the roll's verdict on a guest a judge asked for did not judge


@dataclass
class Attendance:
    """One guest (interface, MAC) heard while judges of every guest were on."""
    interface: str
    mac: str
    first: float                   # its first frame
    judges: tuple = field(repr=False)  # the ClientServices that must judge it
    verdict: Optional[str] = None  # None, or MISSING once a judge's time is up
    missing: list = field(default_factory=list)  # the judges that did not judge it

    def summary(self):
        who = f"{self.interface}: guest {self.mac}"
        if self.verdict == MISSING:
            return "; ".join(
                f"{who}: {judge.awaited} in {JUDGED_WITHIN:g} s: {judge.answers} not judged "
                f"(--{judge.service})" for judge in self.missing)
        return f"{who}: judged by {', '.join(judge.service for judge in self.judges)}"

    def to_json(self):
        mac = mac2str(self.mac)
        return {"interface": self.interface, "mac": self.mac, "first_frame": self.first,
                **{judge.service: judge.verdict_of(self.interface, mac)
                   for judge in self.judges},
                "not_judged": [judge.service for judge in self.missing]}


class Roster(Service):
    """The roll of guests for the judges of every guest asked for (`judges`:
    DhcpServer, Advertiser, Dhcp6Server, PppoeServer, Dot1xAuthenticator): a
    guest heard (any frame from it, or a record one of them made) is settled
    once each has its verdict on it, or JUDGED_WITHIN seconds after its
    first frame; then each judge that has heard nothing from it (no record:
    Service.heard_of) is one line, and the guest has no verdict (status 4).
    A judge that heard it and is still judging (answered asks, no verdict
    yet) goes on: its own record says, and holds the run's end."""

    json_keys, sends, clock_only = ("judged",), True, True

    def __init__(self, judges, scope, events=None):
        self.judges, self.scope = tuple(judges), scope
        self.events = Events() if events is None else events
        self.guests = {}      # (interface, MAC bytes) -> Attendance
        self.waiting = {}     # the keys of guests not yet judged by all, oldest first
        self.book = Book()
        self.events.subscribe(HEARD, self._heard)

    def _heard(self, interface, mac, now):
        key = (interface, mac)
        if key not in self.guests and self.book.admit(interface, key):
            self.guests[key] = Attendance(interface, str2mac(mac), now, self.judges)
            self.waiting[key] = None

    def observe(self, exchange):
        frame = exchange.whole
        if from_a_station(frame, self.scope):
            self._heard(exchange.link.name, frame[6:12], exchange.stamp)
        return ()

    def _judged(self, guest):
        return all(judge.verdict_of(guest.interface, mac2str(guest.mac)) is not None
                   for judge in self.judges)

    def _oldest_waiting(self):
        """The guest first heard of those still waiting for a judge (those
        judged meanwhile leave the roll from the front: a look per frame
        costs one lookup, whatever a flood put on the roll)."""
        while self.waiting:
            guest = self.guests[next(iter(self.waiting))]
            if not self._judged(guest):
                return guest
            del self.waiting[next(iter(self.waiting))]
        return None

    def due(self, now):
        guest = self._oldest_waiting()
        return LONGEST_WAIT if guest is None else max(0.0, guest.first + JUDGED_WITHIN - now)

    def send_due(self, now, served):
        """Nothing to send; the guests whose time is up, a judge missing."""
        return [], self._call_the_roll(now)

    def end(self, now):
        """The capture's end is every guest's time up (a judge that heard
        nothing from it by then names it)."""
        return self._call_the_roll(None)

    def _call_the_roll(self, now):
        """The guests whose time is up at `now` (None: all of them) and a
        judge missing."""
        decided = []
        for key in list(self.waiting):
            guest = self.guests[key]
            if self._judged(guest):
                del self.waiting[key]
            elif now is None or guest.first + JUDGED_WITHIN <= now:
                del self.waiting[key]
                mac = mac2str(guest.mac)
                guest.missing = [judge for judge in self.judges
                                 if judge.verdict_of(guest.interface, mac) is None
                                 and not judge.heard_of(guest.interface, mac)]
                if guest.missing:
                    guest.verdict = MISSING
                    decided.append(guest)
            else:
                break  # the oldest first: the others' time is not up either
        return decided

    def verdicts(self):
        return [guest.verdict for guest in self.guests.values() if guest.verdict]

    def decided(self):
        return self._oldest_waiting() is None

    def untracked(self):
        return self.book.untracked

    def lines(self):
        return [guest.summary() for guest in self.guests.values() if guest.verdict] + \
            self.book.lines("guests on the roll")

    def why_no_verdict(self):
        missing = [guest for guest in self.guests.values() if guest.verdict == MISSING]
        if missing:
            return (f"{len(missing):,} guest{'s' if len(missing) != 1 else ''} not judged by "
                    f"every judge asked for within {JUDGED_WITHIN:g} s of its first frame")
        return self.book.why("guests on the roll")

    def to_json(self):
        return {"judged": [guest.to_json() for guest in self.guests.values()]}


# ---------------------------------------------------------------- the services on

# Every service, in the order a frame is offered to them, their verdicts
# are reported and the start-up line names them.
SERVICES = (Framings, Replies, Prober, DhcpServer, TftpServer, Advertiser, Dhcp6Server,
            PppoeServer, Dot1xAuthenticator, Roster)


def services_from(settings):
    """The services the command line asks for, in SERVICES' order, sharing
    one Events: the replies always; the probe, DHCP (and TFTP with
    --boot-file), RA, DHCPv6, PPPoE and 802.1X when asked, and with any of
    those that judge every guest the roll of guests; the guests' own
    framing unless -q alone reads frames without their tags."""
    events, scope, framing = Events(), settings.scope, settings.framing
    services = [Replies(scope, framing, events)]
    if settings.probe is not None:
        services.append(Prober(settings.probe, scope, framing, ident=os.getpid() & 0xFFFF,
                               events=events))
    if settings.dhcp:
        boot_files = {key: name for key, (name, _) in settings.boot_files.items()}
        services.append(DhcpServer(*settings.dhcp, scope, framing, events, boot_files))
    if settings.boot_files:  # with --dhcp; reading a capture, maybe a TFTP read alone
        files = dict(settings.boot_files.values())
        server = settings.dhcp[1] if settings.dhcp else None
        services.append(TftpServer(files, server, scope, framing, events))
    if settings.ra:
        services.append(Advertiser(settings.ra, settings.router_lifetime, scope, framing,
                                   events, managed=settings.dhcp6 is not None))
    if settings.dhcp6:
        services.append(Dhcp6Server(*settings.dhcp6, settings.delegate, scope, framing,
                                    events))
    if settings.pppoe is not None:
        services.append(PppoeServer(settings.pppoe, scope, framing, events))
    if settings.dot1x:
        services.append(Dot1xAuthenticator(scope, framing, events))
    judges = [service for service in services if service.every_guest]
    if judges:
        services.append(Roster(judges, scope, events))
    if len(services) > 1 or settings.verbose >= 0 or settings.recording \
            or settings.expect_framing is not None:
        # The guests' own framing, first: it sees every frame. Not with -q
        # alone, whose fast path reads frames without their tags.
        services.insert(0, Framings(scope, events, settings.expect_framing))
    return services


# ---------------------------------------------------------------- the loop

BATCH = 64           # frames read from one socket before the next one's turn
TURN = 0.002         # seconds a socket's turn lasts at most (64 costly frames would not)


class Loop:
    """The card's sniff() loop and prn callback: receives on every served
    interface, offers each frame to the services, sends the answer, then
    counts, records, shows the exchange to the services and prints; sends
    what the services have due unasked. It knows no service by name.

    A frame takes one of two paths, which share the send and the accounting
    after it: handle_plain() for the usual echo request, whose reply
    plain_echo_replier made in one step, and handle() for everything else
    (reassembly, then the services). One interface asked for by name is
    served with a blocking receive, several with epoll (tests/figures/
    README.rst, the benchmark, has the measured reasons for both over
    sniff())."""

    def __init__(self, settings, interfaces, services, recorder=None, stdout=None,
                 snapshots=None):
        self.settings, self.interfaces, self.recorder = settings, interfaces, recorder
        self.snapshots = snapshots  # the files rewritten while it runs (Snapshots)
        self.services = services
        self.timed = [service for service in services if service.sends]
        # -q, no -w and no service that reads the tags: frames are read
        # without them (the fast path; README.rst, How it works).
        self.quick = settings.verbose < 0 and not recorder and not any(
            service.needs_tags for service in services)
        self.stdout = stdout or Stdout()
        self.reassembler = Reassembler()
        self.plain_echo = plain_echo_replier(settings.scope, settings.framing)
        self.lines = Lines(settings.framing, self.say)
        self.complaints = Complaints()
        self.replied = 0
        self.started = time.monotonic()
        self.stopping = False       # the loop ends between two frames
        self.interruptible = False  # in a blocking receive that a signal breaks
        self.woken = False          # the interval timer fired (deadline, lines due)
        self.wake_at = 0.0          # when it fires (time.time()), in a blocking receive

    def elapsed(self):
        """Seconds since it started."""
        return time.monotonic() - self.started

    def stop(self):
        """End the loop between two frames (a signal's handler calls it)."""
        self.stopping = True
        if self.interruptible:  # PEP 475 would resume the receive
            raise Interrupted

    def say(self, line):
        """A line on stdout; if nobody reads it any more, the end."""
        self.stdout.say(line)
        if self.stdout.closed:
            self.stopping = True

    # -- the two paths of a frame

    def handle(self, link, frame, stamp):
        """Answer one received frame (or hold it, if it is a fragment), then
        account for it; nothing a guest sends ends the tool."""
        link.stats.seen += 1
        try:
            whole, ethertype, answer, by, frames = self._answer(link, frame, stamp)
        except Exception as exc:  # a bug in a service: report it, keep serving
            link.stats.internal_errors += 1
            self.complaints.log("core", f"error: cannot handle frame {_hex(frame)}: {exc!r}")
            return
        if whole is None:  # a fragment, held until its datagram is whole
            link.stats.fragments += 1
            if self.recorder:
                self.recorder.request(frame, stamp)
            return
        sent_at = self.send(link, frames) if frames else None
        if not frames or sent_at is not None:
            self.account(Exchange(link, frame, stamp, whole, ethertype, answer, frames,
                                  sent_at, by))

    def handle_plain(self, link, frame, stamp, reply):
        """Send `reply`, plain_echo_replier's answer to `frame`, first; then
        account for it as handle() does."""
        link.stats.seen += 1
        sent_at = self.send(link, (reply,))
        if sent_at is not None:
            self.account(Exchange(link, frame, stamp, frame, ETH_P_IP,
                                  Answer("icmp echo", None, reply), (reply,), sent_at))

    def _answer(self, link, frame, stamp):
        """(the whole request or None while it is a held fragment, its
        ethertype, the Answer or None, the service whose it is, the reply's
        frames)."""
        ethertype, offset = ethertype_and_offset(frame)
        if maybe_fragment(frame, ethertype, offset):
            piece = fragment_of(frame, ethertype, offset, link.name)
            if piece is not None:
                frame = self.reassembler.add(piece, stamp)
                if frame is None:
                    return None, ethertype, None, None, ()
                ethertype, offset = ethertype_and_offset(frame)
        answer, by = answer_with(self.services, link.name, frame, ethertype, offset, stamp)
        if answer is None or answer.reply is None:
            return frame, ethertype, answer, by, ()
        if len(answer.reply) <= link.largest_frame:
            return frame, ethertype, answer, by, (answer.reply,)
        return frame, ethertype, answer, by, fit_to_mtu(answer.reply, link.mtu,
                                                         self.settings.framing)

    def send(self, link, frames):
        """Send the reply's frames; the time they left (taken just before
        the send: the guest's next frame, which the reply makes possible,
        can be received and stamped before send() returns), or None after
        an error, counted and said."""
        sent_at = time.time()
        try:
            for piece in frames:
                link.sock.send(piece)
        except OSError as exc:
            link.stats.send_errors += 1
            self.complaints.log(f"send {link.name}",
                                f"error: sending on {link.name}: {exc.strerror or exc}")
            return None
        return sent_at

    def account(self, exchange):
        """What follows the reply: the counts, the record, the line, the
        verdicts the services form from the exchange; a bug here is said and
        counted, and serving goes on."""
        link, answer, settings = exchange.link, exchange.answer, self.settings
        if exchange.replied:
            link.stats.replies[answer.kind] += 1
            self.replied += 1
        elif answer is None:
            link.stats.ignored += 1
        else:  # taken: an answer to what a service sent itself
            link.stats.count(exchange.by.taken_as)
        try:
            if self.recorder:
                self.recorder.request(exchange.received, exchange.stamp)
                for piece in exchange.frames:
                    self.recorder.reply(piece, exchange.sent_at)
            if settings.verbose >= 0 and (exchange.replied or settings.verbose > 0):
                self.lines.exchange(exchange)
            for record in observe_with(self.services, exchange):
                self.lines.verdict(record.summary())
        except Exception as exc:
            link.stats.internal_errors += 1
            self.complaints.log("account", f"error: after the frame "
                                f"{_hex(exchange.received)}: {exc!r}")
        if self.timed and not self.woken:  # a service now due sooner than the timer
            now = time.time()
            self.woken = any(now + service.due(now) < self.wake_at for service in self.timed)
        if (0 < settings.count <= self.replied
                or settings.until_verdict and all_settled(self.services)):
            self.stopping = True

    def send_timed(self, service):
        """Send what `service` has due now (Service.send_due: probes,
        advertisements); say the verdicts that its silence formed."""
        links = self.interfaces.links
        try:
            frames, decided = service.send_due(time.time(), links.keys())
        except Exception as exc:  # a bug: said, and serving goes on
            self.complaints.log("timed", f"error: sending on its own: {exc!r}")
            return
        for name, frame, counter in frames:
            link = links[name]
            sent_at = self.send(link, (frame,))
            if sent_at is not None:
                link.stats.count(counter)
                if self.recorder:
                    self.recorder.reply(frame, sent_at)
        for record in decided:
            self.lines.verdict(record.summary())
        if self.settings.until_verdict and all_settled(self.services):
            self.stopping = True

    # -- receiving

    def run(self, timeout=None, wake_fd=None):
        """Serve, and send what the services have due unasked (probes,
        advertisements), until --count, --timeout, --until-verdict, a signal,
        a closed stdout or, with --exit-on-down, a lost interface. A `wake_fd`
        says that the signals go through _stop_on_signals: they call stop(),
        write to `wake_fd` (which wakes epoll) and break a blocking receive."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poller, interfaces = self.interfaces.poller, self.interfaces
        if wake_fd is not None:
            poller.register(wake_fd, select.EPOLLIN)
        netlink = interfaces.netlink.fileno()
        snapshots = self.snapshots
        while not self._done():
            for service in self.timed:
                self.send_timed(service)
            if snapshots is not None and snapshots.due() <= 0:
                self._snapshot()
            if self._done():  # a timer's verdict settled the run (--until-verdict)
                break
            wait = LONGEST_WAIT if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            wait = min(wait, LONGEST_WAIT, self.lines.due(),
                       *(service.due(time.time()) for service in self.timed),
                       snapshots.due() if snapshots is not None else LONGEST_WAIT)
            alone = self._served_alone() if wake_fd is not None else None
            if alone is not None:
                self._serve_alone(alone, wait)
                self.lines.write(idle=False)
                continue
            if (self.settings.busy_poll and interfaces.links) or self.lines.held \
                    or interfaces.pending:
                wait = 0  # held lines, interfaces to serve: one turn, then the sockets
            busy = False
            for fd, _ in poller.poll(wait):
                link = interfaces.by_fd.get(fd)
                if link is not None:
                    busy |= self._drain(link)
                elif fd == netlink:
                    interfaces.changed()
            if interfaces.pending:
                busy |= interfaces.serve_pending()
            if self.recorder:
                self.recorder.settle()
            self.lines.write(idle=not busy)
        while self.lines.held:
            self.lines.write(idle=True)

    def _snapshot(self):
        """The files rewritten while it runs; a bug here is said, and
        serving goes on."""
        try:
            self.snapshots.write(Report(self))
        except Exception as exc:
            self.complaints.log("snapshot", f"error: writing --json-interval's and "
                                f"--metrics' files: {exc!r}")

    def _done(self):
        return self.stopping or self.settings.exit_on_down and bool(self.interfaces.lost)

    def _served_alone(self):
        """The Link to serve with a blocking receive, if any: the one
        interface asked for by name, served, with no --busy-poll and no -w
        (whose bursts end at an empty queue)."""
        specs, links = self.settings.specs, self.interfaces.links
        if (len(specs) == 1 and len(links) == 1 and not is_pattern(specs[0])
                and not self.settings.busy_poll and not self.recorder):
            return next(iter(links.values()))
        return None

    def _serve_alone(self, link, wait):
        """Serve `link` with a blocking receive, from which an idle process
        wakes sooner than from epoll, until a signal, an interval timer
        after `wait` seconds or the interface going down or away; then
        run(), which checks the deadline, calls again or, in its epoll loop
        that reads netlink, waits for the interface to come back."""
        sock = link.sock
        sock.setblocking(True)
        self.woken = False
        self.wake_at = time.time() + wait
        signal.setitimer(signal.ITIMER_REAL, max(wait, 1e-3))
        try:
            self._drain(link, blocking=True)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self.interfaces.links.get(link.name) is link:
                sock.setblocking(False)

    def _drain(self, link, blocking=False):
        """Answer the frames queued on `link`'s socket: at most BATCH, and
        for TURN seconds at most, so that one guest's flood cannot starve the
        others, and say whether more wait; blocking: every frame, until a
        signal or the timer breaks the receive, a held line printed whenever
        the queue is empty."""
        sock, plain_echo, largest = link.sock, self.plain_echo, link.largest_frame
        quick = self.quick
        lines = self.lines
        receive_plain = sock.recv
        handled, turn_ends = 0, time.monotonic() + TURN
        while True:
            if not blocking and (handled == BATCH or time.monotonic() > turn_ends):
                return True
            if blocking and lines.held and (quick or not _queued(sock)):
                lines.write(idle=True)  # nothing waits: a line's turn, then look again
                continue
            try:
                self.interruptible = blocking
                # After the flag, so that a signal either raises Interrupted
                # or is seen here; the timer's: run() looks at the deadline.
                if self.stopping or blocking and self.woken:
                    return False
                if quick:  # neither the tag nor the kernel's time stamp is shown
                    frame, stamp = receive_plain(MTU), None
                else:  # the request's 802.1Q tag put back, the stamp read
                    frame, stamp = receive(sock)
            except (BlockingIOError, Interrupted):
                return False
            except OSError as exc:  # the interface went down or away
                self.interfaces.let_go(link, exc.strerror or str(exc))
                return False
            finally:
                self.interruptible = False
            handled += 1
            if not frame:
                continue
            try:
                reply = plain_echo(frame) if plain_echo else None
            except Exception as exc:  # a bug: say so, and let the core answer
                self.complaints.log("plain", f"error: plain echo path on {_hex(frame)}: "
                                    f"{exc!r}")
                reply = None
            if reply is None or len(reply) > largest:
                self.handle(link, frame, stamp or time.time())
            else:
                self.handle_plain(link, frame, stamp or time.time(), reply)


def _queued(sock):
    """A frame waits on `sock`."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    return True


# ---------------------------------------------------------------- interfaces and sockets

GONE_KEPT = 64  # interfaces let go whose counts are kept apart; beyond, summed
NAMED_AT_START = 8  # interfaces the start-up line names before "and N more"
FDS_KEPT_FREE = 16  # descriptors no interface takes: sysfs reads, the files, the closer


def limit_reached(exc):
    """What a descriptor limit reached (EMFILE, ENFILE) is, and its remedy."""
    if exc.errno == errno.ENFILE:
        return ("the system's open-files limit is reached (ENFILE): raise fs.file-max "
                "(sysctl)")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (f"the open-files limit ({soft:,}) is reached: two descriptors an interface; "
            "raise it (LimitNOFILE= in the systemd unit, ulimit -Hn in a shell)")

class Link:
    """A served interface: its claim, socket and MTU."""

    def __init__(self, name, index, claim, sock, mtu, stats, framing):
        self.name, self.index, self.claim, self.sock = name, index, claim, sock
        self.mtu, self.stats = mtu, stats
        self.largest_frame = framing.largest_frame(mtu)  # longer replies are fragmented

    def close(self, later=False):
        """Close its socket (`later`: close_later()) and its claim."""
        if later:
            close_later(self.sock)
        else:
            self.sock.close()
        self.claim.close()


def is_pattern(name):
    return any(c in name for c in "*?[")


class Interfaces:
    """The interfaces served: each one's claim, socket and counts, and a
    netlink socket that reports interfaces coming and going, all on one
    epoll object, which the loop waits on."""

    def __init__(self, settings, program=None, kinds=None):
        """`program`: the kernel filter (kernel_filter()), REQUEST_FILTER if
        None; `kinds`: what the replies are counted as (Stats), those of
        KINDS in the scope's families if None."""
        self.settings = settings
        self.kinds = kinds if kinds is not None else tuple(
            name for name, kind in KINDS.items() if kind.family in settings.scope.families)
        self.links = {}        # name -> Link being served
        self.by_fd = {}        # socket fd -> Link
        self.by_index = {}     # interface index -> Link
        self.stats = {}        # name -> Stats, kept after an interface leaves (GONE_KEPT)
        self.gone = {}         # the names of interfaces let go whose Stats are kept
        self.gone_stats = Stats.for_kinds(self.kinds)  # those of the others, summed
        self.gone_count = 0    # how many those are
        self.lost = {}         # interfaces lost, in order (GONE_KEPT of them named)
        self.lost_count = 0
        self.refused = set()   # interfaces refused, said once
        self.retry = {}        # name -> index: to serve, tried again at netlink's next news
        self.pending = {}      # name -> index: wanted and up, to serve (serve_pending())
        self.limited = set()   # interfaces not served for want of descriptors
        self.limit_said = False
        self.freed = False     # an interface was let go (its descriptors free) since the news
        self.fds_before = len(os.listdir("/proc/self/fd"))  # open before any interface
        self.program = REQUEST_FILTER if program is None else program
        self.poller = select.epoll()
        self.netlink = socket.socket(socket.AF_NETLINK,
                                     socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                     socket.NETLINK_ROUTE)
        self.netlink.bind((0, RTMGRP_LINK))
        self.poller.register(self.netlink, select.EPOLLIN)

    def wanted(self, name):
        return any(name == spec or (is_pattern(spec) and fnmatch.fnmatchcase(name, spec))
                   for spec in self.settings.specs)

    def serve(self, name, index, quiet=False):
        """Claim `name`, open a socket on it and serve it; raises
        InterfaceTaken or OSError."""
        claim = claim_interface(index)
        try:
            sock = open_socket(name, self.program, index)
            mtu = _mtu(name)
        except BaseException:
            claim.close()
            raise
        stats = self.stats.setdefault(name, Stats.for_kinds(self.kinds))
        link = Link(name, index, claim, sock, mtu, stats, self.settings.framing)
        sock.setblocking(False)
        self.links[name], self.by_fd[sock.fileno()] = link, link
        self.by_index[index] = link
        self.poller.register(sock, select.EPOLLIN)
        if not quiet:
            if name in self.lost:
                log(f"{name}: back; answering again")
            else:
                spec = next(s for s in self.settings.specs
                            if s == name or fnmatch.fnmatchcase(name, s))
                log(f"{name}: serving (matches '{spec}')")
        return link

    def let_go(self, link, why):
        self.freed = True
        del self.links[link.name], self.by_fd[link.sock.fileno()]
        if self.by_index.get(link.index) is link:
            del self.by_index[link.index]
        self.poller.unregister(link.sock)
        link.close(later=True)
        self._retire(link.name)
        if self.settings.exit_on_down:
            return  # the loop ends, and says why
        if link.name in self.settings.specs:
            log(f"{link.name}: {why}; waiting for it to come back")
        else:
            log(f"{link.name}: {why}; let go")

    def _retire(self, name):
        """`name` was let go: it is lost (said once it is back), and its
        counts stay as they are; past GONE_KEPT such interfaces, the oldest
        one's are summed into one line, so that churn cannot grow them."""
        self.lost.pop(name, None)
        self.lost[name] = None
        self.lost_count += 1
        self.gone.pop(name, None)
        self.gone[name] = None
        while len(self.gone) > GONE_KEPT:
            oldest = next(iter(self.gone))
            del self.gone[oldest]
            self.lost.pop(oldest, None)
            self.gone_stats += self.stats.pop(oldest)
            self.gone_count += 1

    def reconcile(self, quiet=False):
        """Serve every wanted interface that is up (and virtual, unless
        --allow-physical), let go of those gone or down; `quiet`: without a
        line for each one served (at start, the start-up line lists them).
        A look at every interface: at start, and when netlink lost news."""
        present = {name: index for index, name in socket.if_nameindex()}
        for link in list(self.links.values()):
            if present.get(link.name) != link.index:
                self.let_go(link, "gone")
            elif not _is_up(link.name):
                self.let_go(link, "down")
        if self.settings.exit_on_down and self.lost:
            return
        for name in sorted(present):
            if name not in self.links and self.wanted(name) and _is_up(name):
                if quiet:  # at start, all at once
                    self._offer(name, present[name], quiet)
                else:
                    self.pending[name] = present[name]

    def _look(self, name, index, up, deleted):
        """Netlink's news of one interface (RTM_NEWLINK, RTM_DELLINK): let it
        go if served and gone, renamed or down; serve it if wanted and up.
        A few microseconds for an interface the tool does not want, however
        many there are."""
        renamed = self.by_index.get(index)
        if renamed is not None and renamed.name != name:
            self.let_go(renamed, "gone")
        link = self.links.get(name)
        if link is not None and (deleted or link.index != index):
            self.let_go(link, "gone")
        elif link is not None and not up:  # news of a deletion say "down" first
            self.let_go(link, "down" if _index_of(name) == index else "gone")
        if deleted or not up:
            self.pending.pop(name, None)
        if deleted or not up or name in self.links or not self.wanted(name) \
                or self.settings.exit_on_down and self.lost:
            return
        self.pending[name] = index

    def _offer(self, name, index, quiet):
        """Serve wanted interface `name`, which is up, unless it is refused;
        one another copy serves, or not quite there, is tried again with
        the next news from netlink."""
        settings = self.settings
        self.retry.pop(name, None)
        refusal = cannot_carry_a_guest(name, settings.scope.targets, settings.any_address)
        if refusal is None and not settings.allow_physical and physical_device(name):
            refusal = f"{name}: a physical interface; not served (--allow-physical overrides)"
        if refusal is not None:
            self._refuse(name, refusal)
            return
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if self.fds_before + 2 * (len(self.links) + 1) + FDS_KEPT_FREE > soft:
            self._at_the_limit(name, OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
            self.retry[name] = index
            return
        try:
            self.serve(name, index, quiet)
            self.limited.discard(name)
        except InterfaceTaken as taken:
            self._refuse(name, f"{name}: {_taken(taken)}; skipped")
            self.retry[name] = index
        except OSError as exc:  # gone again, or not quite there
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._at_the_limit(name, exc)
            elif exc.errno not in (errno.ENODEV, errno.ENXIO, errno.ENETDOWN):
                self._refuse(name, f"{name}: cannot open a packet socket: "
                             f"{exc.strerror or exc}")
            self.retry[name] = index

    def _at_the_limit(self, name, exc):
        """No descriptor left for `name` (two an interface: its socket and its
        claim): said once, with the remedy; tried again when one is let go."""
        self.limited.add(name)
        if self.limit_said:
            return
        self.limit_said = True
        log(f"{name}: not served, nor any other interface past it: {limit_reached(exc)}; "
            f"{len(self.links):,} served. Each one is tried again when another is let go")

    def _refuse(self, name, why):
        """Say once why `name` is not served."""
        if name not in self.refused:
            self.refused.add(name)
            log(why)

    def changed(self):
        """Drain the netlink notifications and look at the interfaces they
        name (and at those to try again); if some were lost (the socket
        overflowed), at every interface."""
        news, lost = {}, False
        while True:
            try:
                data = self.netlink.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    break
                lost = True
                continue
            if not data:
                break
            for index, name, up, deleted in _link_news(data):
                news[index] = (name, up, deleted)
        if lost:
            self.reconcile()
            return
        for index, (name, up, deleted) in news.items():
            self._look(name, index, up, deleted)
        freed, self.freed = self.freed, False
        for name, index in list(self.retry.items()):
            if name in self.limited and not freed:
                continue  # no descriptor was given back: not worth a look
            if name not in self.links and name not in self.pending and _is_up(name):
                self.pending[name] = index

    def serve_pending(self, turn=TURN):
        """Serve the interfaces that came up (pending), for `turn` seconds
        at most (about 0.25 ms each): 200 that come up at once are served
        over a few turns of the loop, every other guest answered between
        them, rather than in one 50-ms block. Says whether some still wait."""
        ends = time.monotonic() + turn
        while self.pending:
            name = next(iter(self.pending))
            index = self.pending.pop(name)
            if name not in self.links:
                self._offer(name, index, quiet=False)
            if time.monotonic() > ends:
                break
        return bool(self.pending)

    def say_why_unserved(self, pattern):
        """At start, for a pattern that serves nothing yet: what matches it."""
        if any(fnmatch.fnmatchcase(name, pattern) for name in self.links):
            return
        matching = sorted(name for _, name in socket.if_nameindex()
                          if fnmatch.fnmatchcase(name, pattern))
        down = [name for name in matching if not _is_up(name)]
        if not matching:
            log(f"no interface matches '{pattern}' yet; waiting for one")
        elif down:
            verb = "matches" if len(down) == 1 else "match"
            log(f"{', '.join(down)} {verb} '{pattern}' but {'is' if len(down) == 1 else 'are'} "
                "down; waiting for one to come up")

    def close(self):
        for link in self.links.values():
            link.close(later=True)  # together: see close_later()
        closed_all()
        self.netlink.close()
        self.poller.close()


# The kernel filter's programs, one per service (Service.filter()), chained
# by kernel_filter().
#
# The replies': only ARP requests, ICMP echo requests, IPv6 Neighbor
# Solicitations and ICMPv6 echo requests that arrive on the interface reach
# Python, and the fragments of ICMP and ICMPv6 datagrams (to reassemble); IPv6
# behind a Hop-by-Hop header too (MLD is such traffic), so that the core can
# look past it. It is shipped compiled so that running the tool needs neither
# libpcap nor tcpdump; tests/offline/test_filter.py checks it against libpcap.
# Regenerate with:  tcpdump -i lo -ddd '<expression>'
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

# With --probe, a second program runs where the first would drop a frame:
# ARP replies, ICMP and ICMPv6 echo replies and Neighbor Advertisements sent
# to the tool's MAC, and Neighbor Advertisements to all nodes (the answer to
# an untagged DAD-form control); nothing else. It is compiled for
# DEFAULT_MAC and probe_filter() puts the tool's MAC in: the expression
# loads each half of the destination once, so the two constants are all
# there is to change (tests/offline/test_filter.py checks other MACs with
# libpcap).
PROBE_FILTER_EXPRESSION = (
    "inbound and ((ether dst 02:76:6c:61:6e:30 and ((arp and arp[6:2] = 2)"
    " or (icmp and icmp[icmptype] = icmp-echoreply)"
    " or (ip6 and ip6[6] = 58 and (ip6[40] = 129 or ip6[40] = 136))))"
    " or (ip6 dst ff02::1 and ip6[6] = 58 and ip6[40] = 136))"
)
PROBE_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 37, 0, 4),
    (32, 0, 0, 2),
    (21, 0, 20, 1818324528),
    (40, 0, 0, 0),
    (21, 0, 18, 630),
    (40, 0, 0, 12),
    (21, 0, 2, 2054),
    (40, 0, 0, 20),
    (21, 28, 29, 2),
    (21, 0, 7, 2048),
    (48, 0, 0, 23),
    (21, 0, 26, 1),
    (40, 0, 0, 20),
    (69, 24, 0, 8191),
    (177, 0, 0, 14),
    (80, 0, 0, 14),
    (21, 20, 21, 0),
    (21, 0, 20, 34525),
    (48, 0, 0, 20),
    (21, 0, 5, 58),
    (48, 0, 0, 54),
    (21, 15, 0, 129),
    (21, 14, 2, 136),
    (40, 0, 0, 12),
    (21, 0, 13, 34525),
    (32, 0, 0, 38),
    (21, 0, 11, 4278321152),
    (32, 0, 0, 42),
    (21, 0, 9, 0),
    (32, 0, 0, 46),
    (21, 0, 7, 0),
    (32, 0, 0, 50),
    (21, 0, 5, 1),
    (48, 0, 0, 20),
    (21, 0, 3, 58),
    (48, 0, 0, 54),
    (21, 0, 1, 136),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)

# With --dhcp, a client's DHCP message; with --ra, a Router Solicitation:
# programs that run after the others, as PROBE_FILTER does.
DHCP_FILTER_EXPRESSION = "inbound and ip and udp dst port 67"
DHCP_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 10, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 8, 2048),
    (48, 0, 0, 23),
    (21, 0, 6, 17),
    (40, 0, 0, 20),
    (69, 4, 0, 8191),
    (177, 0, 0, 14),
    (72, 0, 0, 16),
    (21, 0, 1, 67),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)
# With --boot-file, TFTP: to port 69, and to the ports of the tool's transfers.
TFTP_FILTER_EXPRESSION = ("inbound and ip and udp and (udp dst port 69 or udp dst portrange "
                          "61440-61695)")
TFTP_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 12, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 10, 2048),
    (48, 0, 0, 23),
    (21, 0, 8, 17),
    (40, 0, 0, 20),
    (69, 6, 0, 8191),
    (177, 0, 0, 14),
    (72, 0, 0, 16),
    (21, 2, 0, 69),
    (53, 0, 2, 61440),
    (37, 1, 0, 61695),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)
# With --dhcp6, a client's DHCPv6 message; with --pppoe, PPPoE discovery and
# session frames; with --dot1x, EAPOL.
DHCP6_FILTER_EXPRESSION = "inbound and ip6 and udp dst port 547"
DHCP6_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 7, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 5, 34525),
    (48, 0, 0, 20),
    (21, 0, 3, 17),
    (40, 0, 0, 56),
    (21, 0, 1, 547),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)
PPPOE_FILTER_EXPRESSION = "inbound and (ether proto 0x8863 or ether proto 0x8864)"
PPPOE_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 4, 0, 4),
    (40, 0, 0, 12),
    (21, 1, 0, 34915),
    (21, 0, 1, 34916),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)
EAPOL_FILTER_EXPRESSION = "inbound and ether proto 0x888e"
EAPOL_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 3, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 1, 34958),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)
SOLICITATION_FILTER_EXPRESSION = "inbound and ip6 and ip6[6] = 58 and ip6[40] = 133"
SOLICITATION_FILTER = (
    (40, 0, 0, 4294963204),
    (21, 7, 0, 4),
    (40, 0, 0, 12),
    (21, 0, 5, 34525),
    (48, 0, 0, 20),
    (21, 0, 3, 58),
    (48, 0, 0, 54),
    (21, 0, 1, 133),
    (6, 0, 0, 262144),
    (6, 0, 0, 0),
)




def probe_filter(mac):
    """PROBE_FILTER for the tool's `mac` (bytes)."""
    high, low = int.from_bytes(mac[:2], "big"), int.from_bytes(mac[2:], "big")
    default = mac2str(DEFAULT_MAC)
    patch = {int.from_bytes(default[:2], "big"): high, int.from_bytes(default[2:], "big"): low}
    return tuple((code, jt, jf, patch.get(k, k) if code == 21 else k)
                 for code, jt, jf, k in PROBE_FILTER)


def kernel_filter(programs):
    """The program for the sockets' filter: `programs` (each service's
    Service.filter(), REQUEST_FILTER first) chained, each running where the
    one before would drop a frame. Each ends "accept; drop", every other
    drop jumping to the last instruction (libpcap emits them so): without
    its last, one falls through into the next, which sees the same frame."""
    program = []
    for piece in programs[:-1]:
        program += piece[:-1]
    return tuple(program) + programs[-1]


RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
NLMSG_HEADER = struct.Struct("=IHHII")
IFINFO = struct.Struct("=BxHiII")


def _link_news(data):
    """(index, name, up, deleted) of each RTM_NEWLINK and RTM_DELLINK in
    `data`, what a netlink socket bound to RTMGRP_LINK received."""
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size or offset + length > len(data):
            return
        body = offset + NLMSG_HEADER.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= NLMSG_HEADER.size + IFINFO.size:
            _, _, index, flags, _ = IFINFO.unpack_from(data, body)
            attribute, name = body + IFINFO.size, None
            while attribute + 4 <= offset + length:
                size, kind_of = struct.unpack_from("=HH", data, attribute)
                if size < 4:
                    break
                if kind_of == IFLA_IFNAME:
                    name = data[attribute + 4:attribute + size].split(b"\0", 1)[0].decode(
                        errors="replace")
                attribute += (size + 3) & ~3
            if name is not None:
                yield index, name, bool(flags & IFF_UP), kind == RTM_DELLINK
        offset += (length + 3) & ~3


TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
TIMESPEC = struct.Struct("=qq")
ANCILLARY_SPACE = socket.CMSG_SPACE(AUXDATA.size) + socket.CMSG_SPACE(TIMESPEC.size)


def open_socket(iface, program=REQUEST_FILTER, index=None):
    """A packet socket bound to `iface` (its `index`, looked up if None)
    with the request filter attached, a receive buffer that holds a burst
    of a few thousand requests, and the interface in promiscuous mode.
    Opened here, not by Scapy's L2Socket: that one calls select() on the
    new socket (which fails once descriptors pass 1,023) and looks the
    interface up in Scapy's cache of the whole host's (a reload when it is
    new). receive() reads it as L2Socket's recv_raw() would."""
    if index is None:
        index = socket.if_nametoindex(iface)
    # Made for no protocol, then bound for every one once set up: nothing
    # arrives before the filter is on, and a packet socket made for
    # ETH_P_ALL and bound again waits out an RCU grace period in the
    # kernel (5 ms here), which every other guest would wait too.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                        struct.pack("IHH8s", index, PACKET_MR_PROMISC, 0, b""))
        insns = (bpf_insn * len(program))(*program)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog(len(program), insns))
        try:  # as root, past net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)      # the tag the kernel took off
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # the kernel's time stamp
        sock.bind((iface, ETH_P_ALL))
    except BaseException:
        sock.close()
        raise
    return sock


def receive(sock):
    """(frame, stamp): the next frame on packet socket `sock` (open_socket())
    with its 802.1Q tag put back where the kernel took it off (into the
    metadata), and the kernel's time stamp; as Scapy's recv_raw() does."""
    frame, ancillary, _, _ = sock.recvmsg(MTU, ANCILLARY_SPACE)
    stamp = None
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
            if tci or status & TP_STATUS_VLAN_VALID:
                tag = (tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q, tci)
                frame = b"".join((frame[:12], struct.pack("!HH", *tag), frame[12:]))
        elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            stamp = seconds + nanoseconds * 1e-9
    return frame, stamp


def close_later(sock):
    """Close packet socket `sock` off the loop: closing one waits out an RCU
    grace period in the kernel (6-12 ms here), which the loop need not wait.
    One thread closes them while the tool serves (more, each taking the
    GIL back after every close, would cost the guests' replies); at the end
    closed_all() adds CLOSERS, which share their grace periods: 1,000
    sockets closed in 0.2 s, not 12 s."""
    _closer.put(sock)


def closed_all():
    """Wait for the sockets close_later() took (the end of a run)."""
    _closer.finish()


CLOSERS = 32


class _Closer:
    def __init__(self):
        self.queue, self.threads = queue.SimpleQueue(), []

    def _start(self, count):
        for _ in range(count):
            thread = threading.Thread(target=self._work, name="closer", daemon=True)
            self.threads.append(thread)
            thread.start()

    def put(self, sock):
        self.queue.put(sock)
        if not self.threads:
            self._start(1)

    def _work(self):
        while True:
            sock = self.queue.get()
            if sock is None:
                return
            try:
                sock.close()
            except OSError:
                pass  # gone with its interface

    def finish(self):
        if self.threads:
            self._start(min(CLOSERS, self.queue.qsize()))
        threads, self.threads = self.threads, []
        for _ in threads:
            self.queue.put(None)
        for thread in threads:
            thread.join()


_closer = _Closer()


def _index_of(name):
    """The index of interface `name`, or None if there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


def _is_up(name):
    try:
        with open(f"{SYSFS_NET}/{name}/flags") as flags:
            return bool(int(flags.read(), 16) & IFF_UP)
    except OSError:
        return False


def _mtu(name):
    with open(f"{SYSFS_NET}/{name}/mtu") as mtu:
        return int(mtu.read())


def _check_interface(name):
    """An error message if `name` cannot be served, else None."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return f"{name}: no such interface (see: ip link)"
    if not _is_up(name):
        return f"{name}: interface is down (ip link set {name} up)"
    return None


def cannot_carry_a_guest(name, targets, any_address):
    """Why `name` is no link to serve, or None: the loopback or a link
    without Ethernet frames (a TUN, WireGuard...); or, with neither --ip nor
    --any-address, a bridge, whose other stations' addresses the tool would
    claim (their neighbours' caches would point at it)."""
    try:
        with open(f"{SYSFS_NET}/{name}/type") as kind:
            link_type = int(kind.read())
    except (OSError, ValueError):
        return None  # gone: the socket's opening says so
    if link_type == ARPHRD_LOOPBACK:
        return f"{name}: the loopback interface; no guest is on it"
    if link_type != ARPHRD_ETHER:
        return (f"{name}: not an Ethernet interface (link type {link_type}); the tool "
                "answers Ethernet frames (for a VM: a TAP, not a TUN)")
    if not targets and not any_address and os.path.isdir(f"{SYSFS_NET}/{name}/bridge"):
        return (f"{name}: a bridge, shared by other stations: without --ip the tool would "
                "answer for their addresses too; give --ip for the addresses to answer "
                "(or --any-address to answer for all even so)")
    return None


def _taken(taken):
    pid = taken.args[0]
    return f"already served by another arp_icmp_vlan0{f' (PID {pid})' if pid else ''}"


def claim_interface(index):
    """Claim interface `index` for this process, as a second dnsmasq finds
    its port taken: an abstract Unix socket named after the index, in this
    network namespace, held until the process ends (no file is left after a
    crash). Raises InterfaceTaken with the holder's PID."""
    name = f"\0arp_icmp_vlan0/ifindex/{index}"
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        claim.bind(name)
    except OSError as exc:
        claim.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise InterfaceTaken(_holder(name)) from None
    claim.listen(1)
    return claim


def _holder(name):
    """The PID of the process listening on abstract socket `name`, or None."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK) as probe:
        try:
            probe.connect(name)
            credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        except OSError:
            return None
    return struct.unpack("3i", credentials)[0]


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


def _check_virtual(name, settings):
    """An error message if `name` is, or reaches, a physical network and
    --allow-physical was not given; with it, and without --ip, a warning."""
    physical = physical_device(name)
    if physical is None:
        return None
    via = "" if physical == name else f" (through {physical})"
    if not settings.allow_physical:
        return (f"{name} is a physical interface{via}: the tool would answer ARP "
                "and pings for other hosts on a real network. It is meant for TAP, "
                "veth and other virtual devices; --allow-physical overrides")
    if not settings.scope.targets:
        log(f"WARNING: {name} is a physical interface{via} and no --ip was given: EVERY "
            "ARP request on that network will be answered, claiming other hosts' addresses.")
    return None


# ---------------------------------------------------------------- privileges and signals

def _has_net_raw():
    """This process may open packet sockets (CAP_NET_RAW is effective)."""
    with open("/proc/self/status") as status:
        effective = re.search(r"^CapEff:\s*([0-9a-f]+)", status.read(), re.M)
    return bool(effective and int(effective.group(1), 16) >> CAP_NET_RAW & 1)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def drop_privileges(user):
    """Become `user`, keeping CAP_NET_RAW alone (to open a packet socket on an
    interface that comes later) in the effective, permitted and bounding
    sets; the inheritable and ambient sets are empty. Raises KeyError for an
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


def _stop_on_signals(loop):
    """SIGTERM and Ctrl-C end the loop cleanly between two frames (so the
    pcap file stays whole); SIGALRM, the timer of a blocking receive, hands
    control back to the loop; SIGHUP is ignored. Returns a file descriptor
    that becomes readable when a signal arrives, for epoll to wake on; a
    blocking receive is broken by raising Interrupted."""
    def stop(_signum, _frame):
        loop.stop()

    def wake(_signum, _frame):  # the deadline, or lines due: run() looks which
        loop.woken = True
        if loop.interruptible:
            raise Interrupted
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, wake)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # background jobs keep it
        signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return read_end


# ---------------------------------------------------------------- errors and output
#
# Two channels: log() is a line about the tool itself on stderr (errors,
# warnings, interfaces; Complaints.log rate-limits the repeated ones); say()
# is a line for the user on stdout (Stdout.say, Loop.say: the start-up line,
# the reply and verdict lines that Lines holds, the statistics). Every
# exception the tool raises is here too.

class Fatal(Exception):
    """An error that ends the tool at start or at the end: main() says it,
    in one line, and exits with status 1."""


class InterfaceTaken(Exception):
    """Another copy of the tool serves the interface; args: its PID or None."""


class Interrupted(Exception):
    """A signal broke a blocking receive."""


def log(line):
    """Every line about the tool itself (interfaces, the recording, errors,
    warnings): one line on stderr."""
    print(f"arp_icmp_vlan0: {line}", file=sys.stderr, flush=True)


class Stdout:
    """The lines for the user: the start-up line, the per-reply and verdict
    lines, the statistics. If nobody reads them any more (| head), closed."""

    def __init__(self):
        self.closed = False

    def say(self, line):
        try:
            print(line, flush=True)
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the exit flush)
            self.closed = True


@dataclass
class Stats:
    """One interface's counts. Every frame seen ends in exactly one of:
    a reply sent, ignored, answered a moment later (a Router Solicitation),
    a fragment held for reassembly, an answer to a probe, or an error. What
    the tool sends of its own accord (probes, advertisements) is counted
    apart."""
    replies: dict                  # kind -> replies sent, for the kinds served
    seen: int = 0
    ignored: int = 0
    fragments: int = 0             # held; the one that completes a datagram is answered
    send_errors: int = 0
    internal_errors: int = 0
    answered_later: int = 0        # --ra: solicitations taken, their answer sent later
    acknowledgements: int = 0      # --boot-file: TFTP ACKs taken without a block to send
    probes_sent: int = 0           # --probe: requests the tool sent itself
    probe_answers: int = 0         # frames seen that answer them (Prober.taken_as)
    advertisements: int = 0        # --ra: Router Advertisements sent, solicited or not
    resent: int = 0                # --boot-file: TFTP blocks sent again after a timeout
    eap_requests: int = 0          # --dot1x: EAP-Requests sent unasked to the PAE group

    @classmethod
    def for_kinds(cls, kinds):
        """No counts yet, for the replies of `kinds` (Service.counted)."""
        return cls(dict.fromkeys(kinds, 0))

    def count(self, counter):
        """One more of `counter` (a Service's taken_as, or what its
        send_due() names)."""
        setattr(self, counter, getattr(self, counter) + 1)

    @property
    def replied(self):
        return sum(self.replies.values())

    def __iadd__(self, other):
        for kind, count in other.replies.items():
            self.replies[kind] = self.replies.get(kind, 0) + count
        for name in ("seen", "ignored", "fragments", "send_errors", "internal_errors",
                     "answered_later", "acknowledgements", "probes_sent", "probe_answers",
                     "advertisements", "resent", "eap_requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def line(self):
        kinds = ", ".join(f"{n} {k}" for k, n in self.replies.items())
        line = (f"{self.seen} frames seen, {self.replied} replies sent ({kinds}), "
                f"{self.ignored} ignored")
        if self.answered_later:
            line += f", {self.answered_later} answered a moment later"
        if self.acknowledgements:
            line += f", {self.acknowledgements} acknowledgements taken"
        if self.fragments:
            line += f", {self.fragments} fragments held"
        if self.probes_sent or self.probe_answers:
            line += f", {self.probes_sent} probes sent, {self.probe_answers} answers to them"
        if self.advertisements:
            line += f", {self.advertisements} advertisements sent"
        if self.resent:
            line += f", {self.resent} blocks sent again"
        if self.eap_requests:
            line += f", {self.eap_requests} EAP-Requests sent unasked"
        if self.send_errors or self.internal_errors:
            line += (f", {self.send_errors} send errors, "
                     f"{self.internal_errors} internal errors")
        return line

    def to_json(self):
        return {"frames_seen": self.seen, "replies_sent": self.replied,
                "replies": dict(self.replies), "ignored": self.ignored,
                "answered_later": self.answered_later,
                "acknowledgements": self.acknowledgements, "resent": self.resent,
                "fragments_held": self.fragments, "send_errors": self.send_errors,
                "internal_errors": self.internal_errors, "probes_sent": self.probes_sent,
                "probe_answers": self.probe_answers, "advertisements": self.advertisements,
                "eap_requests": self.eap_requests}


class OutputError(Fatal):
    """A file the tool is to write cannot be used; the message says why."""


class OutputFile:
    """A file the tool writes (-w, --json), opened as root before the
    privilege drop as a careful daemon opens one: never through a symbolic
    link, never blocking (a FIFO), a regular file with one link only, made
    0644 (less if the umask says so), and left as it was until start()
    empties it, once every start-up check has passed; discard() removes a
    file it made if the tool ends before that."""

    def __init__(self, path):
        self.path, self.created = path, False
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                self.fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                self.created = True
            except FileExistsError:
                self.fd = os.open(path, flags)
        except OSError as exc:
            reason = {errno.ELOOP: "a symbolic link, which the tool does not follow",
                      errno.ENXIO: "a FIFO or socket, not a regular file",
                      errno.EISDIR: "a directory"}.get(exc.errno, exc.strerror or str(exc))
            raise OutputError(f"cannot write {path}: {reason}") from None
        info = os.fstat(self.fd)
        problem = (None if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else
                   "has other hard links" if stat.S_ISREG(info.st_mode) else
                   "not a regular file")
        if problem:
            self.discard()
            raise OutputError(f"cannot write {path}: {problem}")
        os.set_blocking(self.fd, True)
        self.identity = (info.st_dev, info.st_ino)  # -w and --json must differ

    def start(self):
        os.ftruncate(self.fd, 0)

    def write(self, data):
        _write_all(self.fd, data)

    def write_json(self, value):
        """`value` as JSON and a newline, written as it is encoded: a large
        summary is never one string in memory."""
        chunks, size = [], 0
        for chunk in json.JSONEncoder(indent=1).iterencode(value):
            chunks.append(chunk)
            size += len(chunk)
            if size >= 1 << 16:
                self.write("".join(chunks).encode())
                chunks, size = [], 0
        self.write(("".join(chunks) + "\n").encode())

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self):
        """Close; remove the file if this made it and it is still the one."""
        if self.created:
            try:
                mine, there = os.fstat(self.fd), os.stat(self.path, follow_symlinks=False)
                if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                    os.unlink(self.path)
            except OSError:
                pass  # gone already
        self.close()


class Recorder:
    """The -w pcap file. Every record is stamped from one clock, the
    kernel's CLOCK_REALTIME: a request when the kernel received it, a reply
    when it was sent. A reply waits in memory until the next request read
    (or the end of a burst) shows that no request stamped earlier is still
    to be written, so the file is in the order frames crossed the wire; a
    stamp never goes backwards (a frame read late takes its predecessor's).

    A write error (disk full, I/O error, file too large) ends the recording,
    not the tool: one line on stderr, the file cut back to its last whole
    record, and every frame after that counted as not recorded."""

    FLUSH_AT = 1 << 16   # bytes buffered before a write in a burst

    def __init__(self, output):
        """Start the recording in `output`, an OutputFile: it is emptied now,
        and the recording owns its descriptor from then on."""
        output.start()
        self.path, self.fd, output.fd = output.path, output.fd, None
        self.buffer = io.BytesIO()
        self.writer = RawPcapWriter(self.buffer, linktype=DLT_EN10MB)  # Scapy's format
        self.writer.write_header(None)
        self.ends = []        # where each buffered record ends in the buffer
        self.on_disk = 0      # bytes of whole records (and the header) in the file
        self.replies = deque()  # (stamp, frame) waiting for their turn
        self.last = 0.0
        self.written = self.not_recorded = 0
        self.error = None
        self.flush()

    def request(self, frame, stamp):
        if self.error:
            self.not_recorded += 1
            return
        while self.replies and self.replies[0][0] <= stamp:
            self._write(*self.replies.popleft())
        self._write(stamp, frame)

    def reply(self, frame, stamp):
        if self.error:
            self.not_recorded += 1
        else:
            self.replies.append((stamp, frame))

    def settle(self):
        """The end of a burst: write what waits, and put it on disk."""
        while self.replies and not self.error:
            self._write(*self.replies.popleft())
        if self.ends:
            self.flush()

    def _write(self, stamp, frame):
        stamp = self.last = max(stamp, self.last)
        seconds = int(stamp)
        self.writer.write_packet(frame, sec=seconds, usec=min(999999, round(
            (stamp - seconds) * 1e6)))
        self.ends.append(self.buffer.tell())
        if self.ends[-1] >= self.FLUSH_AT:
            self.flush()

    def flush(self):
        if self.error:
            return
        data, done = self.buffer.getvalue(), 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError as exc:
            whole = sum(1 for end in self.ends if end <= done)
            cut = self.on_disk + (self.ends[whole - 1] if whole else 0)
            try:
                os.ftruncate(self.fd, cut)
            except OSError:
                pass  # the error itself says the file is incomplete
            self.written += whole
            self.not_recorded += len(self.ends) - whole + len(self.replies)
            self.replies.clear()
            self.error = exc
            os.close(self.fd)
            log(f"{self.path}: {exc.strerror or exc}; recording stopped, answering goes on")
        else:
            self.written += len(self.ends)
            self.on_disk += len(data)
        self.buffer.seek(0)
        self.buffer.truncate()
        self.ends.clear()

    def close(self):
        """Write what waits and close the file; again, it does nothing."""
        if self.fd is None:
            return
        self.settle()
        if not self.error:
            os.close(self.fd)
        self.fd = None

    def line(self):
        line = f"recording: {self.written} frames written to {self.path}"
        if self.error:
            line += (f", {self.not_recorded} not recorded "
                     f"({self.error.strerror or self.error})")
        return line

    def to_json(self):
        return {"file": self.path, "frames_written": self.written,
                "frames_not_recorded": self.not_recorded,
                "error": None if self.error is None else (self.error.strerror
                                                          or str(self.error))}


def _timestamp(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


def frame_summary(frame):
    """Scapy's one-line summary of `frame`, or a short line of the tool's
    own if Scapy cannot make one of what a guest sent (Scapy 2.5.0 takes the
    name in a DNS Search List option as a format string)."""
    try:
        return Ether(frame).summary()
    except Exception:
        ethertype, _ = ethertype_and_offset(frame)
        return (f"{str2mac(frame[6:12])} > {str2mac(frame[:6])} ethertype "
                f"{ethertype or 0:#06x}, {len(frame)} bytes (Scapy could not dissect it)")


def _hex(frame, shown=64):
    """The first bytes of `frame` in hex, for an error line."""
    more = f"... ({len(frame)} bytes)" if len(frame) > shown else ""
    return frame[:shown].hex() + more


LINES_HELD = 8       # per-reply lines held while frames wait; beyond, counted
VERDICTS_HELD = 64   # verdict lines held likewise (all are in the statistics)
LINES_EVERY = 1.0    # seconds: held lines are printed at least this often


class Lines:
    """The per-reply and verdict lines, printed after the replies: held
    while frames wait to be answered (Scapy's summary of a frame costs more
    than answering it), printed one at a time while the sockets are idle
    (the loop looks at them again between two), all at once when
    LINES_EVERY seconds have passed; past LINES_HELD, counted and said in
    one line, so that the lines never cost a reply."""

    def __init__(self, framing, say, clock=time.monotonic):
        self.framing, self.say, self.clock = framing, say, clock
        self.held = []       # Exchanges and verdict lines, in order
        self.verdicts = 0    # verdict lines in held
        self.since = None    # when the oldest held came
        self.not_shown = {}  # what -> how many lines were not held

    def exchange(self, exchange):
        if len(self.held) - self.verdicts < LINES_HELD:
            self._hold(exchange)
        else:
            self._count("replies" if exchange.replied else "frames ignored")

    def verdict(self, line):
        if self.verdicts < VERDICTS_HELD:
            self.verdicts += 1
            self._hold(line)
        else:
            self._count("verdicts (see the statistics)")

    def _hold(self, item):
        if self.since is None:
            self.since = self.clock()
        self.held.append(item)

    def _count(self, what):
        self.not_shown[what] = self.not_shown.get(what, 0) + 1

    def due(self):
        """Seconds until the held lines must be printed."""
        if self.since is None:
            return LONGEST_WAIT
        return max(0.0, self.since + LINES_EVERY - self.clock())

    def write(self, idle):
        """Print the next line held if the sockets are `idle`, or every one
        if they are due."""
        if self.since is None:
            return
        if self.due() == 0:
            while self.since is not None:
                self._print_next()
        elif idle:
            self._print_next()

    def _print_next(self):
        item = self.held.pop(0)
        if isinstance(item, str):
            self.verdicts -= 1
            self.say(item)
        else:
            self.say(self.format(item))
        if self.held:
            return
        if self.not_shown:
            counts = ", ".join(f"{count:,} more {what}"
                               for what, count in self.not_shown.items())
            self.say(f"... {counts} in {self.clock() - self.since:.1f} s "
                     "(lines held back so that answering keeps up)")
            self.not_shown = {}
        self.since = None

    def format(self, exchange):
        where = f"{_timestamp(exchange.stamp)} {exchange.link.name}"
        if exchange.answer is None:
            return f"{where} ignored: {frame_summary(exchange.whole)}"
        if not exchange.replied:  # taken: its line says what it is
            return f"{where} {frame_summary(exchange.whole)} ({exchange.answer.kind})"
        pieces = f" in {len(exchange.frames)} fragments" if len(exchange.frames) > 1 else ""
        return (f"{where} {frame_summary(exchange.whole)} ==> "
                f"{frame_summary(exchange.answer.reply)}{pieces} {self.framing}")


class Complaints:
    """Error lines on stderr, at most one a second of each kind; the rest
    are counted and said with the next one."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.last = {}       # kind -> when its last line was printed
        self.not_shown = {}  # kind -> lines not printed since

    def log(self, kind, line):
        now = self.clock()
        if kind in self.last and now - self.last[kind] < 1.0:
            self.not_shown[kind] = self.not_shown.get(kind, 0) + 1
            return
        self.last[kind] = now
        more = self.not_shown.pop(kind, 0)
        if more:
            line += f" ({more:,} more like it not shown)"
        log(line)


class Report:
    """The statistics block and the JSON summary of a run, from the loop's
    counts, reassembly, recording and services."""

    def __init__(self, loop):
        self.loop = loop

    def total(self):
        total = Stats.for_kinds([kind for service in self.loop.services
                                 for kind in service.counted])
        for stats in self.loop.interfaces.stats.values():
            total += stats
        total += self.loop.interfaces.gone_stats
        return total

    def lines(self):
        """One line per interface (and a total when more than one was
        served), fragments, recording, then one verdict line per guest."""
        loop = self.loop
        elapsed = f"time {loop.elapsed():.1f}s"
        stats, gone = loop.interfaces.stats, loop.interfaces.gone_count
        if not stats and not gone:
            lines = ["--- arp_icmp_vlan0 statistics: no interface was served ---",
                     f"{self.total().line()}, {elapsed}"]
        elif len(stats) == 1 and not gone:
            [name] = stats
            lines = [f"--- {name} arp_icmp_vlan0 statistics ---",
                     f"{self.total().line()}, {elapsed}"]
        else:
            lines = [f"--- arp_icmp_vlan0 statistics: {len(stats) + gone} interfaces, "
                     f"{elapsed} ---"]
            lines += [f"{name}: {counts.line()}" for name, counts in stats.items()]
            if gone:
                lines.append(f"{gone:,} more that went away: "
                             f"{loop.interfaces.gone_stats.line()}")
            lines.append(f"total: {self.total().line()}")
        reassembler = loop.reassembler
        if reassembler.reassembled or reassembler.dropped or reassembler.pending:
            lines.append(f"fragmented requests: {reassembler.reassembled} reassembled, "
                         f"{reassembler.dropped} dropped (overlapping, oversized or "
                         f"timed out), {len(reassembler.pending)} incomplete")
        if loop.recorder:
            lines.append(loop.recorder.line())
        for service in loop.services:
            lines += service.lines()
        return "\n".join(lines)

    def to_json(self, status):
        loop = self.loop
        framing, scope, reassembler = loop.settings.framing, loop.settings.scope, \
            loop.reassembler
        summary = {
            "tool": "arp_icmp_vlan0", "version": __version__,
            "framing": str(framing), "mac": scope.mac,
            "duration_s": round(loop.elapsed(), 3),
            "interfaces_served": len(loop.interfaces.links),
            "interfaces": {name: stats.to_json()
                           for name, stats in loop.interfaces.stats.items()},
            "interfaces_gone": {"count": loop.interfaces.gone_count,
                                "total": loop.interfaces.gone_stats.to_json()},
            "total": self.total().to_json(),
            "fragmented_requests": {"reassembled": reassembler.reassembled,
                                    "dropped": reassembler.dropped,
                                    "incomplete": len(reassembler.pending)},
            "recording": loop.recorder.to_json() if loop.recorder else None,
        }
        for service in SERVICES:  # null for a service that is off
            summary.update(dict.fromkeys(service.json_keys))
        for service in loop.services:
            summary.update(service.to_json())
        summary["exit_status"] = status
        return summary


# ---------------------------------------------------------------- the fleet view
#
# A daemon's verdicts where its operators' monitoring already looks:
# --metrics writes the Prometheus text format for node_exporter's textfile
# collector, and --json-interval rewrites the JSON summary while the tool
# runs. Every count in the metrics is read from the JSON summary made at the
# same moment (metrics_text()), so the two never disagree. No server: the
# collector reads the file.

METRICS_INTERVAL = 15.0  # seconds between --metrics rewrites without --json-interval
METRIC = "arp_icmp_vlan0_"
# The per-interface counters (Stats.to_json()'s keys) the metrics give per
# interface; every one of them is also given for the host (all interfaces,
# those gone included).
PER_INTERFACE = ("frames_seen", "ignored", "probes_sent", "send_errors", "internal_errors")
COUNTERS = {
    "frames_seen": "Frames received that reached the tool (its kernel filter's)",
    "ignored": "Frames received and not answered",
    "answered_later": "Requests answered once their fragments were whole",
    "acknowledgements": "Frames taken without a reply: answers to what the tool sent",
    "resent": "Replies sent again",
    "fragments_held": "Fragments received",
    "send_errors": "Replies that could not be sent",
    "internal_errors": "Frames a bug in the tool could not handle (said in a line)",
    "probes_sent": "Probes sent (--probe)",
    "probe_answers": "Answers to probes (--probe)",
    "advertisements": "Router Advertisements sent unasked (--ra)",
    "eap_requests": "EAP-Requests sent (--dot1x)",
}


def _label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name, labels, value):
    inside = ",".join(f'{key}="{_label(text)}"' for key, text in labels.items())
    return f"{METRIC}{name}{{{inside}}} {value}" if inside else f"{METRIC}{name} {value}"


def metrics_text(summary, services, framing, now):
    """`summary` (Report.to_json()) in the Prometheus text format (0.0.4):
    the tool, the host's counts, each interface's, and each service's guests
    by interface and verdict ("pending" before one) and what it holds
    (leases, bindings, sessions) by interface; `framing`: the replies'
    (str); `now`: when."""
    out = []

    def family(name, kind, text, samples):
        out.append(f"# HELP {METRIC}{name} {text}")
        out.append(f"# TYPE {METRIC}{name} {kind}")
        out.extend(_sample(name, labels, value) for labels, value in samples)

    family("info", "gauge", "The tool: its version, MAC and the framing of its replies",
           [({"version": summary["version"], "mac": summary["mac"], "framing": framing}, 1)])
    family("running", "gauge", "1 while the tool runs, 0 in the file it writes at its end",
           [({}, int(summary["exit_status"] is None))])
    if summary["exit_status"] is not None:
        family("exit_status", "gauge", "The exit status of the run that wrote this file",
               [({}, summary["exit_status"])])
    family("run_seconds", "gauge", "Seconds since the tool started serving",
           [({}, summary["duration_s"])])
    family("written_timestamp_seconds", "gauge", "When this file was written (Unix time)",
           [({}, round(now, 3))])
    family("interfaces_served", "gauge", "Interfaces served now",
           [({}, summary["interfaces_served"])])
    total, interfaces = summary["total"], summary["interfaces"]
    family("replies_total", "counter", "Replies sent, by kind (all interfaces)",
           [({"kind": kind}, count) for kind, count in total["replies"].items()])
    for key, text in COUNTERS.items():
        family(f"{key}_total", "counter", f"{text} (all interfaces)", [({}, total[key])])
    family("interface_replies_total", "counter", "Replies sent, by interface and kind",
           [({"interface": name, "kind": kind}, count)
            for name, counts in interfaces.items() for kind, count in counts["replies"].items()])
    for key in PER_INTERFACE:
        family(f"interface_{key}_total", "counter", f"{COUNTERS[key]}, by interface",
               [({"interface": name}, counts[key]) for name, counts in interfaces.items()])
    guests, held = {}, {}
    for service in services:
        for key in service.json_keys:
            for record in _records(summary.get(key)):
                label = (record["interface"], service.service, record["verdict"] or "pending")
                guests[label] = guests.get(label, 0) + 1
            part = summary.get(key)
            for what in service.held if isinstance(part, dict) else ():
                for entry in part.get(what) or ():
                    label = (entry["interface"], service.service, what)
                    held[label] = held.get(label, 0) + 1
    family("guests", "gauge", "Guests by interface, service and verdict (pending: none yet)",
           [({"interface": interface, "service": service, "verdict": verdict}, count)
            for (interface, service, verdict), count in sorted(guests.items())])
    family("held", "gauge", "What a service holds for the guests of an interface: DHCP "
           "leases and offers, DHCPv6 bindings, PPPoE sessions",
           [({"interface": interface, "service": service, "what": what}, count)
            for (interface, service, what), count in sorted(held.items())])
    return "\n".join(out) + "\n"


def _records(part):
    """The records with a verdict in a service's part of the JSON summary:
    the dicts with an interface and a verdict, in it or in its lists, one
    level down."""
    if isinstance(part, dict):
        for value in part.values():
            yield from _records_in(value)
    else:
        yield from _records_in(part)


def _records_in(value):
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "interface" in item and "verdict" in item:
                yield item


class StateWriter:
    """--json-interval and --metrics: files rewritten while the tool runs,
    each one whole (a new file beside it, renamed over it), so that a reader
    never sees half of one, as the textfile collector asks. The tool runs as
    nobody by then, who may make no file in /run or in the collector's
    folder; so a child forked before the privilege drop keeps root for this
    one job. It takes nothing but the JSON summary (and when it was made)
    over a pipe from the tool, as JSON, which it parses (no pickle: nothing
    the tool sends can run in it); it formats both files itself, on a core
    of its own (with 1,000 interfaces, the larger part of a write, which
    the loop need not wait: tests/figures/README.rst, Many guests), writes
    nothing but the
    files named at start, and ends when the pipe closes: at the tool's end,
    however it ends."""

    HEADER = struct.Struct("=dQ")

    def __init__(self, json_path, metrics_path, services, framing):
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            status = 1
            try:
                os.close(write)
                _write_from(read, json_path, metrics_path, services, framing)
                status = 0
            finally:
                os._exit(status)
        os.close(read)
        self.pipe, self.broken = write, None

    def send(self, summary, now):
        """Have the files rewritten from `summary` (Report.to_json()), made
        at `now`; False once the child is gone (said once)."""
        if self.broken:
            return False
        data = json.dumps(summary, separators=(",", ":")).encode()
        try:
            _write_all(self.pipe, self.HEADER.pack(now, len(data)) + data)
        except OSError as exc:
            self.broken = exc
            log(f"error: the files of --json-interval and --metrics are no longer written: "
                f"their writer is gone ({exc.strerror or exc})")
            return False
        return True

    def close(self):
        if self.pipe is not None:
            os.close(self.pipe)
            self.pipe = None
            os.waitpid(self.pid, 0)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_from(read, json_path, metrics_path, services, framing):
    """StateWriter's child: ignore the signals that end the tool (its end
    closes the pipe), keep nothing else open, and rewrite the files from
    each summary the pipe brings; a file that cannot be written is said
    once, until it can."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(number, signal.SIG_IGN)
    os.closerange(3, read)
    os.closerange(read + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    failing = {}
    header = StateWriter.HEADER
    with os.fdopen(read, "rb") as pipe:
        while len(head := pipe.read(header.size)) == header.size:
            now, size = header.unpack(head)
            data = pipe.read(size)
            if len(data) < size:
                return
            files = []
            try:
                summary = json.loads(data)
                if json_path:
                    files.append((json_path, (json.dumps(summary, indent=1) + "\n").encode()))
                if metrics_path:
                    files.append((metrics_path, metrics_text(summary, services, framing,
                                                             now).encode()))
            except Exception as exc:  # a bug: said once, and the next summary tried
                if failing.get(None) != repr(exc):
                    failing[None] = repr(exc)
                    log(f"error: cannot format --json-interval's and --metrics' files: {exc!r}")
            for path, content in files:
                try:
                    replace_file(path, content)
                    failing.pop(path, None)
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    if failing.get(path) != reason:
                        failing[path] = reason
                        log(f"error: cannot write {path}: {reason}")


def replace_file(path, data):
    """Replace `path` with a file holding `data`, at once: written beside
    it (a hidden name, made anew, never through a link), then renamed over
    it; the rename replaces whatever `path` is without following it."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, data)
        os.close(fd)
        fd = None
        os.rename(temporary, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class Snapshots:
    """What the loop has written every `interval` seconds while it runs: the
    JSON summary (--json with --json-interval) and the metrics, by the
    StateWriter, from one Report.to_json() (the loop's part of the cost)."""

    def __init__(self, writer, interval):
        self.writer, self.interval = writer, interval
        self.next = time.monotonic()  # the first at once: the file is there from the start

    def due(self):
        return max(0.0, self.next - time.monotonic())

    def write(self, report, status=None):
        """Have both written now (`status`: the exit status, at the end)."""
        self.next = time.monotonic() + self.interval
        self.writer.send(report.to_json(status), time.time())


# ---------------------------------------------------------------- the command line

EXAMPLES = """\
examples:
  sudo ./arp_icmp_vlan0.py tap0
        answer every ARP and ping on tap0, replies tagged vlan 0, p 0
  sudo ./arp_icmp_vlan0.py --ip 198.51.100.2 tap0
        answer only for 198.51.100.2, and defend it as its owner would
  sudo ./arp_icmp_vlan0.py 'vnet*'
        every libvirt TAP, those that exist and those that come later
  sudo ./arp_icmp_vlan0.py --until-verdict --timeout 30 --json run.json tap0
        end once the guest has shown whether it accepts the tagged replies
  sudo ./arp_icmp_vlan0.py --probe 198.51.100.1 --until-verdict --timeout 30 tap0
        ask a silent guest: does it answer tagged ARP requests and pings?
  sudo ./arp_icmp_vlan0.py --ip 198.51.100.2/24 --dhcp --boot-file boot.ipxe tap0
        network boot: PXE offers naming boot.ipxe, which tagged TFTP serves
  sudo ./arp_icmp_vlan0.py --allow-physical --prio 6 --ip 2001:db8::2/64 --dhcp6 \\
        --delegate 2001:db8:100::/40 --pppoe --dot1x --until-verdict eth1
        an ISP's side of a router's WAN port on eth1, tagged vlan 0, p 6: DHCPv6
        with a /56 delegated, PPPoE discovery and 802.1X; each line says how the
        router's own frames were tagged
  sudo ./arp_icmp_vlan0.py --vlan 7 --prio 5 -w replies.pcap tap0 tap1
        tag vlan 7, p 5 on two TAPs and record requests and replies
  sudo ./arp_icmp_vlan0.py --vlan 100 --vlan 0 --tpid 0x88a8 tap0
        QinQ: an 802.1ad outer tag with VLAN 100 over an 802.1Q VLAN 0 tag
  sudo ./arp_icmp_vlan0.py --untagged tap0
        the baseline: the same replies without a tag
  sudo ./arp_icmp_vlan0.py --self-test
        prove this host works: a throwaway namespace pings through the tool
  ./arp_icmp_vlan0.py -r wan.pcap --switch-mac 00:00:5e:00:53:01
        judge a capture of a real switch's or ISP's port (no root, nothing
        sent), made with: tcpdump -i eth1 -e -w wan.pcap
  watch the tags alongside:  tcpdump -n -e -i tap0   (shows "vlan 0, p 0")

exit status:
  0  normal end; with --until-verdict: every guest heard accepts the replies
     (and, with --probe, answers the tagged requests; with --dhcp, --ra,
     --dhcp6, --pppoe and --dot1x, takes the offers, advertisements and
     EAP-Requests: each judge asked for judged it)
  1  error (unknown, down or physical interface, no permission...; with -r: a
     file that is no Ethernet capture, or damaged: its frames before judged)
  2  usage error
  3  --until-verdict (or -r): a guest drops the tagged replies (or, probed, the requests;
     or the DHCP offers, Router Advertisements, boot file's TFTP blocks,
     DHCPv6 Advertises, PPPoE PADOs or PADS, or EAP-Requests)
  4  --until-verdict (or -r): no verdict for every guest by the end (--timeout);
     nobody answered a probe, tagged or untagged; a judge asked for (--dhcp,
     --ra, --dhcp6, --pppoe, --dot1x) heard nothing from a guest within 15 s
     of its first frame; or guests
     beyond the room to judge them (256 an interface, 4,096 in all)
  5  the -w recording is incomplete (a write error stopped it); 3 and 4 win
"""


def _mac(text):
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
        raise argparse.ArgumentTypeError(f"invalid MAC address: {text!r}")
    if int(text[:2], 16) & 1:
        raise argparse.ArgumentTypeError(f"not a unicast MAC address: {text!r}")
    if not int(text.replace(":", ""), 16):
        raise argparse.ArgumentTypeError(f"the all-zero MAC address is no station's: {text!r}")
    return text.lower()


def _ip_target(text):
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid IPv4 or IPv6 address or prefix: {text!r}") from None
    address = interface.ip
    what = ("a multicast" if address.is_multicast else
            "the unspecified" if address.is_unspecified else
            "a loopback" if address.is_loopback else
            "the broadcast" if address == ipaddress.IPv4Address("255.255.255.255") else None)
    if what:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {what} address, which no guest asks for (without --ip, "
            "the tool answers for any unicast address)")
    return interface


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


TIMEOUT_MAX = 10**9  # seconds (31 years): past it, the clock's arithmetic overflows
INTERVAL_MIN = 0.1  # seconds: --json-interval's least


def _seconds(text):
    """`text` as a number of seconds; 0 if it is none (said by the caller)."""
    try:
        return float(text)
    except ValueError:
        return 0


def _timeout(text):
    value = _seconds(text)
    if not 0 < value <= TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(
            f"timeout must be a number of seconds above 0 and up to {TIMEOUT_MAX}: {text!r}")
    return value


def _interval(text):
    value = _seconds(text)
    if not INTERVAL_MIN <= value <= TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(
            f"interval must be a number of seconds from {INTERVAL_MIN:g} up to "
            f"{TIMEOUT_MAX}: {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="arp_icmp_vlan0.py",
        description="Answer ARP requests, IPv6 Neighbor Solicitations and ICMP/ICMPv6 "
                    "echo requests\nseen on INTERFACE with 802.1Q-tagged replies: VLAN ID "
                    "0 ('priority tagging')\nby default, as a quirky switch does; and say "
                    "whether each guest accepts them.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interfaces", nargs="*", metavar="INTERFACE",
                        help="interface(s) to serve, e.g. a VM's TAP device, or a "
                             "quoted shell-style pattern ('vnet*') that also serves "
                             "interfaces made later")
    parser.add_argument("--mac", type=_mac, default=DEFAULT_MAC,
                        help=f"MAC the replies come from (default {DEFAULT_MAC})")
    parser.add_argument("--ip", type=_ip_target, action="append",
                        metavar="ADDR[/LEN]", dest="targets", default=[],
                        help="answer only for this IPv4 or IPv6 address or "
                             "prefix; repeatable (default: any unicast address). "
                             "A single address is defended as its owner would: "
                             "ARP probes and DAD for it are answered")
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
    parser.add_argument("--probe", nargs="*", metavar="ADDR",
                        help="also ask the guest: send ARP requests or Neighbor "
                             "Solicitations for ADDR, then pings, tagged like the "
                             "replies, and an untagged control if they go "
                             "unanswered; the verdict then says whether the guest "
                             "answers tagged requests. Without ADDR: every guest "
                             "address the tool hears")
    services = parser.add_argument_group(
        "guests that configure themselves", "Never on by default; the replies are "
        "tagged like the others.")
    services.add_argument("--dhcp", action="store_true",
                          help="answer DHCP: lease addresses from the --ip IPv4 prefix, "
                               "whose host part is the tool's address (server and "
                               "router): --ip 198.51.100.2/24 --dhcp")
    services.add_argument("--ra", action="store_true",
                          help="send Router Advertisements for the --ip IPv6 /64 (on-link, "
                               "autonomous: SLAAC), unsolicited and to every Router "
                               "Solicitation")
    services.add_argument("--boot-file", type=_boot_file, action="append", default=[],
                          metavar="[ARCH=]FILE", dest="boot_files",
                          help="with --dhcp: network boot. PXE clients are offered FILE "
                               "(by its name) with the tool as TFTP server, and fetch it "
                               "over TFTP, tagged; repeatable, one per ARCH: bios, "
                               "efi-ia32, efi-x64, efi-arm64, or ipxe (iPXE itself, "
                               "by its user class); without ARCH, for every other")
    services.add_argument("--router-lifetime", type=_ranged_int("router lifetime", 0, 9000),
                          default=0, metavar="SECONDS",
                          help="the advertisements' router lifetime (default 0: the tool "
                               "is no default router)")
    access = parser.add_argument_group(
        "the access link", "What an ISP's side of a router's or CPE's WAN port sends, "
        "tagged like the replies; never on by default.")
    access.add_argument("--dhcp6", action="store_true",
                        help="answer DHCPv6 (RFC 8415): addresses (IA_NA) from the --ip "
                             "IPv6 /64, and prefixes (IA_PD) with --delegate; Rapid "
                             "Commit when asked: --ip 2001:db8::2/64 --dhcp6")
    access.add_argument("--delegate", type=_delegated, metavar="PREFIX/LEN",
                        help="with --dhcp6: delegate prefixes of --delegated-length from "
                             "PREFIX/LEN, as an ISP does to a CPE (e.g. 2001:db8:100::/40)")
    access.add_argument("--delegated-length", type=_ranged_int("delegated length", 1, 64),
                        metavar="LEN", help="the length of each delegated prefix (default "
                        f"{DELEGATED_LENGTH}, or 64 for a --delegate longer than /"
                        f"{DELEGATED_LENGTH})")
    access.add_argument("--pppoe", action="store_true",
                        help="answer PPPoE discovery as an access concentrator (RFC 2516): "
                             "PADI -> PADO, PADR -> PADS; no PPP session beyond")
    access.add_argument("--ac-name", metavar="NAME", type=_ac_name,
                        help=f"with --pppoe: the AC-Name (default {DEFAULT_AC_NAME})")
    access.add_argument("--dot1x", action="store_true",
                        help="be a wired 802.1X authenticator (EAPOL): EAP-Request/Identity, "
                             "EAP-MD5, then EAP-Success whatever the answer (a test "
                             "authenticator: it lets everyone in)")
    access.add_argument("--expect-framing", type=_expected_framing, metavar="TAGS",
                        help="count each guest's own frames that are not framed so, in "
                             "tcpdump's words: 'vlan 0, p 6', 'vlan 0' (any priority) or "
                             "'untagged'; a finding in the statistics and JSON, not a verdict")
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
    safety.add_argument("--any-address", action="store_true",
                        help="serve a bridge without --ip: answer for every address "
                             "on a segment that other stations share (as a proxy: "
                             "their own Neighbor Advertisements win)")
    safety.add_argument("--user",
                        help=f"user to run as once the sockets are open, keeping only "
                             f"CAP_NET_RAW (default: {DEDICATED_USER} if that system "
                             "user exists, else nobody)")
    safety.add_argument("--keep-root", action="store_true",
                        help="do not drop root privileges")
    safety.add_argument("--exit-on-down", action="store_true",
                        help="exit (status 1) when an interface goes away, instead "
                             "of waiting for it to come back")
    ending = parser.add_argument_group("running and output")
    ending.add_argument("-c", "--count", type=_ranged_int("count", 1, 2**63 - 1),
                        default=0, metavar="N", help="exit after N replies")
    ending.add_argument("--timeout", type=_timeout, metavar="SECONDS",
                        help="exit after SECONDS")
    ending.add_argument("--until-verdict", action="store_true",
                        help="exit as soon as every guest heard (and every DHCP, TFTP, "
                             "RA, DHCPv6, PPPoE and 802.1X client) has shown whether it "
                             "accepts the replies; the exit status says (below)")
    ending.add_argument("-w", "--write", metavar="FILE",
                        help="write requests and replies to a pcap FILE")
    reading = parser.add_argument_group(
        "judging a capture", "A recording made anywhere (tcpdump -e -w on a real switch's "
        "or ISP's port, or -w's): the verdicts for what its frames show. No INTERFACE, no "
        "root, nothing sent; what the switch serves, and how it tags, is read from it.")
    reading.add_argument("-r", "--read", metavar="FILE",
                         help="judge the pcap or pcapng FILE ('-': standard input) as "
                              "--until-verdict judges a run that ends with it")
    reading.add_argument("--switch-mac", type=_mac, action="append", default=[],
                         metavar="MAC", dest="switch_macs",
                         help="with -r: the switch's MAC (repeatable); default: the tool's "
                              "--mac if it sent frames (-w's recording), else the station(s) "
                              "that serve DHCP, RA, DHCPv6, PPPoE or 802.1X, else the one "
                              "that answers the others' ARP, NDP and pings")
    ending.add_argument("--json", metavar="FILE",
                        help="write a JSON summary to FILE at the end: counts, "
                             "fragments, recording, and each guest's verdict with "
                             "its evidence")
    ending.add_argument("--metrics", metavar="FILE",
                        help="write metrics in the Prometheus text format to FILE (for "
                             "node_exporter's textfile collector: a FILE ending .prom in "
                             "its folder): guests by verdict, replies, probes, leases, "
                             "errors, per interface; rewritten every --json-interval "
                             "seconds (default 15) and at the end")
    ending.add_argument("--json-interval", type=_interval, metavar="SECONDS",
                        help="also rewrite --json every SECONDS while running (and "
                             "--metrics: default 15); each rewrite replaces the file "
                             "whole, so that a reader never sees half of one")
    chatter = ending.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", dest="verbose", action="store_const",
                         const=-1, default=0,
                         help="print only the start-up line, verdicts and statistics")
    chatter.add_argument("-v", "--verbose", dest="verbose",
                         action="store_const", const=1,
                         help="also print the frames that are not answered")
    ending.add_argument("--busy-poll", action="store_true",
                        help="poll the sockets without sleeping: idle round trips "
                             "about half as long, for a whole CPU core")
    parser.add_argument("-V", "--version", action="version",
                        version=f"%(prog)s {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this host end to end in throwaway network "
                             "namespaces, then exit (needs root, ip, ping)")
    return parser


def _delegated(text):
    """--delegate's PREFIX/LEN: an IPv6 prefix no longer than /64."""
    try:
        network = ipaddress.IPv6Network(text, strict=True)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid IPv6 prefix: {text!r} (e.g. 2001:db8:100::/40, host bits zero)") from None
    if network.prefixlen > 64 or "/" not in text:
        raise argparse.ArgumentTypeError(f"--delegate needs a prefix of /64 or shorter: {text!r}")
    return network


def _expected_framing(text):
    """--expect-framing's TAGS: ((VID, PCP or None), ...) outer first; ()
    for untagged."""
    words = text.strip().lower()
    if words == "untagged":
        return ()
    tag = r"vlan\s+(\d{1,4})(?:\s*,?\s*p\s+([0-7]))?"
    if not re.fullmatch(rf"{tag}(\s*,\s*{tag})*", words):
        raise argparse.ArgumentTypeError(
            f"invalid --expect-framing {text!r}: 'vlan 0, p 6', 'vlan 0' or 'untagged'")
    tags = tuple((int(vid), int(pcp) if pcp else None)
                 for vid, pcp in re.findall(tag, words))
    if any(vid > 4094 for vid, _ in tags):
        raise argparse.ArgumentTypeError(f"--expect-framing: a VLAN ID is 0-4094: {text!r}")
    return tags


def _ac_name(text):
    if not 0 < len(text) <= 64 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"--ac-name: 1 to 64 printable characters: {text!r}")
    return text


def _boot_file(text):
    """--boot-file's [ARCH=]FILE: (the key, the path). A path with "=" in
    its folders is a path (./a=b names the file a=b)."""
    key, sep, path = text.partition("=")
    if not sep or "/" in key:
        key, path = "", text
    elif key not in BOOT_FILE_KEYS:
        raise argparse.ArgumentTypeError(
            f"unknown ARCH {key!r} in --boot-file: one of {', '.join(BOOT_FILE_KEYS)} "
            f"(a file whose name has \"=\": ./{text})")
    if not path:
        raise argparse.ArgumentTypeError(f"--boot-file needs a FILE: {text!r}")
    return key, path


def read_boot_files(pairs):
    """--boot-file's files, read now (as root, before the privilege drop:
    no path is opened later): key -> (the name served, the contents).
    ValueError says what is wrong with one."""
    files, names = {}, {}
    for key, path in pairs:
        if key in files:
            raise ValueError(f"--boot-file: {key or 'a file for every client'} given twice")
        name = os.path.basename(path)
        try:
            # O_NONBLOCK: a FIFO is refused, not waited on.
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    raise ValueError(f"--boot-file {path}: not a regular file")
                data = file.read(TFTP_FILE_MAX + 1)
        except OSError as exc:
            raise ValueError(f"--boot-file {path}: {exc.strerror or exc}") from None
        if len(data) > TFTP_FILE_MAX:
            raise ValueError(f"--boot-file {path}: larger than {TFTP_FILE_MAX >> 20} MiB")
        if names.get(name, data) != data:
            raise ValueError(f"--boot-file: two different files named {name!r}")
        names[name] = data
        files[key] = (name, data)
    return files


def _split_probe(args, parser):
    """--probe's words: the addresses, then the interfaces it swallowed
    (--probe tap0: probe what is heard on tap0)."""
    words, args.probe = args.probe, None if args.probe is None else []
    for i, word in enumerate(words or ()):
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            if re.fullmatch(r"[0-9a-fA-F.:]*[.:][0-9a-fA-F.:]*(/\d+)?", word):
                parser.error(f"argument --probe: invalid IPv4 or IPv6 address: {word!r}")
            args.interfaces[:0] = words[i:]
            return
        args.probe.append(address)


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    _split_probe(args, parser)
    if args.read is not None:
        _check_reading(args, parser)
        return args
    if args.switch_macs:
        parser.error("--switch-mac goes with -r")
    if not args.interfaces and not args.self_test:
        parser.error("an INTERFACE is required (or --self-test)")
    if args.interfaces and args.self_test:
        parser.error("--self-test takes no INTERFACE")
    if len(set(args.interfaces)) != len(args.interfaces):
        parser.error("an INTERFACE is named twice")
    if args.targets and not any(ip.version in args.families for ip in args.targets):
        parser.error(f"no --ip address is IPv{min(args.families)}: nothing to answer")
    if args.untagged and (args.vlan or args.prio is not None or args.dei or args.tpid):
        parser.error("--untagged takes no --vlan, --prio, --dei or --tpid")
    if args.write and args.json and os.path.abspath(args.write) == os.path.abspath(args.json):
        parser.error("-w and --json name the same file")
    if args.metrics and os.path.abspath(args.metrics) in (
            os.path.abspath(path) for path in (args.write, args.json) if path):
        parser.error("--metrics names the same file as -w or --json")
    if args.json_interval is not None and not (args.json or args.metrics):
        parser.error("--json-interval goes with --json or --metrics")
    if args.dhcp and dhcp_pool(args.targets) is None:
        parser.error("--dhcp needs the tool's address in an IPv4 prefix to lease from: "
                     "--ip ADDR/LEN, e.g. --ip 198.51.100.2/24")
    if args.dhcp and 4 not in args.families:
        parser.error("--dhcp is IPv4: not with -6")
    if args.ra and ra_prefix(args.targets) is None:
        parser.error("--ra needs the IPv6 /64 to advertise: --ip ADDR/64, e.g. "
                     "--ip 2001:db8::2/64")
    if args.ra and 6 not in args.families:
        parser.error("--ra is IPv6: not with -4")
    if args.router_lifetime and not args.ra:
        parser.error("--router-lifetime goes with --ra")
    if args.boot_files and not args.dhcp:
        parser.error("--boot-file goes with --dhcp (the offers name the file)")
    try:
        args.boot_files = read_boot_files(args.boot_files)
    except ValueError as exc:
        parser.error(str(exc))
    if args.self_test and (args.dhcp or args.ra or args.dhcp6 or args.pppoe or args.dot1x):
        parser.error("--self-test takes no --dhcp, --ra, --dhcp6, --pppoe or --dot1x")
    _check_access(args, parser)
    if args.probe is not None and SCAPY_MISSING is None:  # else main() says it is missing
        if args.self_test:
            parser.error("--self-test takes no --probe")
        scope = scope_from(args)
        for address in args.probe:
            refusal = probe_refusal(address.packed, scope)
            if refusal:
                parser.error(f"argument --probe: {refusal}")
        if len(set(args.probe)) != len(args.probe):
            parser.error("argument --probe: an address is named twice")
    if args.user is None:
        args.user = DEDICATED_USER if _user_exists(DEDICATED_USER) else "nobody"
    return args


def _check_reading(args, parser):
    """-r's rules: what the switch served, and how, is read from the
    capture, and nothing is served: no INTERFACE, nor an option that says
    what to serve, send or how long to run."""
    given = [flag for flag, value in (
        ("INTERFACE", args.interfaces), ("--self-test", args.self_test), ("-w", args.write),
        ("--ip", args.targets), ("--probe", args.probe is not None), ("--dhcp", args.dhcp),
        ("--ra", args.ra), ("--boot-file", args.boot_files), ("--dhcp6", args.dhcp6),
        ("--delegate", args.delegate), ("--pppoe", args.pppoe), ("--dot1x", args.dot1x),
        ("--ac-name", args.ac_name), ("--router-lifetime", args.router_lifetime),
        ("--vlan", args.vlan), ("--prio", args.prio is not None), ("--dei", args.dei),
        ("--tpid", args.tpid), ("--untagged", args.untagged), ("-c", args.count),
        ("--timeout", args.timeout is not None), ("--busy-poll", args.busy_poll),
        ("--exit-on-down", args.exit_on_down), ("--any-address", args.any_address),
        ("--allow-physical", args.allow_physical), ("--user", args.user),
        ("--keep-root", args.keep_root), ("--metrics", args.metrics),
        ("--json-interval", args.json_interval is not None)) if value]
    if given:
        parser.error(f"-r reads what the switch served, and how, from the capture: not with "
                     f"{', '.join(given)}")
    if args.json and args.read != "-" and os.path.abspath(args.json) == os.path.abspath(
            args.read):
        parser.error("-r and --json name the same file")
    args.switch_macs = [mac2str(mac) for mac in args.switch_macs]


def _check_access(args, parser):
    """--dhcp6, --delegate, --pppoe and --dot1x's rules; the delegation as
    (IPv6Network, length) in args.delegate."""
    if args.delegate is not None and not args.dhcp6:
        parser.error("--delegate goes with --dhcp6")
    if args.delegated_length is not None and args.delegate is None:
        parser.error("--delegated-length goes with --delegate")
    if args.dhcp6 and 6 not in args.families:
        parser.error("--dhcp6 is IPv6: not with -4")
    if args.dhcp6 and dhcp6_pool(args.targets)[0] is None and args.delegate is None:
        parser.error("--dhcp6 needs an IPv6 /64 to lease addresses from (--ip ADDR/64, e.g. "
                     "--ip 2001:db8::2/64), or prefixes to delegate (--delegate PREFIX/LEN)")
    if args.delegate is not None:
        length = args.delegated_length or (
            DELEGATED_LENGTH if args.delegate.prefixlen <= DELEGATED_LENGTH else 64)
        if length < args.delegate.prefixlen:
            parser.error(f"--delegated-length {length} is shorter than --delegate's "
                         f"/{args.delegate.prefixlen}")
        args.delegate = (args.delegate, length)
    if args.ac_name is not None and not args.pppoe:
        parser.error("--ac-name goes with --pppoe")
    args.pppoe = (args.ac_name or DEFAULT_AC_NAME) if args.pppoe else None


def framing_from(args):
    if args.untagged:
        return Framing(vlans=(), pad=args.pad)
    return Framing(vlans=tuple(args.vlan or [0]), prio=args.prio or 0, dei=args.dei,
                   tpid=args.tpid or ETH_P_8021Q, pad=args.pad)


def scope_from(args):
    """The Scope; its families are those of the --ip addresses, if any."""
    families = args.families
    if args.targets:
        families = families & {ip.version for ip in args.targets}
    own = tuple(ip.ip.packed for ip in args.targets
                if ip.network.num_addresses > 1 and _is_host_of(ip.ip, ip.network))
    return Scope(mac=args.mac, targets=tuple(ip.network for ip in args.targets),
                 families=frozenset(families), multicast_ping6=args.answer_multicast_ping,
                 own=own, leased={} if getattr(args, "dhcp", False) or getattr(
                     args, "dhcp6", False) else None)


def dhcp_pool(targets):
    """--dhcp's (IPv4Network, the server's packed address): the first --ip
    prefix with the tool's own address in it; None if there is none."""
    for ip in targets:
        if ip.version == 4 and ip.network.prefixlen <= 30 and _is_host_of(ip.ip, ip.network):
            return ip.network, ip.ip.packed
    return None


def dhcp6_pool(targets):
    """--dhcp6's (the IA_NA /64, the tool's packed address in it or None):
    the first IPv6 /64 given with --ip; (None, None) if there is none
    (prefixes alone, with --delegate)."""
    for ip in targets:
        if ip.version == 6 and ip.network.prefixlen == 64:
            own = ip.ip.packed if _is_host_of(ip.ip, ip.network) else None
            return ip.network, own
    return None, None


def ra_prefix(targets):
    """--ra's prefix: the first IPv6 /64 given with --ip; None if none."""
    return next((ip.network for ip in targets if ip.version == 6
                 and ip.network.prefixlen == 64), None)


@dataclass(frozen=True)
class Settings:
    """What the command line asks of the loop and the interfaces."""
    specs: tuple                 # interface names and patterns
    scope: Scope = Scope()
    framing: Framing = Framing()
    allow_physical: bool = False
    any_address: bool = False
    verbose: int = 0             # -1 with -q, 1 with -v
    count: int = 0               # replies before the end; 0: no limit
    until_verdict: bool = False
    busy_poll: bool = False
    exit_on_down: bool = False
    probe: Optional[tuple] = None  # --probe: packed addresses; () learns them; None: off
    dhcp: Optional[tuple] = None   # --dhcp: (the pool's IPv4Network, the server's address)
    ra: Optional[object] = None    # --ra: the IPv6Network advertised
    router_lifetime: int = 0       # --router-lifetime, seconds
    boot_files: dict = field(default_factory=dict, compare=False)  # --boot-file: key ->
                                                                   # (name, contents)
    dhcp6: Optional[tuple] = None  # --dhcp6: (the IA_NA /64 or None, the tool's address in it)
    delegate: Optional[tuple] = None  # --delegate: (IPv6Network, delegated length)
    pppoe: Optional[str] = None    # --pppoe: the AC-Name
    dot1x: bool = False            # --dot1x
    expect_framing: Optional[tuple] = None  # --expect-framing: ((VID, PCP or None), ...)
    recording: bool = False        # -w

    @classmethod
    def from_args(cls, args):
        probe = None if args.probe is None else tuple(ip.packed for ip in args.probe)
        scope = scope_from(args)
        return cls(tuple(args.interfaces), scope, framing_from(args),
                   allow_physical=args.allow_physical, any_address=args.any_address,
                   verbose=args.verbose, count=args.count, until_verdict=args.until_verdict,
                   busy_poll=args.busy_poll, exit_on_down=args.exit_on_down, probe=probe,
                   dhcp=dhcp_pool(args.targets) if args.dhcp else None,
                   ra=ra_prefix(args.targets) if args.ra else None,
                   router_lifetime=args.router_lifetime,
                   boot_files=getattr(args, "boot_files", {}) or {},
                   dhcp6=dhcp6_pool(args.targets) if getattr(args, "dhcp6", False) else None,
                   delegate=getattr(args, "delegate", None),
                   pppoe=getattr(args, "pppoe", None), dot1x=getattr(args, "dot1x", False),
                   expect_framing=getattr(args, "expect_framing", None),
                   recording=bool(args.write))


def _target_text(net, own):
    """An --ip target as given: an address, ADDR/LEN with the tool's own
    address in the prefix, or the prefix."""
    if net.num_addresses == 1:
        return str(net.network_address)
    mine = [packed for packed in own if ipaddress.ip_address(packed) in net]
    return f"{ipaddress.ip_address(mine[0])}/{net.prefixlen}" if mine else str(net)


def _describe(scope, framing):
    """The start-up line's middle: what is answered, for whom, how."""
    titles = [kind.title for kind in KINDS.values() if kind.family in scope.families]
    kinds = ", ".join(titles[:-1]) + " and " + titles[-1]
    targets = ", ".join(_target_text(net, scope.own) for net in scope.targets
                        if net.version in scope.families)
    owner = scope.mac
    if 6 in scope.families:
        owner += f" (link-local {tool_link_local(scope.mac)})"
    if framing.vlans:
        tpid = {ETH_P_8021Q: "802.1Q", ETH_P_8021AD: "802.1ad",
                ETH_P_QINQ1: "0x9100"}[framing.tpid]
        how = f"tagged {tpid} {framing}"
    else:
        how = "untagged"
    padding = "" if framing.pad else ", not padded"
    return f"{kinds} for {targets or 'any address'} as {owner}, replies {how}{padding}"


# ---------------------------------------------------------------- a run of the tool

class Session:
    """One run of the tool: start() makes every check and opens what the
    run needs, serve() runs the loop, finish() reports and says the exit
    status; close() closes what start() opened, on every path. A Fatal on
    the way ends it (main() says it)."""

    def __init__(self, args):
        self.args, self.settings = args, Settings.from_args(args)
        self.pcap = self.summary = self.recorder = self.interfaces = self.loop = None
        self.metrics = self.writer = self.snapshots = None
        self.services = []
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.checked = False  # every start-up check passed: the files may be emptied

    def start(self):
        args, settings = self.args, self.settings
        exact = [spec for spec in settings.specs if not is_pattern(spec)]
        if not _has_net_raw():
            raise Fatal(f"opening a packet socket needs root or CAP_NET_RAW; try: "
                        f"sudo {sys.argv[0]} ...")
        dropping = os.geteuid() == 0 and not args.keep_root
        if dropping and not _user_exists(args.user):
            raise Fatal(f"no user named {args.user!r} (--user)")
        for name in exact:
            problem = (_check_interface(name)
                       or cannot_carry_a_guest(name, settings.scope.targets,
                                               settings.any_address)
                       or _check_virtual(name, settings))
            if problem:
                raise Fatal(problem)
        # A socket per interface: as many as the hard limit allows, not 1024.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # an unlimited hard limit the kernel will not take: keep the soft one
        self.pcap = args.write and OutputFile(args.write)
        self.summary = args.json and OutputFile(args.json)
        self.metrics = args.metrics and OutputFile(args.metrics)
        outputs = [output for output in (self.pcap, self.summary, self.metrics) if output]
        if len({output.identity for output in outputs}) < len(outputs):
            raise Fatal(f"{' and '.join(output.path for output in outputs)}: the same file "
                        "named twice (-w, --json, --metrics)")
        self.services = services_from(settings)
        self.interfaces = Interfaces(
            settings, kernel_filter([program for service in self.services
                                     if (program := service.filter()) is not None]),
            [kind for service in self.services for kind in service.counted])
        for name in exact:
            self._serve(name)
        if len(exact) < len(settings.specs):
            self.interfaces.reconcile(quiet=True)
        if self.metrics or args.json_interval:  # its writer keeps the privilege to
            self.writer = StateWriter(args.json if args.json_interval else None, args.metrics,
                                      self.services, str(settings.framing))
            self.snapshots = Snapshots(self.writer, args.json_interval or METRICS_INTERVAL)
        if dropping:
            try:
                drop_privileges(args.user)
            except OSError as exc:
                raise Fatal(f"cannot drop privileges to {args.user}: {exc.strerror}; "
                            "--keep-root runs as root") from None
            self.user = args.user
        self.checked = True
        if self.pcap:
            self.recorder = Recorder(self.pcap)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        self.loop = Loop(settings, self.interfaces, self.services, self.recorder,
                         snapshots=self.snapshots)

    def _serve(self, name):
        try:
            self.interfaces.serve(name, socket.if_nametoindex(name), quiet=True)
        except InterfaceTaken as taken:
            raise Fatal(f"{name}: {_taken(taken)}; one copy per interface, or every "
                        "reply goes out twice") from None
        except PermissionError:
            raise Fatal(f"{name}: opening a packet socket needs root or CAP_NET_RAW; "
                        f"try: sudo {sys.argv[0]} ...") from None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise Fatal(f"{name}: not served: {limit_reached(exc)}") from None
            raise Fatal(f"{name}: cannot open a packet socket: {exc.strerror or exc}") \
                from None

    def serve(self):
        loop, interfaces, settings = self.loop, self.interfaces, self.settings
        wake_fd = _stop_on_signals(loop)
        patterns = [spec for spec in settings.specs if is_pattern(spec)]
        names = list(interfaces.links)
        served = (", ".join(names) if len(names) <= NAMED_AT_START else
                  f"{', '.join(names[:NAMED_AT_START])} and {len(names) - NAMED_AT_START:,} "
                  "more") or "no interface yet"
        if patterns:
            served += (f" (and every interface matching "
                       f"{', '.join(repr(p) for p in patterns)} that comes up)")
        described = "".join(service.describe() for service in self.services)
        loop.say(f"arp_icmp_vlan0: on {served} answering {described}; running as "
                 f"{self.user}. Hit Ctrl-C to end.")
        for pattern in patterns:
            interfaces.say_why_unserved(pattern)
        loop.run(timeout=self.args.timeout, wake_fd=wake_fd)

    def finish(self):
        """The statistics, the exit status (said in a line where it needs
        one) and the JSON summary; returns the status."""
        args, loop = self.args, self.loop
        if self.recorder:
            self.recorder.close()
        report = Report(loop)
        loop.say(report.lines())
        status = verdict_status(self.services) if args.until_verdict else EXIT_OK
        if status == EXIT_OK and self.recorder and self.recorder.error:
            status = EXIT_RECORD_INCOMPLETE
        if args.exit_on_down and self.interfaces.lost:
            log(f"error: stopped receiving on {', '.join(self.interfaces.lost)} "
                "(interface gone or down)")
            status = EXIT_ERROR
        if self.snapshots:  # the last, with the exit status: whole, as the others
            self.snapshots.write(report, status)
        if self.summary and not (self.snapshots and args.json_interval):
            try:
                self.summary.start()
                self.summary.write_json(report.to_json(status))
            except OSError as exc:
                raise Fatal(f"cannot write {args.json}: {exc.strerror or exc}") from None
        return status

    def close(self):
        for output in (self.pcap, self.summary, self.metrics):
            if output and not self.checked:
                output.discard()
        if self.recorder:
            self.recorder.close()
        for output in (self.summary, self.metrics):
            if output:
                output.close()
        if self.writer:
            self.writer.close()
        if self.interfaces:
            self.interfaces.close()


def verdict_status(services):
    """--until-verdict's exit status at the end of a run; with no verdict,
    why (a line on stderr from each judge that heard a guest, or each)."""
    status = overall_status(services)
    if status == EXIT_NO_VERDICT:
        heard = [service for service in services if service.verdicts() or service.untracked()]
        for service in heard or services:
            reason = service.why_no_verdict()
            if reason:
                log(reason)
    return status


def serve(args):
    """One run of the tool on its interfaces (Session)."""
    session = Session(args)
    try:
        session.start()
        session.serve()
        return session.finish()
    finally:
        session.close()


# ---------------------------------------------------------------- judging a capture (-r)
#
# -r FILE gives the verdicts for a recording made anywhere: tcpdump's on a
# real switch's or ISP's port, or the tool's own -w. The services stand in
# for the switch whose frames the capture holds (Scope.capture): each frame
# a guest sent goes through them as if received, in capture order, on the
# capture's clock; what they would send is not sent. The switch's own
# frames say what was answered (Service.answered_by pairs each with the
# oldest ask of a guest it answers, within ANSWER_WAIT) and what went
# unasked (Service.sent: probes, advertisements, Requests to a group). What
# the switch serves, and how, is read from its frames, never from the
# command line; what a capture cannot show (what was configured, tags a NIC
# took off before the capture point) is said, not guessed. Nothing is sent
# and no socket opened: no root is needed.

ANSWER_WAIT = 5.0     # seconds: the latest a switch's answer may follow the ask it answers
PENDING_KEPT = 4096   # asks waiting for an answer, in all; beyond, the oldest goes unanswered
FRAME_MAX = 262144    # bytes: tcpdump's largest snapshot; a record that claims more is damage
PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
              b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
PCAPNG_SECTION = b"\x0a\x0d\x0d\x0a"
PCAPNG_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
LINKTYPE_ETHERNET = DLT_EN10MB if SCAPY_MISSING is None else 1
LINKTYPE_NAMES = {0: "BSD loopback", 101: "raw IP", 105: "802.11",
                  113: "Linux cooked, as tcpdump -i any writes it",
                  127: "802.11 with radiotap", 276: "Linux cooked v2, as tcpdump -i any writes it"}


class Capture(NamedTuple):
    """A capture file read whole: its Ethernet frames, (stamp, interface
    name, frame) in file order, and why reading stopped early, if it did."""
    path: str
    frames: list
    damage: Optional[str]


def read_capture(path):
    """The Capture in pcap or pcapng file `path` ("-": standard input). A
    file that is neither, or holds frames of a link type other than
    Ethernet, is refused (Fatal); a damaged or truncated one is read up to
    the damage, which `damage` says."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as exc:
        raise Fatal(f"{path}: {exc.strerror or exc}") from None
    name = "stdin" if path == "-" else os.path.basename(path)
    if data[:4] == PCAPNG_SECTION:
        frames, damage = _read_pcapng(data, name, path)
    elif data[:4] in PCAP_MAGIC:
        frames, damage = _read_pcap(data, name, path)
    elif len(data) < 4:
        raise Fatal(f"{path}: empty, or too short to be a capture")
    else:
        raise Fatal(f"{path}: not a pcap or pcapng file (it begins {data[:4].hex()})")
    return Capture(path, frames, damage)


def _ethernet_only(linktype, path):
    if linktype != LINKTYPE_ETHERNET:
        what = LINKTYPE_NAMES.get(linktype, "not Ethernet")
        raise Fatal(f"{path}: link type {linktype} ({what}): its frames have no Ethernet "
                    "header, so neither their tags nor their MACs are there to judge; capture "
                    "on the port's own interface: tcpdump -i IF -e -w FILE")


def _read_pcap(data, name, path):
    order, unit = PCAP_MAGIC[data[:4]]
    if len(data) < 24:
        return [], "the file header is cut short"
    _ethernet_only(struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF, path)
    frames, at = [], 24
    while at < len(data):
        if at + 16 > len(data):
            return frames, "a record's header is cut short"
        seconds, fraction, length, _ = struct.unpack_from(order + "IIII", data, at)
        if length > FRAME_MAX:
            return frames, f"a record claims {length:,} bytes"
        if at + 16 + length > len(data):
            return frames, "the last record is cut short"
        frames.append((seconds + fraction * unit, name, data[at + 16:at + 16 + length]))
        at += 16 + length
    return frames, None


def _read_pcapng(data, name, path):
    """pcapng's blocks: section headers, interface descriptions (link type,
    name, time stamp resolution) and packets (enhanced, simple, obsolete);
    the rest skipped."""
    frames, interfaces, at, order = [], [], 0, "<"
    while at < len(data):
        if at + 12 > len(data):
            return frames, "a block is cut short"
        if data[at:at + 4] == PCAPNG_SECTION:
            order = PCAPNG_ORDER.get(data[at + 8:at + 12])
            if order is None:
                return frames, "a section header's byte-order magic is wrong"
            interfaces = []
        kind, length = struct.unpack_from(order + "II", data, at)
        if length < 12 or length % 4:
            return frames, f"a block claims {length:,} bytes"
        if at + length > len(data):
            return frames, "a block is cut short"
        if struct.unpack_from(order + "I", data, at + length - 4)[0] != length:
            return frames, "a block's two lengths differ"
        body = data[at + 8:at + length - 4]
        if kind == 1 and len(body) >= 8:  # Interface Description
            _ethernet_only(struct.unpack_from(order + "H", body)[0], path)
            interfaces.append(_interface_options(body[8:], order, name))
        elif kind in (2, 6, 3):  # Packet (obsolete), Enhanced Packet, Simple Packet
            if not interfaces:
                return frames, "a packet comes before any interface is described"
            if kind == 3:
                index, stamp, start = 0, frames[-1][0] if frames else 0.0, 4
                size = min(struct.unpack_from(order + "I", body)[0] if len(body) >= 4 else 0,
                           len(body) - 4)
            elif len(body) < 20:
                return frames, "a packet block is cut short"
            else:
                index, high, low, size = struct.unpack_from(
                    order + ("HxxIII" if kind == 2 else "IIII"), body)
                start = 20
            if index >= len(interfaces) or size > len(body) - start:
                return frames, "a packet block names no interface described, or is cut short"
            if kind != 3:
                stamp = (high << 32 | low) * interfaces[index][1]
            frames.append((stamp, interfaces[index][0], body[start:start + size]))
        at += length
    return frames, None


def _interface_options(options, order, name):
    """(its name, seconds per time stamp unit) from an interface's options."""
    unit, i = 1e-6, 0
    while i + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, i)
        value = options[i + 4:i + 4 + length]
        if code == 0:
            break
        if code == 2 and value:  # if_name
            name = value.split(b"\0")[0].decode(errors="replace") or name
        elif code == 9 and value:  # if_tsresol
            unit = 2.0 ** -(value[0] & 0x7F) if value[0] & 0x80 else 10.0 ** -value[0]
        i += 4 + (length + 3) // 4 * 4
    return name, unit


def switch_role(frame):
    """"serves" if `frame` is a server's or authenticator's (a DHCP or
    DHCPv6 answer, a Router Advertisement, a PADO or PADS, an EAP-Request),
    "answers" if it answers a neighbour (an ARP reply, a Neighbor
    Advertisement, an echo reply), else None."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype == ETH_P_ARP:
        return "answers" if frame[offset + 6:offset + 8] == b"\x00\x02" else None
    if ethertype == ETH_P_IP and len(frame) >= offset + IPV4_HLEN + 4:
        header_len = (frame[offset] & 0x0F) * 4
        payload = frame[offset + header_len:offset + header_len + 2]
        if frame[offset + 9] == IPPROTO_ICMP and payload[:1] == b"\x00":
            return "answers"
        if frame[offset + 9] == IPPROTO_UDP and payload == b"\x00\x43":
            return "serves"
        return None
    if ethertype == ETH_P_IPV6 and len(frame) >= offset + IPV6_HLEN + 2:
        payload = frame[offset + IPV6_HLEN:offset + IPV6_HLEN + 2]
        if frame[offset + 6] == IPPROTO_UDP:
            return "serves" if payload == DHCP6_SERVER_PORT.to_bytes(2, "big") else None
        if frame[offset + 6] == IPPROTO_ICMPV6 and payload[:1]:
            return {ND_ROUTER_ADVERT: "serves", ND_NEIGHBOR_ADVERT: "answers",
                    ICMPV6_ECHO_REPLY: "answers"}.get(payload[0])
        return None
    if ethertype == ETH_P_PPP_DISC:
        return "serves" if frame[offset + 1:offset + 2] in (b"\x07", b"\x65") else None
    return "serves" if ethertype == ETH_P_PAE and eap_sent(frame) else None


def find_switch(capture, given, tool_mac):
    """(the switch's MACs (bytes), how they were found): those `given`
    (--switch-mac); else the tool's own `tool_mac` if it sent frames (a -w
    recording); else the stations that serve (DHCP, RA, DHCPv6, PPPoE,
    802.1X); else the one station that answers others' ARP, NDP and pings,
    or the one of them whose answers are tagged. Fatal when the capture
    cannot tell."""
    if given:
        return tuple(given), "named with --switch-mac"
    roles = {}  # MAC -> [frames that serve, that answer, tagged answers]
    for _, _, frame in capture.frames:
        if len(frame) < ETH_HLEN or frame[6] & 1:
            continue
        if frame[6:12] == tool_mac:
            return (tool_mac,), "the tool's own MAC: its -w recording"
        role = switch_role(frame)
        if role:
            counts = roles.setdefault(frame[6:12], [0, 0, 0])
            counts[role == "answers"] += 1
            counts[2] += role == "answers" and is_tagged(frame)
    servers = [mac for mac, counts in roles.items() if counts[0]]
    if servers:
        return tuple(servers), ("the station that serves" if len(servers) == 1 else
                                "the stations that serve") + " DHCP, RA, DHCPv6, PPPoE or 802.1X"
    answering = [mac for mac, counts in roles.items() if counts[1]]
    tagged = [mac for mac in answering if roles[mac][2]]
    if len(answering) == 1:
        return tuple(answering), "the one station that answers others' ARP, NDP or pings"
    if len(tagged) == 1:
        return tuple(tagged), "the one station whose answers (ARP, NDP, pings) are tagged"
    if not answering:
        raise Fatal(f"{capture.path}: no station answers another's ARP, NDP, ping, DHCP, RA, "
                    "PPPoE or EAPOL: no switch to judge (if it is there: --switch-mac MAC)")
    raise Fatal(f"{capture.path}: cannot tell which station is the switch: "
                f"{_some([str2mac(mac) for mac in answering], 0)} each answer the others; "
                "name it: --switch-mac MAC")


def capture_settings(args, capture, switch):
    """The Settings that make the services stand in for the switch: its MAC
    (the first of `switch`) and addresses, the framing most of its frames
    carry, and each service it is seen giving (and with what: the DHCP
    server's identifier and prefix, the advertised prefix, the DHCPv6
    server's addresses and prefixes, the AC-Name, probes, EAP)."""
    own, framings, found = set(), {}, {}
    for _, _, frame in capture.frames:
        if frame[6:12] not in switch:
            if "boot_files" not in found and tftp_read(frame):
                found["boot_files"] = {"": ("", b"")}  # a TFTP read: its transfer is judged
            continue
        tags = (frame[12:14],) + tags_of(frame) if is_tagged(frame) else ()
        framings[tags] = framings.get(tags, 0) + 1
        ethertype, offset = ethertype_and_offset(frame)
        if ethertype == ETH_P_ARP and len(frame) >= offset + 28:
            own.add(frame[offset + 14:offset + 18])
        elif ethertype == ETH_P_IP and len(frame) >= offset + IPV4_HLEN:
            own.add(frame[offset + 12:offset + 16])
        elif ethertype == ETH_P_IPV6 and len(frame) >= offset + IPV6_HLEN:
            own.add(frame[offset + 8:offset + 24])
        given = parse_dhcp_answer(frame)
        if given and given.kind in (DHCP_OFFER, DHCP_ACK):
            found.setdefault("dhcp", (given.network or ipaddress.ip_network(
                (given.address, 24), strict=False), given.server))
            if given.boot_file:  # a network boot: its TFTP transfers are judged too
                found.setdefault("boot_files", {"": (given.boot_file, b"")})
        if "ra" not in found:
            advertised = parse_router_advertisement(frame)
            if advertised and advertised[0]:
                found["ra"] = advertised
        given6 = parse_dhcp6_answer(frame)
        for option, _, value in given6.granted if given6 else ():
            if option == OPTION_IA_NA:
                found.setdefault("dhcp6", ipaddress.IPv6Network((value[:16], 64), strict=False))
            else:
                found.setdefault("delegate", (ipaddress.IPv6Network(
                    (value[:16], value[16]), strict=False), value[16]))
        offer = parse_pppoe_offer(frame)
        if offer and offer[0] == PADO:
            found.setdefault("pppoe", (offer[2].get(TAG_AC_NAME) or [b"?"])[0].decode(
                errors="replace"))
        found.setdefault("dot1x", True) if eap_sent(frame) else None
        if "probe" not in found and switch_asks(frame):
            found["probe"] = ()
    own.discard(IPV4_ANY)
    own.discard(IN6_UNSPECIFIED)
    tags = max(framings, key=framings.get) if framings else ()
    framing = Framing(vlans=tuple(vid for vid, _, _ in tags[1:]), prio=tags[1][1],
                      dei=tags[1][2], tpid=int.from_bytes(tags[0], "big"), live=False) \
        if tags else Framing(vlans=(), live=False)
    scope = CaptureScope(mac=str2mac(switch[0]), families=args.families,
                         own=tuple(sorted(own)))
    dhcp6 = "dhcp6" in found or "delegate" in found
    return Settings((), scope, framing, verbose=args.verbose, until_verdict=True,
                    probe=found.get("probe"), dhcp=found.get("dhcp"),
                    ra=found.get("ra", (None,))[0], router_lifetime=found.get("ra", (0, 0))[1],
                    dhcp6=(found.get("dhcp6"), None) if dhcp6 else None,
                    delegate=found.get("delegate"), pppoe=found.get("pppoe"),
                    dot1x=found.get("dot1x", False), boot_files=found.get("boot_files", {}),
                    expect_framing=getattr(args, "expect_framing", None))


def switch_asks(frame):
    """`frame` asks a neighbour: an ARP request, a Neighbor Solicitation or
    an echo request (the switch's, a probe)."""
    ethertype, offset = ethertype_and_offset(frame)
    if ethertype == ETH_P_ARP:
        return frame[offset + 6:offset + 8] == b"\x00\x01"
    if ethertype == ETH_P_IP and len(frame) >= offset + IPV4_HLEN + 1:
        header_len = (frame[offset] & 0x0F) * 4
        return frame[offset + 9] == IPPROTO_ICMP and \
            frame[offset + header_len:offset + header_len + 1] == b"\x08"
    if ethertype == ETH_P_IPV6 and len(frame) >= offset + IPV6_HLEN + 1:
        return frame[offset + 6] == IPPROTO_ICMPV6 and frame[offset + IPV6_HLEN] in (
            ND_NEIGHBOR_SOLICIT, ICMPV6_ECHO_REQUEST)
    return False


SERVED_ETHERTYPES = frozenset({ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_P_PPP_DISC, ETH_P_PPP_SES,
                               ETH_P_PAE})  # what any service reads


class CapturedInterfaces(NamedTuple):
    """A capture's interfaces, as Report reads a Loop's Interfaces."""
    stats: dict        # name -> Stats
    gone_count: int
    gone_stats: "Stats"
    links: tuple = ()  # none served: nothing is live


@dataclass
class Ask:
    """A guest's frame that a service answered, waiting in a Replay for
    the switch's answer."""
    stamp: float
    link: "CapturedLink"
    frame: bytes
    whole: bytes
    ethertype: int
    answer: Answer
    by: Service
    answered: bool = False


class CapturedLink(NamedTuple):
    """An interface of a capture: what an Exchange's link is when reading one."""
    name: str
    stats: "Stats"


class Replay:
    """A capture's frames through the services (the Loop of -r): a guest's
    frame is offered to them as if received; an Answer awaits the switch's
    frame that answers it (Service.answered_by), the switch's frames that
    answer nothing go to Service.sent; each exchange is then accounted and
    observed as the loop does, on the capture's clock. Report reads it as it
    reads a Loop."""

    def __init__(self, settings, services, switch, stdout=None):
        self.settings, self.services, self.switch = settings, services, frozenset(switch)
        self.mac = settings.scope.mac_bytes
        self.clocked = [service for service in services if service.clock_only]
        self.kinds = [kind for service in services for kind in service.counted]
        self.interfaces = CapturedInterfaces({}, 0, Stats.for_kinds(self.kinds))
        self.links = {}
        self.reassembler = Reassembler()
        self.recorder = None
        self.stdout = stdout or Stdout()
        self.lines = Lines(settings.framing, self.stdout.say, clock=lambda: self.now)
        # The asks waiting for the switch's answer, each an Ask: by guest
        # ((interface, MAC) -> its asks, oldest first), and all in order.
        self.waiting, self.pending = {}, deque()
        self.first = self.now = None
        self.switch_frames = self.switch_tagged = 0

    def elapsed(self):
        return 0.0 if self.first is None else self.now - self.first

    def _link(self, name):
        link = self.links.get(name)
        if link is None:
            link = self.links[name] = CapturedLink(name, Stats.for_kinds(self.kinds))
            self.interfaces.stats[name] = link.stats
        return link

    def feed(self, stamp, name, frame):
        """One frame of the capture, from interface `name`."""
        if len(frame) < ETH_HLEN:
            return
        if self.first is None:
            self.first = stamp
        self.now = max(stamp, self.now or stamp)
        self._clock(self.now)
        link = self._link(name)
        try:
            if frame[6:12] in self.switch:
                self._from_switch(link, frame[:6] + self.mac + frame[12:]
                                  if frame[6:12] != self.mac else frame)
            else:
                self._from_guest(link, self.mac + frame[6:] if frame[:6] in self.switch
                                 else frame)
        except Exception as exc:  # a bug in a service: said and counted, reading goes on
            link.stats.internal_errors += 1
            log(f"error: cannot judge the frame {_hex(frame)}: {exc!r}")
        self._show()

    def end(self):
        """The capture's end, and the run's: the asks still waiting went
        unanswered, but those the services count as answered before their
        answer goes (answered_by(answer, None)); what the end decides
        (Service.end)."""
        while self.pending:
            ask = self._next()
            if ask is None:
                continue
            given = ask.by.answered_by(ask.answer, None, self.now)
            if given is None:
                self._unanswered(ask)
                continue
            if ask.by.taken_as:
                ask.link.stats.count(ask.by.taken_as)
            self._observe(Exchange(ask.link, ask.frame, ask.stamp, ask.whole, ask.ethertype,
                                   given, (), None, ask.by))
        for service in self.services:
            for record in service.end(self.now or 0.0):
                self.lines.verdict(record.summary())
        self._show()

    def _clock(self, now):
        """The asks whose answer is too late now, and what the services that
        run on the clock alone have due (the roll)."""
        while self.pending and self.pending[0].stamp + ANSWER_WAIT < now:
            ask = self._next()
            if ask is not None:
                self._unanswered(ask)
        for service in self.clocked:
            while service.due(now) <= 0:
                _, decided = service.send_due(now, self.links.keys())
                for record in decided:
                    self.lines.verdict(record.summary())
                if not decided:
                    break

    def _from_guest(self, link, frame):
        stamp = self.now
        ethertype, offset = ethertype_and_offset(frame)
        if ethertype not in SERVED_ETHERTYPES:
            return  # STP, LLDP...: what the kernel filter keeps from a live run
        link.stats.seen += 1
        whole = frame
        if maybe_fragment(frame, ethertype, offset):
            piece = fragment_of(frame, ethertype, offset, link.name)
            if piece is not None:
                whole = self.reassembler.add(piece, stamp)
                if whole is None:
                    link.stats.fragments += 1
                    return
                ethertype, offset = ethertype_and_offset(whole)
        answer, by = answer_with(self.services, link.name, whole, ethertype, offset, stamp)
        if answer is not None and answer.reply is not None:
            while len(self.pending) >= PENDING_KEPT:
                ask = self._next()
                if ask is not None:
                    self._unanswered(ask)
            ask = Ask(stamp, link, frame, whole, ethertype, answer, by)
            self.pending.append(ask)
            self.waiting.setdefault((link.name, whole[6:12]), deque()).append(ask)
            return
        if answer is not None and by.taken_as:
            link.stats.count(by.taken_as)
        else:  # nothing to answer, or evidence that needs no answer (a session frame)
            link.stats.ignored += 1
        self._observe(Exchange(link, frame, stamp, whole, ethertype, answer, (), None, by))

    def _next(self):
        """The oldest ask still waiting, taken off the lists (None if the
        oldest was answered meanwhile)."""
        ask = self.pending.popleft()
        if ask.answered:
            return None
        key = (ask.link.name, ask.whole[6:12])
        asks = self.waiting[key]
        asks.popleft()  # its guest's oldest too
        if not asks:
            del self.waiting[key]
        return ask

    def _from_switch(self, link, frame):
        self.switch_frames += 1
        self.switch_tagged += is_tagged(frame)
        # The guests it may answer: the one it is sent to, or, sent to a
        # group, every guest on the interface (a DHCP offer broadcast, an
        # advertisement to all nodes); of each, the oldest ask it answers.
        if frame[0] & 1:
            keys = [key for key in self.waiting if key[0] == link.name]
        else:
            keys = [(link.name, frame[:6])] if (link.name, frame[:6]) in self.waiting else []
        for key in keys:
            asks = self.waiting[key]
            for ask in asks:
                given = ask.by.answered_by(ask.answer, frame, self.now)
                if given is None:
                    continue
                ask.answered = True
                asks.remove(ask)
                if not asks:
                    del self.waiting[key]
                if given.kind in link.stats.replies:
                    link.stats.replies[given.kind] += 1
                elif ask.by.taken_as:
                    link.stats.count(ask.by.taken_as)
                self._observe(Exchange(link, ask.frame, ask.stamp, ask.whole, ask.ethertype,
                                       given, (frame,), self.now, ask.by))
                break
        for service in self.services:
            counter = service.sent(link.name, frame, self.now)
            if counter:
                link.stats.count(counter)

    def _unanswered(self, ask):
        ask.link.stats.ignored += 1
        self._observe(Exchange(ask.link, ask.frame, ask.stamp, ask.whole, ask.ethertype, None,
                               (), None, None))

    def _observe(self, exchange):
        if self.settings.verbose >= 0 and (exchange.replied or self.settings.verbose > 0):
            self.lines.exchange(exchange)
        try:
            for record in observe_with(self.services, exchange):
                self.lines.verdict(record.summary())
        except Exception as exc:  # a bug: said and counted, and reading goes on
            exchange.link.stats.internal_errors += 1
            log(f"error: after the frame {_hex(exchange.received)}: {exc!r}")

    def _show(self):
        while self.lines.held:
            self.lines.write(idle=True)

    def untagged(self):
        """The switch's frames are all untagged (a NIC took the tags off
        before the capture point, or the switch does not tag)."""
        return self.switch_frames and not self.switch_tagged


CAPTURE_WORDS = {"Replies": "ARP, NDP and ping", "Prober": "its probes", "DhcpServer": "DHCP",
                 "TftpServer": "TFTP",
                 "Advertiser": "Router Advertisements", "Dhcp6Server": "DHCPv6",
                 "PppoeServer": "PPPoE discovery", "Dot1xAuthenticator": "802.1X"}


def judge_capture(args):
    """-r: the verdicts for a capture (Replay); returns the exit status, as
    --until-verdict's at the end of a run; 1 if the file is damaged."""
    capture = read_capture(args.read)
    switch, how = find_switch(capture, args.switch_macs, mac2str(args.mac))
    settings = capture_settings(args, capture, switch)
    services = services_from(settings)
    for service in services:  # the switch took what it took: no budget of the tool's applies
        if isinstance(getattr(service, "budget", None), Budget):
            service.budget = Budget(float("inf"), float("inf"))
    replay = Replay(settings, services, switch)
    macs = ", ".join(str2mac(mac) for mac in switch)
    judged = ", ".join(CAPTURE_WORDS[type(service).__name__] for service in services
                       if type(service).__name__ in CAPTURE_WORDS)
    stamps = [stamp for stamp, _, _ in capture.frames]
    span = f", {max(stamps) - min(stamps):.1f} s" if stamps else ""
    replay.stdout.say(f"arp_icmp_vlan0: reading {args.read} ({len(capture.frames):,} frames"
                      f"{span}): the switch is {macs} ({how}); judging {judged} as its frames "
                      f"show them ({settings.framing}); nothing is sent.")
    summary = args.json and OutputFile(args.json)
    for stamp, name, frame in capture.frames:
        replay.feed(stamp, name, frame)
    replay.end()
    report = Report(replay)
    replay.stdout.say(report.lines())
    if replay.untagged():
        log(f"the switch's frames in {args.read} are untagged: the capture cannot show what "
            "tagging did (a NIC that takes tags off before the capture point, or a switch "
            "that does not tag); the verdicts are for what the frames show")
    if not replay.switch_frames:
        log(f"no frame in {args.read} comes from {macs}: nothing the switch sent to judge")
    status = verdict_status(services)
    if capture.damage:
        log(f"error: {args.read}: damaged after {len(capture.frames):,} frames "
            f"({capture.damage}): those were judged")
        status = EXIT_ERROR
    if summary:
        try:
            summary.start()
            record = report.to_json(status)
            record["capture"] = {"file": args.read, "frames": len(capture.frames),
                                 "switch": [str2mac(mac) for mac in switch], "found": how,
                                 "framing": str(settings.framing),
                                 "switch_frames_untagged": bool(replay.untagged()),
                                 "damage": capture.damage}
            summary.write_json(record)
        except OSError as exc:
            raise Fatal(f"cannot write {args.json}: {exc.strerror or exc}") from None
        finally:
            summary.close()
    return status


# ---------------------------------------------------------------- namespaces
#
# --self-test needs throwaway network namespaces, and so do the tests: this
# is the one copy (tests/lib/netlab.py builds on it).

_live_namespaces = set()


def _delete_namespace(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _live_namespaces.discard(name)


def _delete_live_namespaces():
    for name in list(_live_namespaces):
        _delete_namespace(name)


def run_command(*cmd, check=True, timeout=30):
    return subprocess.run(cmd, check=check, capture_output=True, text=True,
                          timeout=timeout)


class Process:
    """A background command whose output (stdout and stderr) is collected as
    it comes, by a thread, so that a chatty command never blocks on a full
    pipe; stopped by its PID."""

    def __init__(self, cmd):
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
        self._chunks, self._lock = [], threading.Lock()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := os.read(self.popen.stdout.fileno(), 1 << 16):
            with self._lock:
                self._chunks.append(decoder.decode(chunk))
        self.popen.stdout.close()

    @property
    def output(self):
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, text, timeout=10):
        """Wait until `text` appears in the output; raise RuntimeError if it
        does not within `timeout` seconds or the process ends first."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if not self._reader.is_alive() and text not in self.output:
                self.popen.wait()
                raise RuntimeError(f"exited {self.popen.returncode} "
                                   f"before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} after {timeout}s in:\n{self.output}")
            time.sleep(0.01)
        return self.output

    def wait(self, timeout=10):
        """Wait for the process to end by itself; return its exit status."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"still running after {timeout}s:\n{self.output}") from None
        self._reader.join(timeout=10)  # the output's last bytes
        return self.popen.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.wait(timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()


class VethPair:
    """Two throwaway network namespaces, "host" and "guest", joined by a veth
    pair (host_if in host, guest_if in guest). Names carry a random suffix;
    everything is deleted on exit, on failure and on Ctrl-C."""

    def __init__(self, prefix, host_if="veth-host", guest_if="veth-guest"):
        suffix = os.urandom(4).hex()
        self.host, self.guest = f"{prefix}-h-{suffix}", f"{prefix}-g-{suffix}"
        self.host_if, self.guest_if = host_if, guest_if
        self.processes = []

    def __enter__(self):
        atexit.register(_delete_live_namespaces)  # a last resort
        try:
            for ns in (self.host, self.guest):
                run_command("ip", "netns", "add", ns)
                _live_namespaces.add(ns)
            run_command("ip", "link", "add", self.host_if, "netns", self.host, "type",
                        "veth", "peer", "name", self.guest_if, "netns", self.guest)
            for ns, dev in ((self.host, self.host_if), (self.guest, self.guest_if),
                            (self.host, "lo"), (self.guest, "lo")):
                run_command("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.stop(signal.SIGKILL)
        for ns in (self.host, self.guest):
            _delete_namespace(ns)

    def in_host(self, *cmd, **kw):
        return run_command("ip", "netns", "exec", self.host, *cmd, **kw)

    def in_guest(self, *cmd, **kw):
        return run_command("ip", "netns", "exec", self.guest, *cmd, **kw)

    def start(self, ns, *cmd):
        process = Process(["ip", "netns", "exec", ns, *cmd])
        self.processes.append(process)
        return process


# ---------------------------------------------------------------- self-test

# family -> (guest's address with prefix, the tool's address, resolver)
SELF_TEST_ADDRESSES = {
    4: ("198.51.100.1/24", "198.51.100.2", "ARP"),
    6: ("2001:db8::1/64", "2001:db8::2", "NDP"),
}


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
        raise Fatal(f"--self-test needs {' and '.join(missing)} "
                    "(apt install iproute2 iputils-ping)")
    if os.geteuid() != 0:
        raise Fatal("--self-test creates network namespaces: run it as root "
                    f"(sudo {sys.argv[0]} --self-test)")
    if any(args.vlan or []):
        raise Fatal("--self-test needs --vlan 0: the guest namespace has no "
                    "VLAN interface, so it would drop the replies")
    families = sorted(args.families)
    try:
        with VethPair("avz") as net:
            for family in families:
                # nodad: the address is usable at once, no 1-2 s wait.
                net.in_guest("ip", "addr", "add", SELF_TEST_ADDRESSES[family][0], "dev",
                             net.guest_if, *(["nodad"] if family == 6 else []))
            capture = None
            if shutil.which("tcpdump"):
                capture = net.start(net.guest, "tcpdump", "-n", "-e", "-l",
                                    "--immediate-mode", "-i", net.guest_if, "vlan")
                capture.wait_for("listening on")
            tool_args = [f"-{families[0]}"] if len(families) == 1 else []
            for family in families:
                tool_args += ["--ip", SELF_TEST_ADDRESSES[family][1]]
            tool = net.start(net.host, sys.executable, os.path.abspath(__file__),
                             "--mac", args.mac, *_framing_args(args), *tool_args,
                             net.host_if)
            print(f"self-test: the guest's stack in namespace {net.guest} pings the "
                  f"tool in namespace {net.host} over a veth")
            print(tool.wait_for("Hit Ctrl-C"), end="")
            started = len(tool.output)
            pings, neighbours = {}, {}
            for family in families:
                address = SELF_TEST_ADDRESSES[family][1]
                pings[family] = net.in_guest("ping", f"-{family}", "-n", "-c", "3", "-i",
                                             "0.2", "-W", "2", address, check=False)
                neighbours[family] = net.in_guest("ip", f"-{family}", "neigh", "show",
                                                  address).stdout
            tool.stop()
            print("--- the tool, in the host namespace ---")
            print(tool.output[started:], end="")
            if capture:
                capture.stop()
                print("--- tcpdump -n -e in the guest namespace (tagged frames) ---")
                print("".join(line for line in capture.output.splitlines(True)
                              if re.match(r"\d\d:\d\d:", line)), end="")  # frames alone
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise Fatal(f"self-test could not run: {detail.strip()}") from None
    except KeyboardInterrupt:
        raise Fatal("self-test interrupted") from None
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
            problems.append(f"IPv{family}: the guest did not learn {args.mac} by {resolver}")
    if problems:
        print("self-test: FAIL: " + "; ".join(problems))
        return EXIT_ERROR
    print("self-test: PASS: the guest's stack accepted every tagged reply")
    return EXIT_OK


# ---------------------------------------------------------------- main

def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # the self-test cleans up on it as on Ctrl-C


def main(argv=None):
    args = parse_args(argv)
    try:
        if SCAPY_MISSING:
            raise Fatal(f"Scapy is not installed ({SCAPY_MISSING}); install it "
                        "with: pip install scapy  (or: apt install python3-scapy)")
        log_runtime.setLevel("ERROR")  # our own lines say what went wrong
        if args.self_test:
            signal.signal(signal.SIGTERM, _interrupt)
            return self_test(args)
        if args.read is not None:
            return judge_capture(args)
        return serve(args)
    except Fatal as exc:
        log(f"error: {exc}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
