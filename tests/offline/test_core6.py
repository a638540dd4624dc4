# SPDX-License-Identifier: GPL-2.0-only
"""The pure core for IPv6, offline: Neighbor Solicitation -> Advertisement
and ICMPv6 echo, every field checked after a bytes() round trip."""

import ipaddress

import pytest
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6MLReport2, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, IPv6, IPv6ExtHdrDestOpt,
                                IPv6ExtHdrHopByHop, RouterAlert)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from arp_icmp_vlan0 import Framing, tool_link_local
from frames import (MAC, PEER6, PEER_MAC, SOLICITED_NODE, SOLICITED_NODE_MAC, TOOL6, echo6,
                    solicitation, wire)
from checks import answer, assert_one_tag, core_reply


def assert_icmp6_checksum_is_scapys(reply, layer):
    """The checksum sent equals the one Scapy computes from scratch."""
    fresh = reply.copy()
    del fresh[layer].cksum
    assert reply[layer].cksum == Ether(bytes(fresh))[layer].cksum


@pytest.mark.parametrize("targets, override", [
    ((), 0), ((ipaddress.ip_network("2001:db8::/64"),), 0),
    ((ipaddress.ip_network(TOOL6),), 1)], ids=["any-address", "prefix", "owner"])
@pytest.mark.parametrize("framing", [Framing(), Framing(vlans=(7,), prio=5)])
@pytest.mark.parametrize("ns", [
    pytest.param(solicitation(), id="to-solicited-node"),
    pytest.param(solicitation(dst=TOOL6, ether_dst=MAC), id="unicast"),
    pytest.param(solicitation(options=False), id="without-source-lladdr-option"),
    pytest.param(solicitation(extension=IPv6ExtHdrHopByHop()), id="behind-hop-by-hop"),
])
def test_neighbor_advertisement_every_field(ns, framing, targets, override):
    """Override is set only by the owner of a single --ip; for any other
    address the tool answers as a proxy (RFC 4861 7.2.4), so that the real
    owner's advertisement wins in the guest's cache."""
    kind, reply = answer(ns, framing, targets=targets)
    assert kind == "ndp"
    assert (reply.src, reply.dst) == (MAC, PEER_MAC)
    assert_one_tag(reply, framing, 0x86DD)
    ip6 = reply[IPv6]
    assert (ip6.version, ip6.tc, ip6.fl, ip6.nh, ip6.hlim) == (6, 0, 0, 58, 255)
    assert (ip6.src, ip6.dst) == (TOOL6, PEER6)
    assert ip6.plen == 24 + 8
    na = reply[ICMPv6ND_NA]
    assert (na.type, na.code, na.R, na.S, na.O, na.res) == (136, 0, 0, 1, override, 0)
    assert na.tgt == TOOL6
    option = reply[ICMPv6NDOptDstLLAddr]
    assert (option.type, option.len, option.lladdr) == (2, 1, MAC)
    assert not option.payload  # nothing after the option
    assert len(bytes(reply)) == 14 + 4 + 40 + 32
    assert_icmp6_checksum_is_scapys(reply, ICMPv6ND_NA)


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 4],
                         ids=["empty", "one-byte", "1024-bytes"])
def test_echo6_reply_every_field(data):
    kind, reply = answer(echo6(data), Framing(vlans=(0,), prio=3))
    assert kind == "icmp6 echo"
    assert (reply.src, reply.dst) == (MAC, PEER_MAC)
    assert_one_tag(reply, Framing(vlans=(0,), prio=3), 0x86DD)
    ip6 = reply[IPv6]
    assert (ip6.tc, ip6.nh, ip6.hlim, ip6.src, ip6.dst) == (0x28, 58, 64, TOOL6, PEER6)
    assert ip6.plen == 8 + len(data)
    echo = reply[ICMPv6EchoReply]
    assert (echo.type, echo.code, echo.id, echo.seq, echo.data) == (129, 0, 0x4321, 11, data)
    assert len(bytes(reply)) == 14 + 4 + 40 + 8 + len(data)  # never below 60
    assert_icmp6_checksum_is_scapys(reply, ICMPv6EchoReply)


def test_echo6_padding_is_not_data_and_hop_by_hop_is_looked_past():
    request = echo6(b"", extension=IPv6ExtHdrHopByHop(), pad=b"\xaa" * 6)
    _, reply = answer(request)
    assert reply[ICMPv6EchoReply].data == b""
    assert reply[IPv6].nh == 58  # the reply carries no extension header


def test_tagged_solicitation_gets_the_configured_tag_only():
    tagged = wire(Ether(src=PEER_MAC, dst=SOLICITED_NODE_MAC) / Dot1Q(vlan=0, prio=5) /
                  IPv6(src=PEER6, dst=SOLICITED_NODE, hlim=255) / ICMPv6ND_NS(tgt=TOOL6))
    _, reply = answer(tagged, Framing(vlans=(0,), prio=2))
    assert_one_tag(reply, Framing(vlans=(0,), prio=2), 0x86DD)


def test_multicast_echo_answered_only_when_asked_and_from_link_local():
    request = echo6(dst="ff02::1", ether_dst="33:33:00:00:00:01")
    assert core_reply(request) is None
    _, reply = answer(request, multicast_ping6=True)
    assert reply[IPv6].src == tool_link_local(MAC) == "fe80::76:6cff:fe61:6e30"
    assert reply[IPv6].dst == PEER6


def corrupt(frame, offset):
    raw = bytearray(bytes(frame))
    raw[offset] ^= 0xFF
    return wire(bytes(raw))


ICMP6_AT = 14 + 40


@pytest.mark.parametrize("frame", [
    pytest.param(solicitation(src="::", options=False), id="dad-from-unspecified"),
    pytest.param(solicitation(hlim=254), id="hop-limit-254"),
    pytest.param(solicitation(code=1), id="code-not-0"),
    pytest.param(solicitation(target="ff02::1"), id="multicast-target"),
    pytest.param(solicitation(target="::1"), id="loopback-target"),
    pytest.param(solicitation(src="ff02::1"), id="multicast-source"),
    pytest.param(solicitation(dst="ff02::1:ff00:3", ether_dst="33:33:ff:00:00:03"),
                 id="other-solicited-node-group"),
    pytest.param(solicitation(ether_dst="33:33:ff:00:00:09"), id="wrong-multicast-mac"),
    pytest.param(solicitation(dst=TOOL6, ether_dst="52:54:00:99:99:99"),
                 id="unicast-to-another-mac"),
    pytest.param(wire(Ether(src=MAC, dst=SOLICITED_NODE_MAC) /
                      IPv6(src=PEER6, dst=SOLICITED_NODE, hlim=255) / ICMPv6ND_NS(tgt=TOOL6)),
                 id="from-our-own-mac"),
    pytest.param(corrupt(solicitation(), ICMP6_AT + 2), id="bad-checksum"),
    pytest.param(wire(bytes(solicitation())[:-4]), id="truncated"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=SOLICITED_NODE_MAC) /
                      IPv6(src=PEER6, dst=SOLICITED_NODE, hlim=255) / ICMPv6ND_NS(tgt=TOOL6) /
                      Raw(b"\x01\x00" + b"\x00" * 6)), id="zero-length-option"),
    pytest.param(wire(Ether(src=PEER_MAC, dst="33:33:00:00:00:02") /
                      IPv6(src=PEER6, dst="ff02::2", hlim=255) / ICMPv6ND_RS()),
                 id="router-solicitation"),
    pytest.param(wire(Ether(src=PEER_MAC, dst="33:33:00:00:00:16") /
                      IPv6(src=PEER6, dst="ff02::16", hlim=1) /
                      IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport2()),
                 id="mld-report"),
    pytest.param(wire(Ether(src=PEER_MAC, dst="33:33:00:00:00:01") /
                      IPv6(src=TOOL6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=TOOL6)),
                 id="neighbor-advertisement"),
    pytest.param(echo6(dst="ff02::1", ether_dst="33:33:00:00:00:01"), id="echo-to-multicast"),
    pytest.param(echo6(src="::"), id="echo-from-unspecified"),
    pytest.param(echo6(src="ff02::1"), id="echo-from-multicast"),
    pytest.param(echo6(ether_dst="52:54:00:99:99:99"), id="echo-to-another-mac"),
    pytest.param(echo6(code=1), id="echo-code-not-0"),
    pytest.param(corrupt(echo6(), ICMP6_AT + 3), id="echo-bad-checksum"),
    pytest.param(wire(bytes(echo6(b"x" * 64))[:-8]), id="echo-truncated"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IPv6(src=PEER6, dst=TOOL6) /
                      ICMPv6EchoReply()), id="echo-reply"),
])
def test_never_answered(frame):
    assert core_reply(frame) is None


def test_only_a_hop_by_hop_header_is_looked_past():
    # As the kernel filter: ICMPv6 right after IPv6 or after one Hop-by-Hop header.
    assert core_reply(echo6(extension=IPv6ExtHdrDestOpt())) is None
    assert core_reply(echo6(extension=IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt())) is None
    assert core_reply(echo6(extension=IPv6ExtHdrHopByHop(options=[RouterAlert()])))


def test_ip_option_and_families_limit_ipv6():
    targets = (ipaddress.ip_network("2001:db8::/64"),)
    assert core_reply(solicitation(), targets=targets) is not None
    assert core_reply(echo6(), targets=targets) is not None
    assert core_reply(solicitation(target="2001:db8:1::2", dst="ff02::1:ff00:2"),
                      targets=targets) is None
    subnet_router_anycast = solicitation(target="2001:db8::", dst="ff02::1:ff00:0",
                                         ether_dst="33:33:ff:00:00:00")
    assert core_reply(subnet_router_anycast, targets=targets) is None
    assert core_reply(solicitation(), targets=(ipaddress.ip_network("198.51.100.2"),)) is None
    assert core_reply(solicitation(), families=frozenset({4})) is None
    assert core_reply(echo6(), families=frozenset({4})) is None
    assert core_reply(echo6(), families=frozenset({6})) is not None


# Truncations, bit flips and random IPv6 frames: tests/offline/test_safety.py's
# property tests.


OWNED6 = (ipaddress.ip_network(TOOL6),)


@pytest.mark.parametrize("targets, answered", [
    (OWNED6, True), ((ipaddress.ip_network("2001:db8::/64"),), False), ((), False)],
    ids=["single", "prefix", "any-address"])
def test_dad_is_answered_only_for_an_address_given_singly(targets, answered):
    dad = solicitation(src="::", options=False)
    result = core_reply(dad, targets=targets)
    assert (result is not None) is answered
    if answered:
        # RFC 4861 7.2.4: to all nodes, Solicited clear, from the target.
        reply = wire(result.reply)
        assert result.kind == "ndp" and (reply.src, reply.dst) == (MAC, "33:33:00:00:00:01")
        ip6 = reply[IPv6]
        assert (ip6.src, ip6.dst, ip6.hlim) == (TOOL6, "ff02::1", 255)
        na = reply[ICMPv6ND_NA]
        assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, TOOL6)
        assert reply[ICMPv6NDOptDstLLAddr].lladdr == MAC
        assert_icmp6_checksum_is_scapys(reply, ICMPv6ND_NA)


@pytest.mark.parametrize("frame", [
    pytest.param(solicitation(src="::", options=True), id="with-source-lladdr-option"),
    pytest.param(solicitation(src="::", options=False, dst=TOOL6, ether_dst=MAC),
                 id="unicast"),
    pytest.param(solicitation(src="::", options=False, target="2001:db8::3",
                              dst="ff02::1:ff00:3", ether_dst="33:33:ff:00:00:03"),
                 id="for-another-address"),
])
def test_malformed_or_foreign_dad_stays_unanswered(frame):
    assert core_reply(frame, targets=OWNED6) is None
