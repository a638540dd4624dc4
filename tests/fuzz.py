#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A long fuzz run of the pure core, beyond what CI's property tests do.

USAGE: python3 tests/fuzz.py [--frames N] [--seed S]

Feeds N frames (default 1,000,000) to the reassembler and the core: valid
requests of every kind (tagged, fragmented), truncated, extended, bit-flipped,
byte-replaced and spliced, and random bytes. Every frame the core answers is
checked with Scapy's independent dissection (tests/test_safety.py's oracle),
and the plain echo path must give the core's reply or none.
Prints the figures; exits 1 on any exception or any answer to a frame that is
not a well-formed request. No root, no network, and nothing but Scapy: the
seed frames and the oracle are the tests' own, copied here (the tests import
pytest), and tests/test_scripts.py checks that the copies stay the same.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scapy.layers.inet import ICMP, IP, fragment  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr,  # noqa: E402
                                IPv6, IPv6ExtHdrFragment, fragment6)
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402

from arp_icmp_vlan0 import (DEFAULT_MAC, Framing, Reassembler, Scope,  # noqa: E402
                            ethertype_and_offset, fragment_of, plain_echo_replier, reply_to)

# The tests' addresses (tests/test_core.py, tests/test_core6.py).
PEER_MAC = "52:54:00:12:34:56"
PEER_IP, TOOL_IP = "198.51.100.1", "198.51.100.2"
PEER6, TOOL6 = "2001:db8::1", "2001:db8::2"


def echo_request(data=b"0123456789abcdef", pad=b""):
    return bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) /
                 IP(src=PEER_IP, dst=TOOL_IP, ttl=61, tos=0x10, flags="DF", id=4242) /
                 ICMP(type=8, id=0x1234, seq=7) / data) + pad


def echo6(data=b"ping6 data"):
    return bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) /
                 IPv6(src=PEER6, dst=TOOL6, hlim=64, tc=0x28) /
                 ICMPv6EchoRequest(id=0x4321, seq=11, data=data))


# tests/test_safety.py's SEEDS: an ARP request, echo requests (with data,
# empty, padded), a Neighbor Solicitation and ICMPv6 echo requests.
SEEDS = [
    bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") /
          ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP)),
    echo_request(), echo_request(b""), echo_request(b"!", pad=bytes(17)),
    bytes(Ether(src=PEER_MAC, dst="33:33:ff:00:00:02") /
          IPv6(src=PEER6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=TOOL6) /
          ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)),
    echo6(), echo6(b""),
]


def fragments():
    """tests/test_framing.py's ipv4_fragments() and ipv6_fragments(): a
    3000-byte echo request in IPv4 and in IPv6 fragments."""
    ipv4 = (Ether(src=PEER_MAC, dst=DEFAULT_MAC) / IP(src=PEER_IP, dst=TOOL_IP, id=77) /
            ICMP(id=9, seq=1) / (b"z" * 3000))
    ipv6 = (Ether(src=PEER_MAC, dst=DEFAULT_MAC) / IPv6(src=PEER6, dst=TOOL6) /
            IPv6ExtHdrFragment(id=99) / ICMPv6EchoRequest(id=9, seq=1, data=b"y" * 3000))
    return [bytes(f) for f in fragment(ipv4, 1480)] + [
        bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) / f) for f in fragment6(ipv6[IPv6], 1280)]


def reassemble(reassembler, frame, now):
    """What the tool does with a received frame before the core: the frame
    itself if it is no fragment, else the reassembled datagram or None."""
    piece = fragment_of(frame, *ethertype_and_offset(frame))
    return frame if piece is None else reassembler.add(piece, now)


def assert_well_formed(frame, kind):
    """Scapy's independent view: the frame answered is a well-formed request
    of that kind, checksums included."""
    while frame[12:14] == b"\x91\x00":  # a TPID Scapy does not dissect as a tag
        frame = frame[:12] + b"\x81\x00" + frame[14:]
    packet = Ether(frame)
    if kind == "arp":
        arp = packet[ARP]
        assert (arp.op, arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 1, 0x800, 6, 4)
        return
    if kind == "icmp echo":
        ip = packet[IP]
        raw = bytes(ip)[:ip.len]
        fresh = IP(raw)
        del fresh.chksum, fresh[ICMP].chksum
        fresh = IP(bytes(fresh))
        assert (fresh.chksum, fresh[ICMP].chksum) == (ip.chksum, ip[ICMP].chksum)
        assert (ip[ICMP].type, ip[ICMP].code, ip.frag, ip.flags.MF) == (8, 0, 0, 0)
        return
    layer = ICMPv6ND_NS if kind == "ndp" else ICMPv6EchoRequest
    ip6 = packet[IPv6]
    assert packet[layer].code == 0
    fresh = Ether(frame)
    del fresh[layer].cksum
    assert Ether(bytes(fresh))[layer].cksum == packet[layer].cksum
    if kind == "ndp":
        assert ip6.hlim == 255


def tagged(frame):
    packet = Ether(frame)
    return bytes(Ether(src=packet.src, dst=packet.dst) / Dot1Q(vlan=0) / packet.payload)


def mutate(rng, seeds):
    frame = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(4)):
        operation = rng.randrange(5)
        if operation == 0 and frame:
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        elif operation == 1 and frame:
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        elif operation == 2:
            del frame[rng.randrange(len(frame) + 1):]
        elif operation == 3:
            frame += rng.randbytes(rng.randrange(64))
        else:
            other = rng.choice(seeds)
            cut = rng.randrange(min(len(frame), len(other)) + 1)
            frame[cut:] = other[cut:]
    return bytes(frame)


def positive_int(text):
    """argparse type: a whole number of at least 1."""
    number = int(text)  # a ValueError is argparse's "invalid positive_int value"
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return number


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=positive_int, metavar="N", default=1_000_000,
                        help="frames to feed (default 1,000,000)")
    parser.add_argument("--seed", type=int, metavar="S", default=2026,
                        help="seed of the random choices: the same seed, the same frames "
                             "(default 2026)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = SEEDS + [tagged(s) for s in SEEDS] + fragments()
    scope, framing = Scope(), Framing()
    plain = plain_echo_replier(scope, framing)
    reassembler = Reassembler()
    answered = checked = plain_answered = failures = 0
    started = time.monotonic()
    for number in range(args.frames):
        frame = rng.randbytes(rng.randrange(1600)) if number % 10 == 0 else mutate(rng, seeds)
        try:
            whole = reassemble(reassembler, frame, number * 1e-4)
            answer = None if whole is None else reply_to(whole, scope, framing)
            quick = None if whole is None else plain(whole)
            if quick is not None:
                assert answer is not None and quick == answer.reply, "the plain path differs"
                plain_answered += 1
            if answer is not None:
                answered += 1
                assert_well_formed(whole, answer.kind)
                checked += 1
        except Exception as exc:  # report and go on: count every failure
            failures += 1
            if failures <= 5:
                print(f"FAILURE on {frame.hex()}: {exc!r}")
    took = time.monotonic() - started
    print(f"{args.frames} frames in {took:.1f} s ({args.frames / took:,.0f}/s), "
          f"{answered} answered and checked with Scapy ({plain_answered} the same by the "
          f"plain echo path), {reassembler.reassembled} "
          f"reassembled, {reassembler.dropped} fragment sets dropped, "
          f"{len(reassembler.pending)} sets ({reassembler.held} bytes) held at the end, "
          f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
