# SPDX-License-Identifier: GPL-2.0-only
"""Safety, offline: the guard against physical interfaces, on a faked sysfs
view (this kernel has no netdevsim), and property tests of the core."""

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

import arp_icmp_vlan0
from arp_icmp_vlan0 import DEFAULT_MAC, Framing, Scope, main, physical_device, reply_to
from frames import (PEER_MAC, SEEDS, arp_request, assert_well_formed, echo6, echo_request,
                    solicitation)
from test_core import assert_plain_agrees

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
            interfaces.reconcile()
            interfaces.reconcile()  # a second look changes nothing, says nothing
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

def check(frame):
    answer = reply_to(frame, SCOPE, FRAMING)
    assert_plain_agrees(frame, SCOPE, FRAMING, answer)
    if answer is not None:
        assert_well_formed(frame, answer.kind)


EXAMPLES = int(os.environ.get("ARP_ICMP_VLAN0_FUZZ_EXAMPLES", "400"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=1600))
def test_random_bytes_never_raise_nor_get_a_reply_unless_well_formed(frame):
    check(frame)


@PROPERTY
@given(st.sampled_from(SEEDS), st.integers(0, 200), st.lists(st.integers(0, 10_000),
                                                             max_size=4))
def test_truncated_and_bit_flipped_requests(seed, cut, flips):
    frame = bytearray(seed[:max(0, len(seed) - cut)])
    for flip in flips:
        if frame:
            frame[flip % len(frame)] ^= 1 << (flip % 8)
    check(bytes(frame))


def test_every_length_from_0_to_1600():
    rng = random.Random(1600)
    for length in range(1601):
        check(rng.randbytes(length))
        for seed in SEEDS:  # the seed's start, then noise, at every length
            check((seed + rng.randbytes(length))[:length])


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


def exchange(n, answered=True):
    from arp_icmp_vlan0 import Answer, Exchange
    frame = bytes(Ether(src=PEER_MAC, dst=DEFAULT_MAC) / IP(src="198.51.100.1",
                                                              dst="198.51.100.2") / ICMP(seq=n))
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
        complaints.say("send tap0", "error: sending on tap0: No buffer space available")
    clock.now += 1.0
    complaints.say("send tap0", "error: sending on tap0: No buffer space available")
    assert capsys.readouterr().err.splitlines() == [
        "arp_icmp_vlan0: error: sending on tap0: No buffer space available",
        "arp_icmp_vlan0: error: sending on tap0: No buffer space available (999 more like "
        "it not shown)"]
