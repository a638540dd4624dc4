# SPDX-License-Identifier: GPL-2.0-only
"""Tag and frame fidelity, offline: tag settings, padding, fragmented
requests (reassembly) and replies larger than the MTU (fragmentation)."""

import socket
import struct

import pytest
from scapy.layers.inet import ICMP, IP, defragment
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6, IPv6ExtHdrFragment, defragment6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from scapy.utils import checksum

from arp_icmp_vlan0 import (Framing, Reassembler, Scope, ethertype_and_offset, fit_to_mtu,
                            fragment_of, reply_to)
from frames import (MAC, PEER_IP, PEER_MAC, TOOL6, TOOL_IP, arp_request, echo6, echo_request,
                    ipv4_fragments, ipv6_fragments, reassemble, solicitation, wire)


def tags_of(frame):
    """[(tpid, pcp, dei, vid), ...] read off the wire bytes, outer first, and
    the ethertype after them."""
    tags, offset = [], 12
    while True:
        tpid = struct.unpack_from("!H", frame, offset)[0]
        if tpid not in (0x8100, 0x88A8, 0x9100):
            return tags, tpid
        tci = struct.unpack_from("!H", frame, offset + 2)[0]
        tags.append((tpid, tci >> 13, tci >> 12 & 1, tci & 0xFFF))
        offset += 4


def reply(frame, framing, **scope):
    result = reply_to(bytes(frame), Scope(mac=MAC, **scope), framing)
    assert result is not None
    return result.reply


@pytest.mark.parametrize("framing, tags", [
    (Framing(), [(0x8100, 0, 0, 0)]),
    (Framing(vlans=(7,), prio=5, dei=True), [(0x8100, 5, 1, 7)]),
    (Framing(vlans=(100, 0), tpid=0x88A8), [(0x88A8, 0, 0, 100), (0x8100, 0, 0, 0)]),
    (Framing(vlans=(100, 200), tpid=0x9100, prio=3), [(0x9100, 3, 0, 100),
                                                      (0x8100, 3, 0, 200)]),
    (Framing(vlans=()), []),
])
@pytest.mark.parametrize("request_frame, ethertype", [
    (arp_request(), 0x0806), (echo_request(), 0x0800),
    (solicitation(), 0x86DD), (echo6(), 0x86DD)], ids=["arp", "echo", "ns", "echo6"])
def test_every_tag_setting_on_every_reply_kind(framing, tags, request_frame, ethertype):
    frame = reply(request_frame, framing)
    assert tags_of(frame) == (tags, ethertype)
    if framing.tpid == 0x9100:
        return  # Scapy does not dissect this TPID as a tag
    # Scapy dissects the same stack, and the payload after it is intact.
    dissected = wire(frame)
    assert [layer.vlan for layer in dissected.iterpayloads()
            if isinstance(layer, Dot1Q)] == list(framing.vlans)
    assert dissected.haslayer(ARP if ethertype == 0x0806 else
                              IP if ethertype == 0x0800 else IPv6)


def test_framing_reads_like_tcpdump():
    assert str(Framing()) == "vlan 0, p 0"
    assert str(Framing(vlans=(7,), prio=5, dei=True)) == "vlan 7, p 5, DEI"
    assert str(Framing(vlans=(100, 0))) == "vlan 100, p 0, vlan 0, p 0"
    assert str(Framing(vlans=())) == "untagged"


@pytest.mark.parametrize("request_frame, natural", [
    (arp_request(), 28), (echo_request(b""), 28), (echo_request(b"x" * 20), 48),
    (solicitation(), 72), (echo6(b""), 48)], ids=["arp", "echo-empty", "echo-20", "ns",
                                                  "echo6-empty"])
@pytest.mark.parametrize("vlans", [(), (0,), (100, 0)], ids=["untagged", "tag", "qinq"])
@pytest.mark.parametrize("pad", [True, False], ids=["pad", "no-pad"])
def test_padding_to_60_bytes_tags_counted(request_frame, natural, vlans, pad):
    frame = reply(request_frame, Framing(vlans=vlans, pad=pad))
    unpadded = 14 + 4 * len(vlans) + natural
    assert len(frame) == (max(60, unpadded) if pad else unpadded)
    assert not any(frame[unpadded:])


# ---------------------------------------------------------------- MTU

def test_full_mtu_reply_is_one_1518_byte_frame():
    frame = reply(echo_request(b"x" * 1472), Framing())
    assert fit_to_mtu(frame, 1500, Framing()) == [frame]
    assert len(frame) == 1518


@pytest.mark.parametrize("size", [1473, 2972, 7972])
@pytest.mark.parametrize("framing", [Framing(), Framing(vlans=(100, 0)), Framing(vlans=())],
                         ids=["tag", "qinq", "untagged"])
def test_ipv4_reply_larger_than_mtu_is_fragmented(size, framing):
    data = bytes(i % 251 for i in range(size))
    whole = reply(echo_request(data), framing)
    frames = fit_to_mtu(whole, 1500, framing)
    assert len(frames) > 1
    budget = 1500 - 4 * max(0, len(framing.vlans) - 1)
    flags = [(wire(f)[IP].flags.MF, wire(f)[IP].frag) for f in frames]
    assert [mf for mf, _ in flags] == [1] * (len(frames) - 1) + [0] and flags[0][1] == 0
    packets = []
    for frame in frames:
        assert tags_of(frame)[0] == tags_of(whole)[0] and len(frame) >= 60
        ip = wire(frame)[IP]
        assert ip.len <= budget and checksum(bytes(ip)[:20]) == 0
        packets.append(IP(bytes(ip)[:ip.len]))  # without the Ethernet padding
    # Scapy's own reassembly gives the reply back.
    rebuilt = IP(bytes(defragment(packets)[0]))
    assert bytes(rebuilt[ICMP])[8:] == data and checksum(bytes(rebuilt[ICMP])) == 0
    assert rebuilt[ICMP].type == 0 and rebuilt.src == TOOL_IP


@pytest.mark.parametrize("size", [1453, 2952, 7952])
def test_ipv6_reply_larger_than_mtu_gets_fragment_headers(size):
    data = bytes(i % 253 for i in range(size))
    whole = reply(echo6(data), Framing())
    frames = fit_to_mtu(whole, 1500, Framing())
    assert len(frames) > 1
    pieces = [wire(frame) for frame in frames]
    for piece in pieces:
        assert piece[IPv6].plen + 40 <= 1500
        assert piece.haslayer(IPv6ExtHdrFragment)
    assert len({p[IPv6ExtHdrFragment].id for p in pieces}) == 1
    headers = [p[IPv6ExtHdrFragment] for p in pieces]
    assert [h.m for h in headers] == [1] * (len(headers) - 1) + [0]
    assert headers[0].offset == 0 and all(  # each starts where the previous ended
        b.offset * 8 == a.offset * 8 + len(bytes(a.payload)) for a, b in zip(headers, headers[1:]))
    rebuilt = IPv6(bytes(defragment6([p[IPv6] for p in pieces])))
    assert rebuilt[ICMPv6EchoReply].data == data and rebuilt[IPv6].src == TOOL6
    fresh = rebuilt.copy()
    del fresh[ICMPv6EchoReply].cksum
    assert rebuilt[ICMPv6EchoReply].cksum == IPv6(bytes(fresh))[ICMPv6EchoReply].cksum


# ---------------------------------------------------------------- reassembly

def feed(frames, reassembler=None, now=0.0):
    reassembler = reassembler or Reassembler()
    results = [reassemble(reassembler, frame, now) for frame in frames]
    return [r for r in results if r is not None], reassembler


@pytest.mark.parametrize("make", [ipv4_fragments, ipv6_fragments], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["in-order", "reversed", "duplicate-middle"])
def test_reassembled_request_is_answered(make, order):
    fragments = make()
    if order == "reversed":
        fragments = fragments[::-1]
    elif order == "duplicate-middle":
        fragments = fragments[:2] + fragments[1:]
    whole, reassembler = feed(fragments)
    assert len(whole) == 1 and reassembler.reassembled == 1 and not reassembler.pending
    answer = reply_to(whole[0], Scope(mac=MAC), Framing())
    assert answer.kind in ("icmp echo", "icmp6 echo")
    assert reassembler.held == 0


def test_unfragmented_frames_pass_through_untouched():
    frame = bytes(echo_request())
    assert fragment_of(frame, *ethertype_and_offset(frame)) is None


@pytest.mark.parametrize("make", [ipv4_fragments, ipv6_fragments], ids=["ipv4", "ipv6"])
def test_missing_last_fragment_times_out_and_is_counted(make):
    reassembler = Reassembler(timeout=10)
    whole, _ = feed(make()[:-1], reassembler, now=0.0)
    assert whole == [] and len(reassembler.pending) == 1
    later = ipv4_fragments(ident=1)[0]
    assert reassemble(reassembler, later, 11.0) is None
    assert reassembler.dropped == 1 and len(reassembler.pending) == 1  # the later one alone
    assert reassembler.held == len(later) - 14 - 20


def overlapping_ipv4():
    first, second, last = ipv4_fragments()
    shifted = wire(second)
    shifted[IP].frag -= 1  # now overlaps the first fragment by 8 bytes
    del shifted[IP].chksum
    return [first, bytes(shifted), last]


def oversized_ipv4():
    last = wire(ipv4_fragments()[-1])
    last[IP].frag = 8190  # ends past 65,535 bytes
    del last[IP].chksum
    return ipv4_fragments()[:-1] + [bytes(last)]


def odd_length_middle_ipv4():
    first, _, last = ipv4_fragments()
    short = wire(first)
    short[IP].remove_payload()
    short[IP].add_payload(bytes(wire(first)[IP].payload)[:1476])  # MF set, not 8n bytes
    del short[IP].len, short[IP].chksum
    return [bytes(short), last]


@pytest.mark.parametrize("frames", [overlapping_ipv4(), oversized_ipv4(),
                                    odd_length_middle_ipv4()],
                         ids=["overlapping", "oversized", "not-a-multiple-of-8"])
def test_bad_fragment_sets_are_dropped_never_answered(frames):
    whole, reassembler = feed(frames)
    assert whole == []
    assert reassembler.dropped >= 1 and reassembler.reassembled == 0


def test_reassembly_is_bounded_in_datagrams_and_bytes():
    reassembler = Reassembler(max_datagrams=4, max_bytes=5000)
    for ident in range(10):  # ten first fragments that never complete
        assert reassemble(reassembler, ipv4_fragments(ident=ident)[0], 0.0) is None
        assert len(reassembler.pending) <= 4 and reassembler.held <= 5000
    assert reassembler.dropped >= 6
    # A complete datagram still gets through.
    whole, _ = feed(ipv4_fragments(ident=1000), reassembler)
    assert len(whole) == 1


# Fragments in any order with bits flipped (fragment soup): a property test
# of tests/offline/test_safety.py.


ETHER_TO_TOOL = bytes(Ether(src=PEER_MAC, dst=MAC, type=0x0800))
ADDRESSES = socket.inet_aton(PEER_IP) + socket.inet_aton(TOOL_IP)


def raw_ipv4_fragment(offset, data, more, ident=77, proto=1):
    """An IPv4 fragment made by hand, the bytes Scapy would build: Scapy's
    fragment() cannot make a datagram whose data exceeds what its 16-bit
    length field holds, and building 8,190 of them with Scapy takes 3 s."""
    header = struct.pack("!BBHHHBBH8s", 0x45, 0, 20 + len(data), ident,
                         (0x2000 if more else 0) | offset // 8, 64, proto, 0, ADDRESSES)
    header = header[:10] + checksum(header).to_bytes(2, "big") + header[12:]
    return ETHER_TO_TOOL + header + data


@pytest.mark.parametrize("offset, data, more, ident, proto", [
    (0, bytes([8, 0]) + bytes(1478), True, 77, 1), (65520, bytes(15), False, 77, 1),
    (8, b"\xff" * 8, True, 0xFFFF, 17), (1480, b"", False, 0, 1)])
def test_raw_ipv4_fragment_is_what_scapy_builds(offset, data, more, ident, proto):
    header = IP(src=PEER_IP, dst=TOOL_IP, id=ident, proto=proto, frag=offset // 8,
                flags="MF" if more else 0, len=20 + len(data))
    assert raw_ipv4_fragment(offset, data, more, ident, proto) == bytes(
        Ether(src=PEER_MAC, dst=MAC) / header / data)


def test_a_datagram_past_65535_bytes_is_dropped_as_the_kernel_drops_it():
    """Data of 65,535 bytes fit the fragment offsets but not, with the
    20-byte header, the total length: it used to raise OverflowError in
    assemble() (an internal error with a 3 KB hex line)."""
    data = bytes([8, 0]) + bytes(65533)
    frames = [raw_ipv4_fragment(at, data[at:at + 1480], at + 1480 < len(data))
              for at in range(0, len(data), 1480)]
    whole, reassembler = feed(frames)
    assert whole == [] and reassembler.dropped == 1 and reassembler.reassembled == 0
    assert not reassembler.pending and reassembler.held == 0


def test_the_largest_datagram_that_fits_is_reassembled():
    data = bytes([8, 0]) + bytes(65513)  # 20 + 65,515 = 65,535 bytes
    frames = [raw_ipv4_fragment(at, data[at:at + 1480], at + 1480 < len(data))
              for at in range(0, len(data), 1480)]
    whole, reassembler = feed(frames)
    assert len(whole) == 1 and IP(whole[0][14:]).len == 65535


def test_tiny_fragments_in_any_order_reassemble_and_overlaps_are_found_either_side():
    import random
    data = bytes([8, 0]) + bytes(range(256)) * 7 + bytes(6)  # 1,800 bytes
    pieces = [(at, data[at:at + 8]) for at in range(0, len(data), 8)]
    random.Random(3).shuffle(pieces)
    frames = [raw_ipv4_fragment(at, chunk, at + 8 < len(data)) for at, chunk in pieces]
    whole, reassembler = feed(frames)
    assert len(whole) == 1 and bytes(IP(whole[0][14:]).payload) == data
    held = raw_ipv4_fragment(8, bytes(16), True)  # bytes 8 to 24
    for overlapping in (raw_ipv4_fragment(16, bytes(8), True),   # the piece before it
                        raw_ipv4_fragment(0, bytes(16), True)):  # the piece after it
        _, reassembler = feed([held, overlapping])
        assert reassembler.dropped == 1


def test_a_flood_of_tiny_fragments_is_held_within_a_bound_per_datagram():
    """8,190 eight-byte fragments into one datagram: each used to be checked
    against every piece held (3 s of CPU); now a datagram holds at most
    MAX_PIECES and each fragment is checked against its two neighbours."""
    from arp_icmp_vlan0 import MAX_PIECES
    reassembler = Reassembler()
    most = 0
    for n in range(8190):
        reassemble(reassembler, raw_ipv4_fragment(n * 8, bytes(8), True), 0.0)
        most = max(most, max((len(d.offsets) for d in reassembler.pending.values()),
                             default=0))
    assert most == MAX_PIECES
    assert reassembler.dropped == 8190 // (MAX_PIECES + 1)
    assert reassembler.reassembled == 0
