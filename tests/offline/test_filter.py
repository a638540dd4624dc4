# SPDX-License-Identifier: GPL-2.0-only
"""The shipped kernel filter: it is what libpcap compiles from the documented
expression, and it passes every frame the core answers."""

import struct
import subprocess

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6ND_RS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from scapy.layers.inet import ICMP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.utils import mac2str

from arp_icmp_vlan0 import (DHCP6_FILTER, DHCP6_FILTER_EXPRESSION, EAPOL_FILTER,
                            EAPOL_FILTER_EXPRESSION, PPPOE_FILTER, PPPOE_FILTER_EXPRESSION)
from arp_icmp_vlan0 import (DEFAULT_MAC, DHCP_FILTER, DHCP_FILTER_EXPRESSION, PROBE_FILTER,
                            PROBE_FILTER_EXPRESSION, REQUEST_FILTER, SOLICITATION_FILTER,
                            SOLICITATION_FILTER_EXPRESSION, TFTP_FILTER, TFTP_FILTER_EXPRESSION,
                            REQUEST_FILTER_EXPRESSION, Framing, Scope, kernel_filter, probe_filter,
                            reply_to)
from conftest import need_root_and
from frames import VALID_REQUESTS, arp_request, echo_request, wire

PACKET_HOST, PACKET_OUTGOING = 0, 4
SKF_AD_PKTTYPE = -0x1000 + 4


def run_classic_bpf(program, frame, pkttype=PACKET_HOST):
    """Just enough of the kernel's classic BPF interpreter for the opcodes
    libpcap emits here; returns the snap length (0 = drop)."""
    a = x = pc = 0
    load = {0x00: ("!I", 4), 0x08: ("!H", 2), 0x10: ("!B", 1)}  # W, H, B
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        cls, size, mode = code & 0x07, code & 0x18, code & 0xE0
        if cls == 0x00:                                     # LD
            signed = k - (1 << 32) if k >= 1 << 31 else k   # an offset is signed
            offset = signed + (x if mode == 0x40 else 0)    # ABS or IND
            if offset == SKF_AD_PKTTYPE:
                a = pkttype
                continue
            fmt, width = load[size]
            if offset < 0 or offset + width > len(frame):
                return 0                                    # out of bounds: drop
            a = struct.unpack_from(fmt, frame, offset)[0]
        elif code == 0xB1:                                  # LDX B MSH
            if k >= len(frame):
                return 0
            x = 4 * (frame[k] & 0x0F)
        elif cls == 0x05:                                   # JMP
            op = code & 0xF0
            taken = {0x10: a == k, 0x20: a > k, 0x30: a >= k, 0x40: a & k}[op]
            pc += jt if taken else jf
        elif cls == 0x06:                                   # RET K
            return k
        else:
            raise NotImplementedError(f"BPF opcode {code:#x}")


def passes(frame, pkttype=PACKET_HOST, program=REQUEST_FILTER):
    """As the kernel runs it: an 802.1Q tag is already moved to metadata."""
    if frame.haslayer(Dot1Q):
        untagged = frame.copy()
        untagged[Ether].type = frame[Dot1Q].type
        untagged[Ether].remove_payload()
        untagged = untagged / frame[Dot1Q].payload
        frame = untagged
    return run_classic_bpf(program, bytes(frame), pkttype) > 0


def libpcap(expression):
    """What libpcap compiles from `expression`. Compiling for a live
    interface is what makes "inbound" available; nothing is sent, and lo
    exists in every namespace."""
    need_root_and("tcpdump")
    result = subprocess.run(["tcpdump", "-i", "lo", "-ddd", expression],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.split("\n")
    return tuple(tuple(map(int, line.split())) for line in lines[1:int(lines[0]) + 1])


def test_filter_is_what_libpcap_compiles_from_the_expression():
    assert libpcap(REQUEST_FILTER_EXPRESSION) == REQUEST_FILTER
    assert libpcap(PROBE_FILTER_EXPRESSION) == PROBE_FILTER
    for expression, program in ((DHCP_FILTER_EXPRESSION, DHCP_FILTER),
                                (SOLICITATION_FILTER_EXPRESSION, SOLICITATION_FILTER),
                                (TFTP_FILTER_EXPRESSION, TFTP_FILTER),
                                (DHCP6_FILTER_EXPRESSION, DHCP6_FILTER),
                                (PPPOE_FILTER_EXPRESSION, PPPOE_FILTER),
                                (EAPOL_FILTER_EXPRESSION, EAPOL_FILTER)):
        assert libpcap(expression) == program, expression


@pytest.mark.parametrize("mac", ["52:54:00:12:34:56", "02:00:00:00:00:01", "0a:ff:ff:ff:ff:fe"])
def test_the_probe_filter_for_another_mac_is_libpcaps_for_it(mac):
    program = kernel_filter((REQUEST_FILTER, probe_filter(mac2str(mac))))
    assert program[:len(REQUEST_FILTER) - 1] == REQUEST_FILTER[:-1]
    assert program[len(REQUEST_FILTER) - 1:] == libpcap(
        PROBE_FILTER_EXPRESSION.replace(DEFAULT_MAC, mac))
    assert kernel_filter((REQUEST_FILTER,)) == REQUEST_FILTER


GUEST = "52:54:00:12:34:56"
PROBE_ANSWERS = [
    Ether(src=GUEST, dst=DEFAULT_MAC) / ARP(op=2, hwsrc=GUEST, psrc="198.51.100.1",
                                            hwdst=DEFAULT_MAC, pdst="198.51.100.2"),
    Ether(src=GUEST, dst=DEFAULT_MAC) / IP(src="198.51.100.1", dst="198.51.100.2") / ICMP(type=0),
    Ether(src=GUEST, dst=DEFAULT_MAC) / IPv6(src="2001:db8::1", dst="fe80::2") / ICMPv6EchoReply(),
    Ether(src=GUEST, dst=DEFAULT_MAC) / IPv6(src="2001:db8::1", dst="fe80::2", hlim=255) /
    ICMPv6ND_NA(tgt="2001:db8::1") / ICMPv6NDOptDstLLAddr(lladdr=GUEST),
    Ether(src=GUEST, dst="33:33:00:00:00:01") / IPv6(src="2001:db8::1", dst="ff02::1", hlim=255) /
    ICMPv6ND_NA(tgt="2001:db8::1") / ICMPv6NDOptDstLLAddr(lladdr=GUEST),
]


@pytest.mark.parametrize("frame", PROBE_ANSWERS, ids=["arp-reply", "echo-reply", "echo6-reply",
                                                      "advert", "advert-to-all-nodes"])
def test_with_probe_its_answers_pass_too_and_only_inbound(frame):
    program = kernel_filter((REQUEST_FILTER, probe_filter(mac2str(DEFAULT_MAC))))
    assert passes(wire(frame), program=program)
    assert not passes(wire(frame), PACKET_OUTGOING, program=program)
    assert not passes(wire(frame))  # without --probe: dropped in the kernel
    for request in VALID_REQUESTS:  # and the requests pass as before
        assert passes(request, program=program)


@pytest.mark.parametrize("frame", PROBE_ANSWERS[:4], ids=["arp-reply", "echo-reply",
                                                          "echo6-reply", "advert"])
def test_probe_answers_to_another_mac_are_dropped(frame):
    program = kernel_filter((REQUEST_FILTER, probe_filter(mac2str(DEFAULT_MAC))))
    frame = frame.copy()
    frame.dst = "02:00:00:00:00:99"
    assert not passes(wire(frame), program=program)


@pytest.mark.parametrize("frame", VALID_REQUESTS + [
    echo_request(frag=185),  # fragments of ICMP are reassembled in Python
    echo_request(flags="MF"),
    wire(Ether(src="52:54:00:12:34:56", dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=0) /
         ARP(op=1, psrc="198.51.100.1", pdst="198.51.100.2")),
])
def test_requests_pass_incoming_but_not_outgoing(frame):
    assert passes(frame)
    assert not passes(frame, PACKET_OUTGOING)


PEER = Ether(src="52:54:00:12:34:56", dst=DEFAULT_MAC)


@pytest.mark.parametrize("frame", [
    pytest.param(arp_request(op=2), id="arp-reply"),
    pytest.param(wire(reply_to(bytes(echo_request()), Scope(), Framing()).reply), id="echo-reply"),
    pytest.param(wire(PEER / IP(dst="198.51.100.2", proto=17, frag=185) / Raw(b"u" * 40)),
                 id="udp-fragment"),
    pytest.param(wire(bytes(arp_request())[:20]), id="truncated-arp"),
    pytest.param(wire(PEER / IP(dst="198.51.100.2") / UDP()), id="udp"),
    pytest.param(wire(PEER / IP(dst="198.51.100.2") / TCP(flags="S")), id="tcp-syn"),
    pytest.param(wire(PEER / IPv6(dst="2001:db8::2") / ICMPv6EchoReply()), id="echo6-reply"),
    pytest.param(wire(PEER / IPv6(dst="2001:db8::2") / UDP()), id="udp6"),
    pytest.param(wire(PEER / IPv6(dst="ff02::2") / ICMPv6ND_RS()), id="router-solicitation"),
])
def test_non_requests_are_dropped_in_the_kernel(frame):
    assert not passes(frame)
