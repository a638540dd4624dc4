#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A long fuzz run of the pure core and of what --dhcp, --ra, --probe,
--dhcp6, --pppoe and --dot1x read from a guest, beyond what CI's property
tests do.

USAGE: python3 tests/figures/fuzz.py [--frames N] [--seed S]

Feeds N frames (default 1,000,000) to the reassembler and the core: valid
requests of every kind (tagged, fragmented), truncated, extended, bit-flipped,
byte-replaced and spliced, and random bytes. Every frame the core answers is
checked with Scapy's independent dissection (the oracle of tests/lib/frames.py
that tests/offline/test_safety.py uses), and the plain echo path must give the core's
reply or none. Every frame goes through the DHCP server, the advertiser,
the probe's parser, the DHCPv6 server, the PPPoE access concentrator, the
802.1X authenticator and the guests' framing too (with their own seeds:
DHCP and DHCPv6 messages, a Router Solicitation, answers to probes, PPPoE
discovery and session frames, EAPOL); each reply must dissect as what it is.
Every frame, and the same frame as the switch's (the services' answers to the
seeds are seeds too), is read as a capture's (-r's Replay, every judge on).
Prints the figures; exits 1 on any exception or any answer to a frame that is
not a well-formed request. No root, no network, and nothing but Scapy: the
seed frames, fragment sets and oracle are the tests' own, from tests/lib/frames.py
(which needs no pytest).
"""

import argparse
import os
import random
import sys
import time

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(TESTS))  # the tool
sys.path.insert(0, os.path.join(TESTS, "lib"))  # frames and netlab, also by runpy.run_path

from scapy.error import log_runtime  # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402

import ipaddress  # noqa: E402

from scapy.layers.dhcp import BOOTP  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402

from arp_icmp_vlan0 import (DEFAULT_MAC, ETH_P_IP, Advertiser, Budget, CaptureScope,  # noqa: E402
                            DhcpServer, Dhcp6Server, Dot1xAuthenticator, Events, Exchange,
                            Framing, Framings, Lines, PppoeServer, Prober, Reassembler, Replay,
                            Scope, Settings, TftpServer, answer_with, ethertype_and_offset,
                            mac2str, observe_with, plain_echo_replier, reply_to, services_from)
from frames import (SEEDS, access_seeds, assert_well_formed, dnssl_solicitation,  # noqa: E402
                    ipv4_fragments, ipv6_fragments, reassemble, service_seeds)
from netlab import at_least  # noqa: E402


class FuzzLink:
    """What a line needs of the interface a frame came in on."""
    name = "fuzz0"


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



class Services:
    """--probe, --dhcp, --boot-file and --ra as the loop runs them (their
    contract), on one interface."""

    def __init__(self):
        network = ipaddress.ip_network("198.51.100.0/24")
        server = ipaddress.ip_address("198.51.100.2").packed
        scope = Scope(targets=(network, ipaddress.ip_network("2001:db8::/64")), own=(server,),
                      leased={})
        framing, events = Framing(), Events()
        prefix = ipaddress.ip_network("2001:db8::/64")
        self.services = [
            Framings(scope, events),
            Prober((ipaddress.ip_address("198.51.100.1").packed,), scope, framing, 0x4242,
                   events),
            DhcpServer(network, server, scope, framing, events, {"": "boot.ipxe"}),
            TftpServer({"boot.ipxe": bytes(range(256)) * 8}, server, scope, framing, events),
            Advertiser(prefix, 0, scope, framing),
            Dhcp6Server(prefix, ipaddress.ip_address("2001:db8::2").packed,
                        (ipaddress.ip_network("2001:db8:100::/40"), 56), scope, framing, events),
            PppoeServer("fuzz", scope, framing, events),
            Dot1xAuthenticator(scope, framing, events)]
        # Every message dissected, as if each interface's budget never ran out.
        for service in self.services:
            if hasattr(service, "budget"):
                service.budget = Budget(float("inf"), float("inf"))
        self.send_due(0.0)
        self.answered = 0

    def send_due(self, now):
        for service in self.services:
            service.send_due(now, {"fuzz0"})

    def feed(self, frame, now):
        ethertype, offset = ethertype_and_offset(frame)
        answer, by = answer_with(self.services, FuzzLink.name, frame, ethertype, offset, now)
        if answer is not None and answer.kind == "dhcp":
            assert Ether(answer.reply).haslayer(BOOTP), "a DHCP reply that is not one"
        if answer is not None and answer.kind == "dhcp6":
            packet = Ether(answer.reply)
            assert packet[UDP].sport == 547 and packet[UDP].dport == 546, "a DHCPv6 reply's ports"
            assert bytes(packet[UDP].payload)[0] in (2, 7), "not an Advertise or Reply"
        if answer is not None and answer.kind == "pppoe":
            assert Ether(answer.reply)[Dot1Q].type == 0x8863, "not PPPoE discovery"
        if answer is not None and answer.kind == "dot1x":
            assert Ether(answer.reply)[Dot1Q].type == 0x888E, "not EAPOL"
        if answer is not None and answer.kind == "tftp":
            udp = Ether(answer.reply)[UDP]
            assert udp.sport == 69 or 61440 <= udp.sport <= 61695, "a TFTP reply's port"
            assert bytes(udp.payload)[:2] in (b"\0\3", b"\0\5", b"\0\6"), "not TFTP"
        self.answered += answer is not None and answer.reply is not None
        frames = () if answer is None or answer.reply is None else (answer.reply,)
        observe_with(self.services, Exchange(FuzzLink, frame, now, frame, ethertype, answer,
                                             frames, now, by))
        self.send_due(now)


class Silent:
    """Where a Replay's lines go in a fuzz run: nowhere."""
    closed = False

    def say(self, line):
        pass


class Capture:
    """-r's Replay with every judge on, the switch the tool's MAC: each
    frame goes in as a guest's and, its source made the switch's, as the
    switch's (the seeds include the answers the services gave)."""

    def __init__(self):
        network, prefix = ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network(
            "2001:db8::/64")
        settings = Settings((), CaptureScope(), Framing(live=False), verbose=-1,
                            until_verdict=True, probe=(),
                            dhcp=(network, ipaddress.ip_address("198.51.100.2").packed),
                            ra=prefix, dhcp6=(prefix, None),
                            delegate=(ipaddress.ip_network("2001:db8:100::/40"), 56),
                            pppoe="fuzz", dot1x=True)
        self.switch = mac2str(DEFAULT_MAC)
        self.replay = Replay(settings, services_from(settings), (self.switch,), Silent())

    def feed(self, frame, now):
        self.replay.feed(now, "fuzz0", frame)
        if len(frame) >= 12:
            self.replay.feed(now, "fuzz0", frame[:6] + self.switch + frame[12:])

    def errors(self):
        return sum(link.stats.internal_errors for link in self.replay.links.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=at_least(1), metavar="N", default=1_000_000,
                        help="frames to feed (default 1,000,000)")
    parser.add_argument("--no-lines", dest="lines", action="store_false",
                        help="skip the line the default mode (-v) prints for each frame, "
                             "Scapy's summary of it (about a third of the time)")
    parser.add_argument("--seed", type=int, metavar="S", default=2026,
                        help="seed of the random choices: the same seed, the same frames "
                             "(default 2026)")
    args = parser.parse_args()
    log_runtime.setLevel("ERROR")  # as the tool does: its lines say what went wrong
    rng = random.Random(args.seed)
    seeds = (SEEDS + [tagged(s) for s in SEEDS] + ipv4_fragments() + ipv6_fragments()
             + [dnssl_solicitation()] + service_seeds() + access_seeds()
             + [tagged(s) for s in access_seeds()])
    services, capture = Services(), Capture()
    answers = []  # what the services answer the seeds: the switch's frames to mutate
    for seed in list(seeds):
        ethertype, offset = ethertype_and_offset(seed)
        answer, _ = answer_with(services.services, FuzzLink.name, seed, ethertype, offset, 0.0)
        if answer is not None and answer.reply:
            answers.append(answer.reply)
    seeds += answers
    scope, framing = Scope(), Framing()
    plain = plain_echo_replier(scope, framing)
    reassembler = Reassembler()
    lines = Lines(framing, say=None)
    answered = checked = plain_answered = failures = lines_made = fallbacks = 0
    started = time.monotonic()
    for number in range(args.frames):
        frame = rng.randbytes(rng.randrange(1600)) if number % 10 == 0 else mutate(rng, seeds)
        try:
            whole = reassemble(reassembler, frame, number * 1e-4)
            answer = None if whole is None else reply_to(whole, scope, framing)
            if whole is not None:
                services.feed(whole, number * 1e-4)
            capture.feed(frame, number * 1e-4)
            quick = None if whole is None else plain(whole)
            if quick is not None:
                assert answer is not None and quick == answer.reply, "the plain path differs"
                plain_answered += 1
            if answer is not None:
                answered += 1
                assert_well_formed(whole, answer.kind)
                checked += 1
            if args.lines and whole is not None:  # what -v prints, whatever it is
                frames = () if answer is None else (answer.reply,)
                line = lines.format(Exchange(FuzzLink, frame, 0.0, whole, ETH_P_IP, answer,
                                             frames, 0.0))
                lines_made += 1
                fallbacks += "(Scapy could not dissect it)" in line
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
          f"{lines_made} lines made ({fallbacks} by the tool's own summary, where Scapy's "
          f"raised), {services.answered} DHCP, TFTP, RA, DHCPv6, PPPoE and 802.1X answers, "
          f"{capture.replay.switch_frames} read as a capture's switch frames too "
          f"({capture.errors()} internal errors), {failures} failures")
    return 1 if failures or capture.errors() else 0


if __name__ == "__main__":
    sys.exit(main())
