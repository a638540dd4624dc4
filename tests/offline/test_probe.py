# SPDX-License-Identifier: GPL-2.0-only
"""--probe, offline: the probes' fields after a bytes() round trip, the
answers the parser takes and refuses, and the probe's state machine driven
with timed frames (answered, only the control answered, nothing answered,
a MAC change mid-probe), as the loop drives it."""

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.utils import mac2str

from arp_icmp_vlan0 import (ASKED, CONTROL_SEQ, EXIT_DROPS, EXIT_NO_VERDICT, EXIT_OK,
                            PROBE_ANSWERED, PROBE_GRACE, PROBE_INTERVAL, PROBE_RESTARTS,
                            PROBES_LEARNT, PROBES_SENT, ArpRequest, Events, Framing, Prober,
                            Replies, Scope, all_settled, overall_status, parse_args,
                            parse_probe_answer, probe_echo, probe_refusal, probe_resolve,
                            tool_link_local)
from checks import feed
from frames import MAC, PEER6, PEER_IP, PEER_MAC, TOOL_IP

TOOL = mac2str(MAC)
OTHER_MAC = "52:54:00:ab:cd:ef"
IDENT = 0x4242
LINK_LOCAL = tool_link_local(MAC)
V4, V6 = ipaddress.ip_address(PEER_IP).packed, ipaddress.ip_address(PEER6).packed
OWN = ipaddress.ip_address(TOOL_IP).packed
SCOPE_OWN = Scope(mac=MAC, targets=(ipaddress.ip_network("198.51.100.0/24"),
                                    ipaddress.ip_network("2001:db8::/64")), own=(OWN,))


# -- the probes, as built

def assert_checksums_right(frame):
    """Every checksum in `frame` is what Scapy computes afresh."""
    fresh = frame.copy()
    for layer in fresh.layers():
        for name in ("chksum", "cksum"):
            if name in fresh[layer].fields:
                delattr(fresh[layer], name)
    assert bytes(Ether(bytes(fresh))) == bytes(frame)


def test_tagged_arp_probe_from_the_tools_address():
    frame = Ether(probe_resolve(TOOL, OWN, V4, Framing()))
    assert (frame.dst, frame.src, frame.type) == ("ff:ff:ff:ff:ff:ff", MAC, 0x8100)
    assert (frame[Dot1Q].vlan, frame[Dot1Q].prio, frame[Dot1Q].type) == (0, 0, 0x0806)
    arp = frame[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        1, MAC, TOOL_IP, "00:00:00:00:00:00", PEER_IP)
    assert len(bytes(frame)) == 60  # padded, tag counted


def test_control_arp_probe_is_untagged_and_from_0_0_0_0():
    frame = Ether(probe_resolve(TOOL, bytes(4), V4, Framing(vlans=())))
    assert frame.type == 0x0806 and not frame.haslayer(Dot1Q)
    assert (frame[ARP].psrc, frame[ARP].pdst) == ("0.0.0.0", PEER_IP)


def test_probes_carry_the_replies_tags_qinq_and_all():
    framing = Framing(vlans=(100, 0), prio=5, dei=True, tpid=0x88A8)
    frame = Ether(probe_resolve(TOOL, OWN, V4, framing))
    outer, inner = frame[Dot1AD], frame[Dot1Q]
    assert (outer.vlan, outer.prio, inner.vlan, inner.prio, inner.type) == (100, 5, 0, 5, 0x0806)
    assert bytes(frame)[12:20] == framing.tags


def test_solicitation_probe_from_the_link_local_address_to_the_group():
    source = ipaddress.ip_address(LINK_LOCAL).packed
    frame = Ether(probe_resolve(TOOL, source, V6, Framing()))
    assert frame.dst == "33:33:ff:00:00:01" and frame[Dot1Q].type == 0x86DD
    ip6 = frame[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == (LINK_LOCAL, "ff02::1:ff00:1", 255)
    assert frame[ICMPv6ND_NS].tgt == PEER6
    assert frame[ICMPv6ND_NS].code == 0 and frame[ICMPv6NDOptSrcLLAddr].lladdr == MAC
    assert_checksums_right(frame)


def test_dad_form_control_has_no_source_and_no_option():
    frame = Ether(probe_resolve(TOOL, bytes(16), V6, Framing(vlans=())))
    assert frame[IPv6].src == "::" and not frame.haslayer(ICMPv6NDOptSrcLLAddr)
    assert frame[ICMPv6ND_NS].tgt == PEER6


@pytest.mark.parametrize("family", [4, 6])
def test_echo_probe_unicast_to_the_guest(family):
    source, target = (OWN, V4) if family == 4 else (
        ipaddress.ip_address(LINK_LOCAL).packed, V6)
    frame = Ether(probe_echo(TOOL, mac2str(PEER_MAC), source, target, IDENT, 3, Framing()))
    assert (frame.dst, frame.src, frame[Dot1Q].vlan) == (PEER_MAC, MAC, 0)
    if family == 4:
        echo = frame[ICMP]
        assert (frame[IP].src, frame[IP].dst, frame[IP].ttl) == (TOOL_IP, PEER_IP, 64)
        assert (echo.type, echo.id, echo.seq) == (8, IDENT, 3)
        assert bytes(echo.payload) == b"arp_icmp_vlan0 probe"
    else:
        echo = frame[ICMPv6EchoRequest]
        assert (frame[IPv6].src, frame[IPv6].dst) == (LINK_LOCAL, PEER6)
        assert (echo.id, echo.seq, echo.data) == (IDENT, 3, b"arp_icmp_vlan0 probe")
    assert_checksums_right(frame)


# -- the answers

def arp_answer(mac=PEER_MAC, to=TOOL_IP, dst=MAC, op=2):
    return bytes(Ether(src=mac, dst=dst) / ARP(op=op, hwsrc=mac, psrc=PEER_IP, hwdst=MAC,
                                                pdst=to))


def echo_answer(mac=PEER_MAC, seq=1, ident=IDENT, to=TOOL_IP):
    return bytes(Ether(src=mac, dst=MAC) / IP(src=PEER_IP, dst=to) /
                 ICMP(type=0, id=ident, seq=seq) / b"arp_icmp_vlan0 probe")


def advert(mac=PEER_MAC, dst=LINK_LOCAL, ether_dst=MAC, hlim=255, option=True):
    frame = Ether(src=mac, dst=ether_dst) / IPv6(src=PEER6, dst=dst, hlim=hlim) / \
        ICMPv6ND_NA(tgt=PEER6, S=dst != "ff02::1", O=1)
    if option:
        frame /= ICMPv6NDOptDstLLAddr(lladdr=mac)
    return bytes(frame)


def echo6_answer(mac=PEER_MAC, seq=1):
    return bytes(Ether(src=mac, dst=MAC) / IPv6(src=PEER6, dst=LINK_LOCAL) /
                 ICMPv6EchoReply(id=IDENT, seq=seq, data=b"arp_icmp_vlan0 probe"))


def test_answers_parsed():
    assert parse_probe_answer(arp_answer(), TOOL, IDENT) == (
        "resolve", V4, mac2str(PEER_MAC), OWN, 0)
    assert parse_probe_answer(echo_answer(seq=CONTROL_SEQ), TOOL, IDENT) == (
        "echo", V4, mac2str(PEER_MAC), OWN, CONTROL_SEQ)
    link_local = ipaddress.ip_address(LINK_LOCAL).packed
    assert parse_probe_answer(advert(), TOOL, IDENT) == (
        "resolve", V6, mac2str(PEER_MAC), link_local, 0)
    assert parse_probe_answer(advert(dst="ff02::1", ether_dst="33:33:00:00:00:01"),
                              TOOL, IDENT).to == ipaddress.ip_address("ff02::1").packed
    assert parse_probe_answer(echo6_answer(seq=2), TOOL, IDENT) == (
        "echo", V6, mac2str(PEER_MAC), link_local, 2)


def test_the_advertisements_option_names_the_station():
    frame = Ether(src=OTHER_MAC, dst=MAC) / IPv6(src=PEER6, dst=LINK_LOCAL, hlim=255) / \
        ICMPv6ND_NA(tgt=PEER6) / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
    assert parse_probe_answer(bytes(frame), TOOL, IDENT).mac == mac2str(PEER_MAC)
    assert parse_probe_answer(advert(option=False), TOOL, IDENT).mac == mac2str(PEER_MAC)


@pytest.mark.parametrize("frame", [
    pytest.param(arp_answer(op=1), id="arp-request"),
    pytest.param(arp_answer(dst="02:00:00:00:00:99"), id="arp-reply-to-another-mac"),
    pytest.param(arp_answer(mac="01:00:5e:00:00:01"), id="arp-reply-from-a-group"),
    pytest.param(arp_answer(mac=MAC), id="our-own"),
    pytest.param(echo_answer(ident=IDENT + 1), id="someone-elses-ping"),
    pytest.param(echo_answer()[:-3], id="truncated-echo-reply"),
    pytest.param(advert(hlim=64), id="advert-not-hop-limit-255"),
    pytest.param(advert(ether_dst="02:00:00:00:00:99"), id="advert-to-another-mac"),
    pytest.param(bytes(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) / ICMP()),
                 id="echo-request"),
])
def test_what_answers_no_probe(frame):
    assert parse_probe_answer(frame, TOOL, IDENT) is None


# -- the state machine, driven as the loop drives it

class Run:
    """A Prober on interface tap0, with a clock and the frames it sent."""

    def __init__(self, addresses=(V4,), scope=SCOPE_OWN, framing=Framing()):
        events = Events()
        self.verdicts = Replies(scope, framing, events)
        self.prober = Prober(addresses, scope, framing, IDENT, events)
        self.told = []  # PROBE_ANSWERED, as the replies' judge hears it
        events.subscribe(PROBE_ANSWERED, lambda *args: self.told.append(args))
        self.sent, self.decided, self.now = [], [], 0.0

    def until(self, end):
        """Send whatever the prober has due, up to `end` seconds."""
        while True:
            frames, decided = self.prober.send_due(self.now, {"tap0"})
            self.sent += [(self.now, Ether(frame)) for _, frame, _ in frames]
            self.decided += decided
            due = self.now + self.prober.due(self.now)
            if due > end or not self.prober.pending:
                self.now = max(self.now, end)
                return
            self.now = due

    def answer(self, frame):
        """None if the prober does not take `frame`; else (the Probe it
        answers, whether that decided it, whether it told the replies' judge
        that a tagged probe was answered)."""
        told = len(self.told)
        taken, decided = feed(self.prober, "tap0", frame, self.now)
        if taken is None:
            return None
        self.decided += decided
        return (self.prober.probes[("tap0", taken.request.answer.address)], bool(decided),
                len(self.told) > told)

    def probe(self, address=V4):
        return self.prober.probes[("tap0", address)]

    def kinds(self):
        """What was sent when: (time, 'arp'/'ns'/'echo', tagged)."""
        return [(t, "arp" if f.haslayer(ARP) else "ns" if f.haslayer(ICMPv6ND_NS) else "echo",
                 f.haslayer(Dot1Q)) for t, f in self.sent]


def test_a_guest_that_answers_tagged_requests():
    run = Run()
    run.until(0.5)
    assert run.kinds() == [(0.0, "arp", True)]
    assert run.answer(arp_answer())[1:] == (False, True)  # tagged, the pings follow
    run.until(0.6)
    ping = run.sent[-1][1]
    assert (ping.dst, ping[ICMP].seq, ping.haslayer(Dot1Q)) == (PEER_MAC, 1, True)
    assert run.answer(echo_answer(seq=1))[1:] == (True, True)
    probe = run.probe()
    assert probe.verdict == "answers" and run.decided == [probe]
    assert probe.summary() == (
        f"tap0: guest {PEER_MAC} ({PEER_IP}) answers ARP requests and pings tagged vlan 0, p 0")
    assert overall_status([run.verdicts, run.prober]) == EXIT_OK
    assert all_settled([run.verdicts, run.prober])


def test_a_guest_that_answers_only_the_untagged_control():
    run = Run()
    run.until(4.9)
    tagged = [(0.0, "arp", True), (1.0, "arp", True), (2.0, "arp", True)]
    assert run.kinds() == tagged + [(2.0 + PROBE_GRACE, "arp", False)]
    control = run.sent[-1][1]
    assert control[ARP].psrc == "0.0.0.0"  # teaches the guest nothing
    # The kernel answers a request from 0.0.0.0 with target 0.0.0.0.
    assert run.answer(arp_answer(to="0.0.0.0"))[1:] == (True, False)
    probe = run.probe()
    assert probe.verdict == "drops" and probe.mac == mac2str(PEER_MAC)
    assert probe.summary() == (
        f"tap0: guest {PEER_MAC} ({PEER_IP}) does not answer ARP requests tagged vlan 0, p 0 "
        "but answers untagged ones: it drops frames tagged vlan 0, p 0")
    assert overall_status([run.verdicts, run.prober]) == EXIT_DROPS


def test_an_address_nobody_answers_at_is_no_verdict_never_a_drop():
    run = Run(addresses=(V4, V6))
    run.until(60)
    per_address = PROBES_SENT["resolve"] + PROBES_SENT["control"]
    assert len(run.sent) == 2 * per_address
    last = (PROBES_SENT["resolve"] - 1) * PROBE_INTERVAL + PROBE_GRACE + \
        (PROBES_SENT["control"] - 1) * PROBE_INTERVAL + PROBE_GRACE
    assert [p.verdict for p in run.decided] == ["no answer"] * 2
    assert run.now == 60 and max(t for t, _ in run.sent) < last
    assert overall_status([run.verdicts, run.prober]) == EXIT_NO_VERDICT
    assert run.probe().summary() == (
        f"tap0: nobody answered at {PEER_IP}: 3 ARP requests tagged vlan 0, p 0 and 2 "
        "untagged went unanswered (down, filtered, or nobody there): no verdict")
    assert "Neighbor Solicitations" in run.probe(V6).summary()


def test_a_guest_that_answers_tagged_arp_but_only_untagged_pings_drops_them():
    run = Run()
    run.until(0)
    run.answer(arp_answer())
    run.until(20)
    kinds = run.kinds()
    assert [k for k in kinds if k[1] == "echo"] == [
        (0.0, "echo", True), (1.0, "echo", True), (2.0, "echo", True),
        (2.0 + PROBE_GRACE, "echo", False), (3.0 + PROBE_GRACE, "echo", False)]
    assert run.probe().verdict == "answers"  # no ping answered at all: ICMP filtered
    run = Run()
    run.until(0)
    run.answer(arp_answer())
    run.until(2.0 + PROBE_GRACE)
    assert run.sent[-1][1][ICMP].seq == CONTROL_SEQ
    run.answer(echo_answer(seq=CONTROL_SEQ))
    assert run.probe().verdict == "drops"
    assert "answers ARP requests tagged vlan 0, p 0 but not pings" in run.probe().summary()


def test_ipv6_probe_tagged_answer_then_dad_form_control():
    run = Run(addresses=(V6,))
    run.until(0)
    run.answer(advert())
    run.until(0.1)
    run.answer(echo6_answer())
    assert run.probe(V6).verdict == "answers"
    run = Run(addresses=(V6,))
    assert run.answer(advert(dst="ff02::1", ether_dst="33:33:00:00:00:01")) is None  # unsolicited
    run.until(2.0 + PROBE_GRACE)
    assert run.sent[-1][1][IPv6].src == "::"
    run.answer(advert(dst="ff02::1", ether_dst="33:33:00:00:00:01"))
    assert run.probe(V6).verdict == "drops"


def test_without_an_ipv4_address_the_probe_resolves_and_says_why_it_cannot_ping():
    run = Run(scope=Scope(mac=MAC))
    run.until(0)
    assert run.sent[0][1][ARP].psrc == "0.0.0.0"
    run.answer(arp_answer(to="0.0.0.0"))  # a tagged answer: no control was sent yet
    run.until(1)
    probe = run.probe()
    assert probe.verdict == "answers" and [k for k in run.kinds() if k[1] == "echo"] == []
    assert "(no pings: the tool has no IPv4 address" in probe.summary()


def test_a_mac_change_mid_probe_starts_it_again_for_the_new_station():
    run = Run()
    run.until(0)
    run.answer(arp_answer())
    run.until(0)
    assert run.answer(echo_answer(mac=OTHER_MAC)) == (run.probe(), False, False)
    probe = run.probe()
    assert (probe.phase, probe.mac, probe.verdict) == ("resolve", None, None)
    run.until(0.5)
    run.answer(arp_answer(mac=OTHER_MAC))
    run.until(0.6)
    assert run.sent[-1][1].dst == OTHER_MAC
    run.answer(echo_answer(mac=OTHER_MAC))
    assert (probe.verdict, probe.mac) == ("answers", mac2str(OTHER_MAC))
    events = [e["event"] for e in probe.evidence]
    assert "another MAC answered" in events


def test_two_stations_answering_in_turn_end_without_a_verdict():
    run = Run()
    for turn in range(2 * (PROBE_RESTARTS + 1)):  # each second answer: another MAC
        run.until(run.now)
        run.answer(arp_answer(mac=(PEER_MAC, OTHER_MAC)[turn % 2]))
    probe = run.probe()
    assert probe.verdict == "unclear" and not run.prober.pending
    assert overall_status([run.verdicts, run.prober]) == EXIT_NO_VERDICT
    assert "one address, two stations?" in probe.summary()


def test_untagged_framing_has_no_control_to_compare_with():
    run = Run(framing=Framing(vlans=()))
    run.until(60)
    assert [k[2] for k in run.kinds()] == [False] * PROBES_SENT["resolve"]
    assert run.probe().summary() == (
        f"tap0: nobody answered at {PEER_IP}: 3 ARP requests untagged went unanswered "
        "(down, filtered, or nobody there): no verdict")


def test_an_interface_not_served_is_probed_once_it_is():
    run = Run()
    prober = run.prober
    assert prober.send_due(0, set()) == ([], []) and not prober.probes
    frames, _ = prober.send_due(1, {"tap0"})
    assert len(frames) == 1
    frames, _ = prober.send_due(2, set())  # gone: nothing sent, looked at again later
    assert frames == [] and prober.due(2) == PROBE_INTERVAL


# -- learning addresses from the guest's own asks

def ask(source, target=TOOL_IP, mac=PEER_MAC):
    return ArpRequest(mac2str(mac), mac2str(mac), ipaddress.ip_address(source).packed,
                      ipaddress.ip_address(target).packed)


def prober_told(addresses, scope):
    """A Prober, and what publishes ASKED to it (as the replies' judge does)."""
    events = Events()
    prober = Prober(addresses, scope, Framing(), IDENT, events)
    return prober, lambda interface, request, now: events.publish(ASKED, interface, request, now)


def test_learnt_addresses_are_bounded_and_pinged_from_what_they_asked_for():
    prober, heard_ask = prober_told((), Scope(mac=MAC))
    for host in range(1, PROBES_LEARNT + 5):
        heard_ask("tap0", ask(f"198.51.100.{host}", target="198.51.100.200"), 0)
    assert len(prober.probes) == PROBES_LEARNT
    first = prober.probes[("tap0", V4)]
    assert first.learnt and first.source == ipaddress.ip_address("198.51.100.200").packed
    heard_ask("tap1", ask("198.51.100.1"), 0)
    assert ("tap1", V4) in prober.probes  # the bound is per interface


def test_nothing_outside_the_ip_prefix_is_learnt_and_explicit_probes_learn_no_more():
    prober, heard_ask = prober_told((), SCOPE_OWN)
    heard_ask("tap0", ask("203.0.113.9"), 0)
    assert not prober.probes
    explicit, heard_ask = prober_told((V4,), Scope(mac=MAC))
    explicit.send_due(0, {"tap0"})
    heard_ask("tap0", ask("198.51.100.9"), 0)
    heard_ask("tap0", ask(PEER_IP, target="198.51.100.77"), 0)
    assert list(explicit.probes) == [("tap0", V4)]
    assert explicit.probes[("tap0", V4)].source == ipaddress.ip_address("198.51.100.77").packed


@pytest.mark.parametrize("address, refusal", [
    ("198.51.100.1", None),
    ("224.0.0.1", "224.0.0.1 is not a unicast address"),
    ("255.255.255.255", "255.255.255.255 is not a unicast address"),
    ("198.51.100.2", "198.51.100.2 is the tool's own address"),
    ("198.51.100.255", "198.51.100.255 is outside 198.51.100.0/24 (--ip)"),
    ("203.0.113.1", "203.0.113.1 is outside 198.51.100.0/24 (--ip)"),
    (LINK_LOCAL, f"{LINK_LOCAL} is the tool's own address"),
])
def test_probe_refusal(address, refusal):
    scope = Scope(mac=MAC, targets=(ipaddress.ip_network("198.51.100.0/24"),), own=(OWN,))
    found = probe_refusal(ipaddress.ip_address(address).packed, scope)
    assert found is None if refusal is None else found.startswith(refusal), found


# -- the command line

def test_probe_words_are_addresses_then_interfaces():
    args = parse_args(["--probe", PEER_IP, PEER6, "tap0", "tap1"])
    assert args.probe == [ipaddress.ip_address(PEER_IP), ipaddress.ip_address(PEER6)]
    assert args.interfaces == ["tap0", "tap1"]
    args = parse_args(["--probe", "tap0"])
    assert (args.probe, args.interfaces) == ([], ["tap0"])
    assert parse_args(["tap0"]).probe is None


@pytest.mark.parametrize("argv, message", [
    (["--probe", "198.51.100.300", "tap0"], "invalid IPv4 or IPv6 address: '198.51.100.300'"),
    (["--probe", "ff02::1", "tap0"], "ff02::1 is not a unicast address"),
    (["-4", "--probe", PEER6, "tap0"], f"{PEER6} is IPv6, which the tool does not serve here"),
    (["--probe", PEER_IP, PEER_IP, "tap0"], "an address is named twice"),
    (["--ip", "198.51.100.2/24", "--probe", "203.0.113.1", "tap0"], "is outside"),
])
def test_bad_probe_addresses_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_address_found_on_one_interface_is_no_answer_on_none():
    # --probe ADDR on 'vnet*': one TAP has the guest, the others nobody.
    prober = Prober((V4,), SCOPE_OWN, Framing(), IDENT)
    now = 0.0
    while True:
        prober.send_due(now, {"tap0", "tap1"})
        if ("tap0", V4) in prober.pending and prober.probes[("tap0", V4)].sent.get("resolve"):
            feed(prober, "tap0", arp_answer(), now)
            feed(prober, "tap0", echo_answer(), now)
        if not prober.pending:
            break
        now += prober.due(now)
    assert sorted((p.interface, p.verdict) for p in prober.probes.values()) == [
        ("tap0", "answers"), ("tap1", "no answer")]
    assert overall_status([prober]) == EXIT_OK and prober.why_no_verdict() is None
    alone = Prober((V4,), SCOPE_OWN, Framing(), IDENT)
    now = 0.0
    alone.send_due(now, {"tap1"})
    while alone.pending:
        now += alone.due(now)
        alone.send_due(now, {"tap1"})
    assert overall_status([alone]) == EXIT_NO_VERDICT
