# SPDX-License-Identifier: GPL-2.0-only
"""Safety, offline: the guard against physical interfaces, on a faked sysfs
view (this kernel has no netdevsim), and the property tests of the core and
of reassembly: random bytes, truncations, bit flips, IPv6-shaped frames and
fragment soup."""

import itertools
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import checksum

import arp_icmp_vlan0
from arp_icmp_vlan0 import (DEFAULT_MAC, Framing, Reassembler, Scope, main, physical_device,
                            reply_to)
from checks import check_any_frame
from frames import (MAC, PEER_MAC, SEEDS, arp_request, echo6, echo_request, ipv4_fragments,
                    ipv6_fragments, reassemble, solicitation, truncated_and_flipped)

SCOPE, FRAMING = Scope(), Framing()


@pytest.fixture
def fake_sysfs(tmp_path, monkeypatch):
    """A sysfs view with: tap0, veth0 (virtual); eth9 (PCI); br-lan (a bridge
    with eth9 as a port); br-vms (a bridge of tap0 and veth0); eth9.100 (a
    VLAN on eth9); lo (faked PCI, so that a real interface looks physical)."""
    devices, net = tmp_path / "devices", tmp_path / "class" / "net"
    net.mkdir(parents=True)

    def device(name, where):
        path = devices / where / "net" / name
        path.mkdir(parents=True)
        (path / "flags").write_text("0x1003\n")
        (net / name).symlink_to(path)
        return path

    device("tap0", "virtual")
    device("veth0", "virtual")
    device("eth9", "pci0000:00/0000:00:03.0")
    device("lo", "pci0000:00/0000:00:04.0")
    for bridge, ports in (("br-lan", ["eth9", "tap0"]), ("br-vms", ["tap0", "veth0"])):
        (device(bridge, "virtual") / "brif").mkdir()
        for port in ports:
            (devices / "virtual" / "net" / bridge / "brif" / port).symlink_to(net / port)
    (device("eth9.100", "virtual") / "lower_eth9").symlink_to(net / "eth9")
    monkeypatch.setattr(arp_icmp_vlan0, "SYSFS_NET", str(net))
    return net


@pytest.mark.parametrize("name, physical", [
    ("tap0", None), ("veth0", None), ("br-vms", None),
    ("eth9", "eth9"), ("br-lan", "eth9"), ("eth9.100", "eth9")])
def test_physical_device_is_found_through_bridges_and_vlans(fake_sysfs, name, physical):
    assert physical_device(name) == physical


def test_a_physical_interface_is_refused_with_one_line(fake_sysfs, capsys):
    # "lo" exists, and looks physical here. Were the guard broken, the tool
    # would serve lo for 0.1 s as root, where nothing asks it anything.
    assert main(["--timeout", "0.1", "--keep-root", "lo"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "lo is a physical interface" in error and "--allow-physical" in error


def test_allow_physical_without_ip_warns_loudly(fake_sysfs, capsys):
    settings = arp_icmp_vlan0.Settings.from_args(
        arp_icmp_vlan0.parse_args(["--allow-physical", "br-lan"]))
    assert arp_icmp_vlan0._check_virtual("br-lan", settings) is None
    assert "WARNING: br-lan is a physical interface (through eth9)" in capsys.readouterr().err
    settings = arp_icmp_vlan0.Settings.from_args(
        arp_icmp_vlan0.parse_args(["--allow-physical", "--ip", "198.51.100.2", "eth9"]))
    assert arp_icmp_vlan0._check_virtual("eth9", settings) is None
    assert capsys.readouterr().err == ""


class FakeLink:
    def __init__(self, name, index):
        self.name, self.index = name, index


def test_a_pattern_never_serves_a_physical_interface_and_says_so_once(fake_sysfs, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(arp_icmp_vlan0.socket, "if_nameindex",
                        lambda: [(1, "tap0"), (2, "eth9"), (3, "br-lan"), (4, "veth0")])
    for allow_physical, expected in ((False, ["tap0", "veth0"]),
                                     (True, ["br-lan", "eth9", "tap0", "veth0"])):
        interfaces = arp_icmp_vlan0.Interfaces(arp_icmp_vlan0.Settings(
            ("*",), Scope(), Framing(), allow_physical=allow_physical))
        served = []

        def serve(name, index, quiet=False, interfaces=interfaces, served=served):  # noqa: ARG001
            served.append(name)
            interfaces.links[name] = FakeLink(name, index)
        interfaces.serve = serve
        try:
            for _ in range(2):  # a second look changes nothing, says nothing
                interfaces.reconcile()
                while interfaces.serve_pending(turn=60):
                    pass
        finally:
            interfaces.links.clear()
            interfaces.close()
        assert served == expected
        lines = capsys.readouterr().err.splitlines()
        refused = [] if allow_physical else ["br-lan", "eth9"]
        assert lines == [f"arp_icmp_vlan0: {name}: a physical interface; not served "
                         "(--allow-physical overrides)" for name in refused]


def test_the_real_sysfs_view_of_this_machine():
    # Whatever the machine, loopback is virtual.
    assert physical_device("lo") is None


# ---------------------------------------------------------------- properties
#
# Whatever the frame, checks.check_any_frame: the core raises nothing, the
# plain echo path agrees with it, and a reply goes only to a well-formed
# request. Examples per test: ARP_ICMP_VLAN0_FUZZ_EXAMPLES (conftest.py).

@given(st.binary(max_size=1600))
def test_random_bytes_never_raise_nor_get_a_reply_unless_well_formed(frame):
    check_any_frame(frame)


@given(st.sampled_from(SEEDS), st.integers(0, 200), st.lists(st.integers(0, 10_000),
                                                             max_size=4))
def test_truncated_and_bit_flipped_requests(seed, cut, flips):
    check_any_frame(truncated_and_flipped(seed, cut, flips))


@st.composite
def ipv6_shaped(draw):
    """Random bytes after an IPv6 Ethernet header, past 40 bytes made to
    look like IPv6: version 6, a next header of Hop-by-Hop, ICMPv6 or
    Destination Options, a hop limit and ICMPv6 type the core looks for
    (or any), a payload length that fits (or any)."""
    body = bytearray(draw(st.binary(max_size=120)))
    if len(body) > 40:
        body[0] = 0x60
        body[6] = draw(st.sampled_from([0, 58, 60]))
        body[7] = draw(st.sampled_from([255, 64, body[7]]))
        body[40] = draw(st.sampled_from([128, 135, 136, body[40]]))
        struct.pack_into("!H", body, 4, draw(st.one_of(st.just(len(body) - 40),
                                                       st.integers(0, 0xFFFF))))
    return bytes(Ether(src=PEER_MAC, dst=MAC, type=0x86DD)) + bytes(body)


@given(ipv6_shaped())
def test_random_ipv6_shaped_frames(frame):
    check_any_frame(frame)


def claimed_length(seed):
    """The bytes of `seed` its headers claim: ARP's 28, or to the IPv4 total
    length or the IPv6 payload length. Past them: Ethernet padding."""
    packet = Ether(seed)
    if packet.haslayer(ARP):
        return 14 + 28
    if packet.haslayer(IP):
        return 14 + packet[IP].len
    return 14 + 40 + packet[IPv6].plen


# Lengths past a seed's own at which it is tried followed by noise, beyond
# its first 16: the edges of the minimum frame, of the IPv6 minimum MTU, of
# the MTU and of the largest frames with one or two tags.
EDGES = {59, 60, 61, 64, 1279, 1280, 1281, 1499, 1500, 1501, 1513, 1514, 1515, 1517, 1518,
         1519, 1521, 1522, 1523, 1599, 1600}


def test_every_length_from_0_to_1600():
    """No frame length raises, and only a well-formed request gets a reply
    (check_any_frame): random bytes of every length from 0 to 1600; every
    truncation of every seed, answered from the length its headers claim on
    and never shorter; each seed followed by noise, to 1600 bytes."""
    rng = random.Random(1600)
    for length in range(1601):
        check_any_frame(rng.randbytes(length))
    for seed in SEEDS:
        whole = claimed_length(seed)
        for length in range(len(seed) + 1):
            answered = check_any_frame(seed[:length]) is not None
            assert answered == (length >= whole), (seed.hex(), length)
        for length in sorted(set(range(len(seed) + 1, len(seed) + 17)) | EDGES):
            if length > len(seed):
                check_any_frame(seed + rng.randbytes(length - len(seed)))


# Twelve IPv4 datagrams and four IPv6 ones, three fragments each: more
# than the reassembler below may hold at once.
DATAGRAMS = ([ipv4_fragments(ident=ident) for ident in range(12)]
             + [ipv6_fragments(ident=ident) for ident in range(4)])
# A bit to flip: (which of the fragments sent, byte after the Ethernet
# header, bit); half of them in the first 48 bytes, the IP and fragment
# headers.
FLIP = st.tuples(st.integers(0, 2), st.one_of(st.integers(0, 47), st.integers(0, 1600)),
                 st.integers(0, 7))
ORDERS = list(itertools.permutations(range(3)))
# A step: a datagram's fragments, some or all, in some order, bits flipped,
# after a wait (past the 10 s timeout too).
STEP = st.tuples(st.sampled_from(DATAGRAMS), st.sampled_from(ORDERS), st.integers(1, 3),
                 st.lists(FLIP, max_size=2), st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0, 11.0]))


@given(st.lists(STEP, max_size=30))
def test_fragment_soup_stays_within_bounds(steps):
    """Fragment soup: whatever the fragments, their order and their bits,
    the reassembler holds at most its bounds, and what it puts together
    gets a reply only if well formed."""
    reassembler = Reassembler(max_datagrams=4, max_bytes=8000)
    now = 0.0
    for fragments, order, count, flips, wait in steps:
        sent = [bytearray(fragments[n]) for n in order[:count]]
        for which, at, bit in flips:
            frame = sent[which % count]
            frame[14 + at % (len(frame) - 14)] ^= 1 << bit
        now += wait
        for frame in sent:
            result = reassemble(reassembler, bytes(frame), now)
            if result is not None:
                check_any_frame(result)
            assert reassembler.held <= 8000 and len(reassembler.pending) <= 4


def test_no_reply_to_our_own_frames_whatever_the_kernel_filter():
    for request in (arp_request(), echo_request(), solicitation(), echo6()):
        own = bytearray(bytes(request))
        own[6:12] = SCOPE.mac_bytes
        assert reply_to(bytes(own), SCOPE, FRAMING) is None


# -- lines that never cost a reply

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def scapy_echo(n):
    return bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) / IP(src="198.51.100.1", dst="198.51.100.2")
                 / ICMP(seq=n))


ECHO = scapy_echo(0)


def echo_frame(n):
    """scapy_echo(n)'s bytes, made by patching ECHO's sequence number and
    ICMP checksum: building 5,000 frames with Scapy takes 3 s."""
    icmp = bytearray(ECHO[34:])
    icmp[2:4], icmp[6:8] = b"\x00\x00", n.to_bytes(2, "big")
    icmp[2:4] = checksum(bytes(icmp)).to_bytes(2, "big")
    return ECHO[:34] + bytes(icmp)


@pytest.mark.parametrize("n", [0, 1, 2, 4999, 65535])
def test_echo_frame_is_what_scapy_builds(n):
    assert echo_frame(n) == scapy_echo(n)


def exchange(n, answered=True):
    from arp_icmp_vlan0 import Answer, Exchange
    frame = echo_frame(n)
    link = type("Link", (), {"name": "tap0"})()
    answer = Answer("icmp echo", None, frame) if answered else None
    return Exchange(link, frame, 1e9 + n, frame, 0x0800, answer, (frame,), 1e9 + n)


def test_lines_wait_while_frames_wait_and_a_flood_is_said_in_one_line():
    from arp_icmp_vlan0 import LINES_HELD, Lines
    printed, clock = [], FakeClock()
    lines = Lines(Framing(), printed.append, clock)
    for n in range(5000):  # a flood: the sockets are never idle
        lines.exchange(exchange(n))
        lines.write(idle=False)
    lines.verdict("tap0: guest ... accepts ARP replies")
    assert printed == []  # nothing formatted while requests waited
    clock.now += 0.4
    lines.write(idle=True)  # the queue emptied: one line, then the loop looks again
    assert len(printed) == 1
    while lines.held:
        lines.write(idle=True)
    assert len(printed) == LINES_HELD + 2
    assert all(" ==> " in line for line in printed[:LINES_HELD])
    assert printed[LINES_HELD] == "tap0: guest ... accepts ARP replies"
    assert printed[-1] == ("... 4,992 more replies in 0.4 s (lines held back so that "
                           "answering keeps up)")


def test_held_lines_are_printed_at_least_every_second_even_when_never_idle():
    from arp_icmp_vlan0 import Lines
    printed, clock = [], FakeClock()
    lines = Lines(Framing(), printed.append, clock)
    lines.exchange(exchange(1))
    lines.exchange(exchange(2, answered=False))
    clock.now += 0.5
    lines.write(idle=False)
    assert printed == [] and lines.due() == pytest.approx(0.5)
    clock.now += 0.5
    lines.write(idle=False)
    assert len(printed) == 2 and " ignored: " in printed[1]
    assert lines.due() == 3600  # nothing held


def test_a_frame_scapy_cannot_summarise_gets_a_line_of_the_tools_own(monkeypatch):
    from arp_icmp_vlan0 import frame_summary
    frame = bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) / IP() / ICMP())

    def bad_format(self, *args, **kwargs):
        raise ValueError("Bad format string")  # what Scapy 2.5.0 raised for a DNSSL option
    monkeypatch.setattr(Ether, "summary", bad_format)
    assert frame_summary(frame) == (f"{PEER_MAC} > {DEFAULT_MAC} ethertype 0x0800, "
                                    f"{len(frame)} bytes (Scapy could not dissect it)")
    assert "bytes (Scapy could not dissect it)" in frame_summary(b"\x00" * 13)


def test_error_lines_are_coalesced(capsys):
    from arp_icmp_vlan0 import Complaints
    clock = FakeClock()
    complaints = Complaints(clock)
    for _ in range(1000):
        complaints.log("send tap0", "error: sending on tap0: No buffer space available")
    clock.now += 1.0
    complaints.log("send tap0", "error: sending on tap0: No buffer space available")
    assert capsys.readouterr().err.splitlines() == [
        "arp_icmp_vlan0: error: sending on tap0: No buffer space available",
        "arp_icmp_vlan0: error: sending on tap0: No buffer space available (999 more like "
        "it not shown)"]
