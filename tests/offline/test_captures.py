# SPDX-License-Identifier: GPL-2.0-only
"""Frames real guests sent, replayed offline, as lldpd's tests replay theirs.

tests/offline/captures/ holds what the tool recorded with -w beside qemu guests
(tests/vm/guest.py: Debian's 6.1.0-56 kernel, qemu 7.2, TCG; the tool run
with --until-verdict): an e1000 guest, which accepts the tagged replies, and
a virtio-net-pci guest in normal mode, which drops them, each over IPv4 and
IPv6. Every frame the guest sent (its requests, and the MLD and DAD chatter
the tool ignores) goes through the core again: the replies must be the very
bytes the tool sent then, and the verdict the same."""

import os

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from arp_icmp_vlan0 import DEFAULT_MAC, Framing, Replies, Scope, reply_to
from checks import exchange

CAPTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "captures")


def as_a_proxy(frame):
    """A reply recorded then, as the tool sends it now: its Neighbor
    Advertisements, for addresses it answers without owning them, have
    Override clear (RFC 4861 7.2.4); the recordings predate that."""
    packet = Ether(frame)
    if ICMPv6ND_NA not in packet:
        return frame
    packet[ICMPv6ND_NA].O = 0
    del packet[ICMPv6ND_NA].cksum
    return bytes(packet)


@pytest.mark.parametrize("capture, family, verdict", [
    ("e1000-ipv4.pcap", 4, "accepts"),
    ("virtio-net-pci-ipv4.pcap", 4, "drops"),
    ("e1000-ipv6.pcap", 6, "accepts"),
    ("virtio-net-pci-ipv6.pcap", 6, "drops"),
])
def test_a_recorded_guest_gets_the_same_replies_and_verdict(capture, family, verdict):
    packets = rdpcap(os.path.join(CAPTURES, capture))
    scope, framing = Scope(), Framing()
    verdicts = Replies(scope, framing)
    sent_then = [bytes(p) for p in packets if p.src == DEFAULT_MAC]
    sent_now, ignored = [], 0
    for packet in packets:
        if packet.src == DEFAULT_MAC:
            continue
        frame = bytes(packet)
        answer = reply_to(frame, scope, framing)
        if answer is None:
            ignored += 1
        else:
            sent_now.append(answer.reply)
        verdicts.observe(exchange("tap0", frame, answer, float(packet.time)))
    assert sent_now == [as_a_proxy(frame) for frame in sent_then] and sent_then
    assert ignored >= 1  # the guest's own IPv6 chatter is in there, unanswered
    [guest] = verdicts.guests.values()
    assert (guest.mac, guest.family, guest.verdict) == ("52:54:00:12:34:56", family, verdict)
