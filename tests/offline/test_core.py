# SPDX-License-Identifier: GPL-2.0-only
"""The pure core, offline: crafted requests in, replies out, every field
checked after a bytes() round trip."""

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum

import arp_icmp_vlan0
from arp_icmp_vlan0 import Framing, Scope, plain_echo_replier, reply_to, wants_address
from checks import FRAMING, answer, assert_one_tag, assert_plain_agrees, core_reply, echo_data
from frames import MAC, PEER_IP, PEER_MAC, TOOL_IP, arp_request, echo_request, wire


# ---------------------------------------------------------------- ARP

@pytest.mark.parametrize("framing", [Framing(), Framing(vlans=(7,), prio=5),
                                 Framing(vlans=(4094,), prio=7)])
def test_arp_reply_every_field(framing):
    kind, reply = answer(arp_request(), framing)
    assert kind == "arp"
    assert (reply.src, reply.dst) == (MAC, PEER_MAC)
    assert_one_tag(reply, framing, 0x0806)
    arp = reply[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 2)
    assert (arp.hwsrc, arp.psrc) == (MAC, TOOL_IP)
    assert (arp.hwdst, arp.pdst) == (PEER_MAC, PEER_IP)
    assert len(bytes(reply)) == 60  # 14 + 4 + 28, padded to the minimum
    assert bytes(reply)[46:] == bytes(14)


def test_arp_reply_goes_to_the_ethernet_sender_and_the_arp_sender_fields():
    frame = wire(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc="52:54:00:aa:bb:cc", psrc="203.0.113.9",
                     pdst="203.0.113.10"))
    _, reply = answer(frame)
    assert reply.dst == PEER_MAC
    assert (reply[ARP].hwdst, reply[ARP].pdst) == ("52:54:00:aa:bb:cc", "203.0.113.9")
    assert reply[ARP].psrc == "203.0.113.10"


def test_unicast_arp_request_to_our_mac_is_answered():
    frame = wire(Ether(src=PEER_MAC, dst=MAC) /
                 ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=MAC, pdst=TOOL_IP))
    assert answer(frame)[0] == "arp"


def test_tagged_arp_request_gets_the_configured_tag_only():
    tagged = wire(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=5, prio=3) /
                  ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP))
    _, reply = answer(tagged, Framing(vlans=(0,), prio=1))
    assert_one_tag(reply, Framing(vlans=(0,), prio=1), 0x0806)


@pytest.mark.parametrize("frame", [
    pytest.param(arp_request(op=2), id="arp-reply"),
    pytest.param(arp_request(psrc="0.0.0.0"), id="probe-rfc5227"),
    pytest.param(arp_request(psrc=TOOL_IP), id="gratuitous"),
    pytest.param(arp_request(hwsrc=MAC), id="arp-sender-is-our-mac"),
    pytest.param(wire(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") /
                      ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP)),
                 id="frame-from-our-mac"),
    pytest.param(wire(Ether(src="01:00:5e:00:00:01", dst="ff:ff:ff:ff:ff:ff") /
                      ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP)),
                 id="multicast-source-mac"),
    pytest.param(arp_request(hwsrc="ff:ff:ff:ff:ff:ff"), id="broadcast-arp-sender"),
    pytest.param(wire(Ether(src=PEER_MAC, dst="52:54:00:99:99:99") /
                      ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP)),
                 id="unicast-to-another-station"),
    pytest.param(arp_request(pdst="255.255.255.255"), id="target-broadcast"),
    pytest.param(arp_request(pdst="224.0.0.1"), id="target-multicast"),
    pytest.param(arp_request(pdst="0.0.0.0"), id="target-unspecified"),
    pytest.param(arp_request(pdst="127.0.0.1"), id="target-loopback"),
    pytest.param(arp_request(psrc="224.0.0.5"), id="sender-multicast"),
    pytest.param(arp_request(hwtype=6), id="not-ethernet-hardware"),
    pytest.param(wire(bytes(arp_request())[:14 + 20]), id="truncated"),
])
def test_arp_never_answered(frame):
    assert core_reply(frame) is None


def test_arp_for_other_addresses_than_ip_option_is_ignored():
    targets = (ipaddress.IPv4Network("203.0.113.0/24"),)
    assert core_reply(arp_request(pdst="203.0.113.7", psrc="203.0.113.1"),
                 targets=targets) is not None
    for outside in ("198.51.100.2", "203.0.113.0", "203.0.113.255"):
        assert core_reply(arp_request(pdst=outside, psrc="203.0.113.1"),
                     targets=targets) is None, outside


# ---------------------------------------------------------------- ICMP echo

@pytest.mark.parametrize("framing", [Framing(), Framing(vlans=(7,), prio=5)])
@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 5 + b"odd"],
                         ids=["empty", "one-byte", "1283-bytes"])
def test_echo_reply_every_field(framing, data):
    kind, reply = answer(echo_request(data), framing)
    assert kind == "icmp echo"
    assert (reply.src, reply.dst) == (MAC, PEER_MAC)
    assert_one_tag(reply, framing, 0x0800)
    ip = reply[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.ttl, ip.proto) == (4, 5, 0x10, 64, 1)
    assert (ip.src, ip.dst) == (TOOL_IP, PEER_IP)
    assert (int(ip.flags), ip.frag) == (0, 0)
    assert ip.len == 20 + 8 + len(data)
    icmp = reply[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, 0x1234, 7)
    assert echo_data(reply) == data
    assert len(bytes(reply)) == max(60, 14 + 4 + ip.len)
    # Checksums: valid, and equal to what Scapy computes from scratch.
    raw_ip = bytes(ip)
    assert checksum(raw_ip[:20]) == 0 and checksum(raw_ip[20:]) == 0
    fresh = ip.copy()
    del fresh.chksum, fresh[ICMP].chksum
    fresh = IP(bytes(fresh))
    assert (ip.chksum, icmp.chksum) == (fresh.chksum, fresh[ICMP].chksum)


@pytest.mark.parametrize("framing", [Framing(), Framing(vlans=()), Framing(vlans=(),
                         pad=False), Framing(vlans=(5, 6), tpid=0x88A8, prio=3, dei=True)])
@pytest.mark.parametrize("data", [b"", b"!", b"x" * 13, bytes(range(256)) * 5 + b"odd"])
@pytest.mark.parametrize("pad", [b"", b"\xaa" * 17])
def test_the_plain_echo_path_answers_the_usual_request_as_the_core_does(framing, data, pad):
    frame = bytes(echo_request(data, pad=pad))
    scope = Scope(mac=MAC)
    expected = reply_to(frame, scope, framing).reply
    assert assert_plain_agrees(frame, scope, framing, reply_to(frame, scope, framing)) \
        == expected


@pytest.mark.parametrize("scope", [
    Scope(mac=MAC, targets=(ipaddress.IPv4Network("198.51.100.0/24"),)),
    Scope(mac=MAC, families=frozenset({6}))], ids=["with-ip", "ipv6-only"])
def test_the_plain_echo_path_is_off_when_the_scope_narrows(scope):
    assert plain_echo_replier(scope, FRAMING) is None


def test_the_plain_echo_path_leaves_the_unusual_to_the_core():
    """Tagged, with options, fragmented: the core answers, the plain path
    does not try."""
    scope, plain = Scope(mac=MAC), plain_echo_replier(Scope(mac=MAC), FRAMING)
    for frame in (Ether(src=PEER_MAC, dst=MAC) / Dot1Q(vlan=0) /
                  IP(src=PEER_IP, dst=TOOL_IP) / ICMP(id=1, seq=2) / b"tagged",
                  Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP,
                                                    options=[b"\x01" * 4]) / ICMP() / b"o"):
        assert reply_to(bytes(frame), scope, FRAMING) is not None
        assert plain(bytes(frame)) is None


def test_the_plain_echo_path_patches_the_header_checksum_for_every_identification():
    """The plain path patches the request's IP header checksum (RFC 1624)
    where the core sums the reply's header: the same for all 65,536 IP IDs,
    so every sum the reply's header can have, its +0 and -0 included, and
    for a request that carries its zero checksum as 0xFFFF."""
    scope = Scope(mac=MAC)
    plain = plain_echo_replier(scope, FRAMING)
    base = bytearray(bytes(echo_request(ttl=1, flags="DF")))
    answered = 0
    for ident in range(1 << 16):
        base[18:20], base[24:26] = ident.to_bytes(2, "big"), b"\x00\x00"
        base[24:26] = checksum(bytes(base[14:34])).to_bytes(2, "big")
        frames = [bytes(base)]
        if base[24:26] == b"\x00\x00":
            frames.append(bytes(base[:24]) + b"\xff\xff" + bytes(base[26:]))
        for frame in frames:
            expected = reply_to(frame, scope, FRAMING)
            assert expected is not None and plain(frame) == expected.reply, ident
            answered += 1
    assert answered == (1 << 16) + 1


def test_ethernet_padding_is_not_echo_data():
    # A 1-byte echo request is padded to the 60-byte minimum on the wire.
    frame = echo_request(b"!", pad=b"\xaa" * 17)
    assert len(bytes(frame)) == 60
    _, reply = answer(frame)
    assert echo_data(reply) == b"!"
    assert reply[IP].len == 29


def test_tagged_echo_request_gets_the_configured_tag_only():
    request = wire(Ether(src=PEER_MAC, dst=MAC) / Dot1Q(vlan=0, prio=6) /
                   IP(src=PEER_IP, dst=TOOL_IP) / ICMP(id=1, seq=2) / b"tagged")
    _, reply = answer(request, Framing(vlans=(3,), prio=2))
    assert_one_tag(reply, Framing(vlans=(3,), prio=2), 0x0800)
    assert echo_data(reply) == b"tagged"


def test_echo_request_with_ip_options_is_answered_without_them():
    request = wire(Ether(src=PEER_MAC, dst=MAC) /
                   IP(src=PEER_IP, dst=TOOL_IP, options=[b"\x01" * 4]) /
                   ICMP(id=1, seq=2) / b"opts")
    _, reply = answer(request)
    assert reply[IP].ihl == 5 and echo_data(reply) == b"opts"


def corrupt_ip_checksum(frame):
    raw = bytearray(bytes(frame))
    raw[14 + 10] ^= 0xFF
    return wire(bytes(raw))


def corrupt_icmp_checksum(frame):
    raw = bytearray(bytes(frame))
    raw[14 + 20 + 2] ^= 0xFF
    return wire(bytes(raw))


@pytest.mark.parametrize("frame", [
    pytest.param(echo_request(dst="255.255.255.255"), id="to-limited-broadcast"),
    pytest.param(echo_request(dst="224.0.0.1"), id="to-multicast"),
    pytest.param(echo_request(src="0.0.0.0"), id="from-unspecified"),
    pytest.param(echo_request(src="127.0.0.1"), id="from-loopback"),
    pytest.param(echo_request(dst="127.0.0.1"), id="to-loopback"),
    pytest.param(echo_request(dst="0.1.2.3"), id="to-this-network"),
    pytest.param(echo_request(src="224.0.0.1"), id="from-multicast"),
    pytest.param(echo_request(src="255.255.255.255"), id="from-broadcast"),
    pytest.param(echo_request(ether_dst="ff:ff:ff:ff:ff:ff"), id="to-broadcast-mac"),
    pytest.param(echo_request(ether_dst="52:54:00:99:99:99"), id="to-another-mac"),
    pytest.param(wire(Ether(src=MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      ICMP()), id="from-our-own-mac"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      ICMP(type=0)), id="echo-reply"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      ICMP(type=8, code=1)), id="echo-code-not-0"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      ICMP(type=13)), id="timestamp-request"),
    pytest.param(echo_request(flags="MF"), id="first-fragment"),
    pytest.param(echo_request(frag=185), id="later-fragment"),
    pytest.param(corrupt_ip_checksum(echo_request()), id="bad-ip-checksum"),
    pytest.param(corrupt_icmp_checksum(echo_request()), id="bad-icmp-checksum"),
    pytest.param(wire(bytes(echo_request(b"x" * 100))[:-10]), id="truncated-data"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      UDP(dport=9) / b"x"), id="udp"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP, proto=17) /
                      ICMP(type=8) / b"x"), id="echo-bytes-in-another-protocol"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                      TCP(dport=80, flags="S")), id="tcp-syn"),
    pytest.param(wire(Ether(src=PEER_MAC, dst=MAC) / IPv6(src="2001:db8::1",
                      dst="2001:db8::2")), id="ipv6"),
    pytest.param(wire(Ether(src=PEER_MAC, dst="01:80:c2:00:00:0e", type=0x88cc) /
                      Raw(b"\x02\x07\x04" + b"\x00" * 40)), id="lldp"),
])
def test_echo_never_answered(frame):
    assert core_reply(frame) is None


def test_echo_to_other_addresses_than_ip_option_is_ignored():
    targets = (ipaddress.IPv4Network("198.51.100.2/32"),
               ipaddress.IPv4Network("203.0.113.0/24"))
    assert core_reply(echo_request(dst="198.51.100.2"), targets=targets)
    assert core_reply(echo_request(dst="203.0.113.99"), targets=targets)
    assert core_reply(echo_request(dst="198.51.100.3"), targets=targets) is None
    assert core_reply(echo_request(dst="203.0.113.255"), targets=targets) is None


@pytest.mark.parametrize("addr, targets, expected", [
    ("198.51.100.2", (), True),
    ("0.0.0.0", (), False),
    ("255.255.255.255", (), False),
    ("239.1.2.3", (), False),
    ("127.0.0.1", (), False),
    ("203.0.113.0", ("203.0.113.0/31",), True),   # /31: both are hosts (RFC 3021)
    ("203.0.113.1", ("203.0.113.0/31",), True),
    ("203.0.113.0", ("203.0.113.0/30",), False),
    ("203.0.113.3", ("203.0.113.0/30",), False),
    ("203.0.113.2", ("203.0.113.0/30",), True),
    ("203.0.113.4", ("203.0.113.0/30",), False),
])
def test_wants_address(addr, targets, expected):
    nets = tuple(ipaddress.IPv4Network(t) for t in targets)
    assert wants_address(ipaddress.ip_address(addr).packed, nets) is expected


# ---------------------------------------------------------------- checksums
#
# Random bytes, truncations and bit flips of every request: the property
# tests of tests/offline/test_safety.py.

@given(st.binary(max_size=200))
def test_the_checksum_is_scapys(data):
    assert arp_icmp_vlan0.checksum(data) == checksum(data)


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(20), b"\xff\xff", b"\x00\x01" * 3,
                                  b"\xff\xfe\x00\x01", b"\x12"])
def test_the_checksum_at_its_edges(data):
    assert arp_icmp_vlan0.checksum(data) == checksum(data)


def test_the_patched_echo_checksum_is_what_a_full_sum_gives():
    # Every possible request checksum, through the identifier: the reply's
    # checksum, patched (RFC 1624), equals Scapy's sum of the reply.
    for ident in range(1 << 16):
        request = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, 0))
        request[2:4] = checksum(bytes(request)).to_bytes(2, "big")
        reply = arp_icmp_vlan0._echo_reply_message(bytes(request))
        assert checksum(reply) == 0 or not any(reply), reply.hex()
        assert reply[2:4] == checksum(reply[:2] + b"\x00\x00" + reply[4:]).to_bytes(2, "big")


OWNED = (ipaddress.ip_network(TOOL_IP),)


@pytest.mark.parametrize("targets, answered", [
    (OWNED, True), ((ipaddress.ip_network(f"{TOOL_IP}/32"),), True),
    ((ipaddress.ip_network("198.51.100.0/24"),), False), ((), False)],
    ids=["single", "single-32", "prefix", "any-address"])
def test_an_arp_probe_is_answered_only_for_an_address_given_singly(targets, answered):
    probe = arp_request(psrc="0.0.0.0")
    result = core_reply(probe, targets=targets)
    assert (result is not None) is answered
    if answered:
        # As the kernel answers a probe for its own address: to the prober,
        # target protocol address 0.0.0.0 (RFC 5227 2.1.1).
        reply = wire(result.reply)
        assert result.kind == "arp" and (reply.src, reply.dst) == (MAC, PEER_MAC)
        arp = reply[ARP]
        assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
            2, MAC, TOOL_IP, PEER_MAC, "0.0.0.0")


def test_probes_for_other_addresses_and_announcements_stay_unanswered():
    assert core_reply(arp_request(psrc="0.0.0.0", pdst="198.51.100.3"), targets=OWNED) is None
    assert core_reply(arp_request(psrc=TOOL_IP, pdst=TOOL_IP), targets=OWNED) is None
