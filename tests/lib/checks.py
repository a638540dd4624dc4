# SPDX-License-Identifier: GPL-2.0-only
"""The checks of the core's replies that several offline test modules make:
the core's answer (with the plain echo path agreeing), its tag read off the
wire bytes, an echo's data, and the oracle's verdict on any frame; and a
service driven as the loop drives it (exchange, observed). Built on
tests/lib/frames.py; no pytest, no hypothesis."""

import struct
from types import SimpleNamespace

from scapy.layers.inet import IP
from scapy.layers.l2 import Dot1Q

from arp_icmp_vlan0 import (Exchange, Framing, Scope, ethertype_and_offset, plain_echo_replier,
                            reply_to)
from frames import MAC, assert_well_formed, wire

FRAMING = Framing()


def core_reply(frame, framing=FRAMING, targets=(), **scope):
    """The core's answer to `frame`'s bytes, with the tool's defaults unless
    told otherwise; the plain echo path, where it answers, agrees."""
    scope = Scope(mac=MAC, targets=targets, **scope)
    result = reply_to(bytes(frame), scope, framing)
    assert_plain_agrees(bytes(frame), scope, framing, result)
    return result


def assert_plain_agrees(frame, scope, framing, result):
    """plain_echo_replier's reply is None or reply_to's, byte for byte."""
    plain = plain_echo_replier(scope, framing)
    reply = plain and plain(frame)
    assert reply is None or (result is not None and reply == result.reply), frame.hex()
    return reply


def answer(frame, framing=FRAMING, targets=(), **scope):
    """(kind, reply dissected by Scapy), asserting there is a reply."""
    result = core_reply(frame, framing, targets, **scope)
    assert result is not None, f"no reply to {frame!r}"
    assert isinstance(result.reply, bytes)
    return result.kind, wire(result.reply)


def check_any_frame(frame):
    """Whatever the bytes: the core raises nothing, the plain echo path
    agrees, and a reply goes only to a well-formed request of its kind
    (Scapy's independent view, frames.assert_well_formed). The result."""
    result = core_reply(frame)
    if result is not None:
        assert_well_formed(frame, result.kind)
    return result


def echo_data(reply):
    """An echo message's data, to the IP total length: Ethernet padding is not
    data (Scapy keeps it in the payload as a Padding layer)."""
    ip = reply[IP]
    data = bytes(ip)[ip.ihl * 4 + 8:ip.len]
    assert not any(bytes(ip)[ip.len:]), "padding must be zeros"
    return data


def assert_one_tag(reply, framing, inner_type):
    """Read off the wire bytes: TPID, then TCI = PCP(3) DEI(1) VID(12)."""
    raw = bytes(reply)
    tpid, tci, inner = struct.unpack_from("!HHH", raw, 12)
    assert tpid == 0x8100
    assert (tci >> 13, tci >> 12 & 1, tci & 0xFFF) == (framing.prio, 0, framing.vlans[0])
    assert inner == inner_type, "more than one tag" if inner == 0x8100 else inner
    assert reply[Dot1Q].vlan == framing.vlans[0]


def exchange(interface, frame, answer, now, by=None):
    """The Exchange the loop makes of `frame`, received on `interface` at
    `now`, with `answer` (None: ignored) by the service `by`, its reply sent
    at once."""
    frames = () if answer is None or answer.reply is None else (answer.reply,)
    return Exchange(SimpleNamespace(name=interface), frame, now, frame,
                    ethertype_and_offset(frame)[0], answer, frames, now, by)


def observed(service, interface, frame, answer, now, by=None):
    """What `service` makes of that exchange (Service.observe), `answer`
    being its own unless `by` says whose: the one record whose verdict it
    formed or changed, or None."""
    by = service if by is None and answer is not None else by
    changed = list(service.observe(exchange(interface, frame, answer, now, by)))
    assert len(changed) <= 1, changed
    return changed[0] if changed else None


def feed(service, interface, frame, now):
    """`frame` offered to `service` (Service.answer) and the exchange shown
    to it, as the loop does: (its Answer or None, the records whose verdict
    formed or changed)."""
    ethertype, offset = ethertype_and_offset(frame)
    answer = service.answer(interface, frame, ethertype, offset, now)
    return answer, list(service.observe(exchange(interface, frame, answer, now, service)))
