# SPDX-License-Identifier: GPL-2.0-only
"""The guest's verdict, offline: timed sequences of crafted frames, as a
guest's stack sends them, through the core and the replies' judge
(Replies)."""

import ipaddress
import json

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import mac2str

from arp_icmp_vlan0 import (ASKS_FOR_DROPS, EXIT_DROPS, EXIT_NO_VERDICT, EXIT_OK, GUESTS_KEPT,
                            GUESTS_PER_INTERFACE, RETRY_WINDOW, Framing, Replies, Scope,
                            reply_to)
from checks import observed
from frames import (MAC, PEER6, PEER_IP, PEER_MAC, SOLICITED_NODE, SOLICITED_NODE_MAC, TOOL6,
                    TOOL_IP)

OTHER_MAC, OTHER_IP = "52:54:00:ab:cd:ef", "198.51.100.7"
SCOPE, FRAMING = Scope(mac=MAC, targets=()), Framing()


def who_has(mac=PEER_MAC, ip=PEER_IP, target=TOOL_IP, to="ff:ff:ff:ff:ff:ff"):
    return bytes(Ether(src=mac, dst=to) / ARP(op=1, hwsrc=mac, psrc=ip, pdst=target))


def ping(mac=PEER_MAC, ip=PEER_IP, target=TOOL_IP, seq=1):
    return bytes(Ether(src=mac, dst=MAC) / IP(src=ip, dst=target) / ICMP(id=7, seq=seq))


def solicit(to_group=True):
    dst, ether_dst = (SOLICITED_NODE, SOLICITED_NODE_MAC) if to_group else (TOOL6, MAC)
    return bytes(Ether(src=PEER_MAC, dst=ether_dst) / IPv6(src=PEER6, dst=dst, hlim=255)
                 / ICMPv6ND_NS(tgt=TOOL6) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))


def ping6():
    return bytes(Ether(src=PEER_MAC, dst=MAC) / IPv6(src=PEER6, dst=TOOL6) / ICMPv6EchoRequest())


def probe():
    return bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc=PEER_MAC, psrc="0.0.0.0", pdst=TOOL_IP))


def play(sequence, verdicts=None, scope=SCOPE, interface="tap0"):
    """Feed (time, frame) pairs as the tool does; return the book and the
    guests whose verdict formed or changed, in order, with when."""
    verdicts = verdicts or Replies(scope, FRAMING)
    changes = []
    for now, frame in sequence:
        answer = reply_to(frame, scope, FRAMING)
        guest = observed(verdicts, interface, frame, answer, now)
        if guest is not None:
            changes.append((now, guest.verdict, guest.mac))
    return verdicts, changes


def only_guest(verdicts):
    assert len(verdicts.guests) == 1
    return next(iter(verdicts.guests.values()))


def test_a_guest_that_stops_asking_and_pings_accepts():
    verdicts, changes = play([(0.0, who_has()), (0.0012, ping(seq=1)), (1.0, ping(seq=2))])
    assert changes == [(0.0012, "accepts", PEER_MAC)]
    guest = only_guest(verdicts)
    assert (guest.interface, guest.family, guest.addresses) == ("tap0", 4, [PEER_IP])
    line = guest.summary()
    assert line == (f"tap0: guest {PEER_MAC} ({PEER_IP}) accepts ARP replies tagged vlan 0, "
                    f"p 0: 1.2 ms after the reply for {TOOL_IP} it sent an ICMP echo request "
                    f"to {MAC}")
    assert verdicts.settled() and verdicts.status() == EXIT_OK


def test_a_guest_that_asks_three_times_drops():
    verdicts, changes = play([(0.0, who_has()), (1.0, who_has()), (2.0, who_has())])
    assert changes == [(2.0, "drops", PEER_MAC)]
    line = only_guest(verdicts).summary()
    assert line == (f"tap0: guest {PEER_MAC} ({PEER_IP}) asked for {TOOL_IP} 3 times in "
                    "2.0 s and every request was answered: it drops ARP replies tagged "
                    "vlan 0, p 0 (compare with --untagged)")
    assert verdicts.status() == EXIT_DROPS


def test_two_asks_are_no_verdict_yet():
    verdicts, changes = play([(0.0, who_has()), (1.0, who_has())])
    assert changes == [] and ASKS_FOR_DROPS == 3
    guest = only_guest(verdicts)
    assert guest.verdict is None
    assert "no verdict on ARP replies tagged vlan 0, p 0 yet: 2 answered asks for " \
           f"{TOOL_IP}" in guest.summary()
    assert not verdicts.settled() and verdicts.status() == EXIT_NO_VERDICT


def test_nothing_heard_is_no_verdict():
    verdicts = Replies(SCOPE, FRAMING)
    assert not verdicts.settled() and verdicts.status() == EXIT_NO_VERDICT


def test_re_asking_after_the_entry_went_stale_is_not_a_drop():
    # Accepted, then asked again every two minutes (its entry expired each time).
    sequence = [(0.0, who_has()), (0.001, ping())]
    sequence += [(120.0 * n, who_has()) for n in range(1, 5)]
    verdicts, changes = play(sequence)
    assert changes == [(0.001, "accepts", PEER_MAC)]
    assert only_guest(verdicts).verdict == "accepts"
    # Never accepted either: still no verdict, however often it asks that slowly.
    verdicts, changes = play([(120.0 * n, who_has()) for n in range(5)])
    assert changes == [] and only_guest(verdicts).verdict is None


def test_asks_just_inside_and_outside_the_retry_window():
    inside = [(0.0, who_has()), (RETRY_WINDOW, who_has()), (2 * RETRY_WINDOW, who_has())]
    assert play(inside)[1] == [(2 * RETRY_WINDOW, "drops", PEER_MAC)]
    outside = [(t * (RETRY_WINDOW + 0.1), who_has()) for t in range(3)]
    assert play(outside)[1] == []


def test_asks_for_different_addresses_do_not_add_up():
    sequence = [(0.0, who_has(target=TOOL_IP)), (1.0, who_has(target="198.51.100.3")),
                (2.0, who_has(target="198.51.100.4"))]
    assert play(sequence)[1] == []


def test_two_guests_on_one_interface_are_judged_apart():
    sequence = [(0.0, who_has()), (0.1, who_has(mac=OTHER_MAC, ip=OTHER_IP)),
                (0.2, ping()), (1.1, who_has(mac=OTHER_MAC, ip=OTHER_IP)),
                (2.1, who_has(mac=OTHER_MAC, ip=OTHER_IP))]
    verdicts, changes = play(sequence)
    assert changes == [(0.2, "accepts", PEER_MAC), (2.1, "drops", OTHER_MAC)]
    assert verdicts.settled() and verdicts.status() == EXIT_DROPS


def test_the_same_guest_on_two_interfaces_is_two_guests():
    verdicts = Replies(SCOPE, FRAMING)
    play([(0.0, who_has()), (0.1, ping())], verdicts, interface="tap0")
    play([(0.0, who_has())], verdicts, interface="tap1")
    assert sorted((g.interface, g.verdict) for g in verdicts.guests.values()) == [
        ("tap0", "accepts"), ("tap1", None)]
    assert not verdicts.settled()


def test_ipv6_solicitations_and_pings():
    verdicts, changes = play([(0.0, solicit()), (0.002, ping6())])
    assert changes == [(0.002, "accepts", PEER_MAC)]
    guest = only_guest(verdicts)
    assert guest.family == 6 and guest.addresses == [PEER6]
    assert "accepts Neighbor Advertisements tagged vlan 0, p 0" in guest.summary()
    assert "an ICMPv6 echo request" in guest.summary()
    verdicts, changes = play([(0.0, solicit()), (1.0, solicit()), (2.0, solicit())])
    assert changes == [(2.0, "drops", PEER_MAC)]
    assert ("every solicitation was answered: it drops Neighbor Advertisements"
            in only_guest(verdicts).summary())


def test_families_are_judged_apart():
    verdicts, _ = play([(0.0, who_has()), (0.1, ping()), (0.2, solicit())])
    assert sorted((g.family, g.verdict) for g in verdicts.guests.values()) == [
        (4, "accepts"), (6, None)]


def test_a_unicast_ask_after_a_broadcast_one_accepts():
    # The guest learnt the MAC from the reply and checks reachability with it.
    verdicts, changes = play([(0.0, who_has()), (0.5, who_has(to=MAC))])
    assert changes == [(0.5, "accepts", PEER_MAC)]
    assert "it sent a unicast ARP request" in only_guest(verdicts).summary()
    verdicts, changes = play([(0.0, solicit()), (0.5, solicit(to_group=False))])
    assert changes == [(0.5, "accepts", PEER_MAC)]


def test_a_guest_that_knew_the_mac_before_is_judged_by_its_asks_alone():
    # Its entry predates the tool's reply: unicast probes, pings with the old
    # entry, then, the reply lost, three probes mean a drop; pings prove nothing.
    sequence = [(0.0, who_has(to=MAC)), (0.2, ping()), (1.0, who_has(to=MAC)),
                (1.2, ping()), (2.0, who_has(to=MAC))]
    assert play(sequence)[1] == [(2.0, "drops", PEER_MAC)]


def test_probes_and_dad_are_not_asks():
    scope = Scope(mac=MAC, targets=(ipaddress.ip_network(TOOL_IP),))
    verdicts, changes = play([(t, probe()) for t in (0.0, 1.0, 2.0)], scope=scope)
    assert reply_to(probe(), scope, Framing()) is not None  # answered: the tool owns it
    assert changes == [] and not verdicts.guests


def test_a_verdict_can_change_and_says_so():
    # Dropping, then the guest's NIC goes promiscuous and the next reply gets in.
    sequence = [(0.0, who_has()), (1.0, who_has()), (2.0, who_has()),
                (30.0, who_has()), (30.001, ping())]
    verdicts, changes = play(sequence)
    assert changes == [(2.0, "drops", PEER_MAC), (30.001, "accepts", PEER_MAC)]
    # And back: accepted, then three quick asks.
    sequence = [(0.0, who_has()), (0.1, ping()), (10.0, who_has()), (11.0, who_has()),
                (12.0, who_has())]
    assert [c[1] for c in play(sequence)[1]] == ["accepts", "drops"]


def test_untagged_replies_are_named_as_such():
    verdicts, _ = play([(0.0, who_has()), (1.0, who_has()), (2.0, who_has())],
                       Replies(SCOPE, Framing(vlans=())))
    line = only_guest(verdicts).summary()
    assert line.endswith("it drops ARP replies untagged")
    assert "--untagged" not in line


def test_flood_of_asks_keeps_the_book_small():
    frame = who_has()
    verdicts, changes = play([(n * 1e-5, frame) for n in range(20000)])
    guest = only_guest(verdicts)
    assert [c[1] for c in changes] == ["drops"]
    assert {target: [run.first, run.last, run.count] for target, run in guest.runs.items()} == {
        TOOL_IP: [0.0, 19999 * 1e-5, 20000]}
    assert len(guest.evidence) <= 32
    assert "asked for 198.51.100.2 20000 times in 0.2 s" in guest.summary()


def spoofed(n, template=who_has()):
    """who_has() from made-up MAC number `n` (in the Ethernet and ARP
    sender fields), made by patching bytes (fast)."""
    mac = b"\x52\x54" + n.to_bytes(4, "big")
    return template[:6] + mac + template[12:22] + mac + template[28:]


def test_many_guests_keep_the_book_bounded_and_each_interface_its_share():
    verdicts = Replies(SCOPE, FRAMING)
    interfaces = GUESTS_KEPT // GUESTS_PER_INTERFACE
    for n in range(GUESTS_KEPT + 10):  # every interface full, the last one over
        play([(float(n), spoofed(n))], verdicts,
             interface=f"tap{min(n // GUESTS_PER_INTERFACE, interfaces - 1)}")
    assert len(verdicts.guests) == GUESTS_KEPT  # none forgotten, none more
    assert verdicts.book.untracked == 10
    assert ("tap0", b"\x52\x54" + bytes(4), 4) in verdicts.guests  # the first stays
    play([(99999.0, who_has())], verdicts, interface="tap-new")
    assert verdicts.book.untracked == 11  # a new interface: no room left at all
    line = verdicts.lines()[-1]
    assert line.startswith(f"guests not tracked: 10 on tap{interfaces - 1}, 1 on tap-new")
    assert verdicts.why_no_verdict() is not None


def test_json_has_the_evidence_with_times():
    verdicts, _ = play([(10.0, who_has()), (11.0, who_has()), (12.0, who_has())])
    record = only_guest(verdicts).to_json()
    assert record["verdict"] == "drops" and record["mac"] == PEER_MAC
    assert record["evidence"] == [
        {"time": t, "event": "asked", "for": TOOL_IP, "to": "broadcast"}
        for t in (10.0, 11.0, 12.0)]
    assert record["line"].startswith("tap0: guest ")


def arp_from(mac, target, ip=PEER_IP):
    """who_has() from `mac` for `target`, made by patching bytes (fast)."""
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc=mac, psrc=ip, pdst=target))


def test_a_guest_asking_for_200000_addresses_keeps_its_record_small():
    """Guest.runs kept one entry per address asked for until the guest
    accepted: 200,000 targets grew the process by 50 MiB and gave a 4 MB
    verdict line."""
    import tracemalloc
    template = arp_from(PEER_MAC, "198.52.0.0")  # 200,000 addresses, none its own
    verdicts = Replies(SCOPE, FRAMING)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(200000):
        frame = template[:38] + (0xC6340000 + n).to_bytes(4, "big") + template[42:]
        observed(verdicts, "tap0", frame, reply_to(frame, SCOPE, FRAMING), n * 1e-3)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    guest = only_guest(verdicts)
    assert grown < 1 << 20, grown
    assert len(guest.runs) == 8 and guest.targets_not_kept == 200000 - 8
    line = guest.summary()
    assert len(line) < 300 and "and 199,997 more" in line and "200,000 answered asks" in line
    assert len(json.dumps(guest.to_json())) < 8000


def test_a_flood_of_spoofed_macs_does_not_push_out_a_guest_with_a_verdict():
    verdicts, _ = play([(0.0, who_has()), (0.5, ping())])
    assert only_guest(verdicts).verdict == "accepts"
    for n in range(100000):
        frame = spoofed(n)
        observed(verdicts, "tap0", frame, reply_to(frame, SCOPE, FRAMING), 1.0 + n * 1e-4)
    assert len(verdicts.guests) == GUESTS_PER_INTERFACE
    assert verdicts.guests[("tap0", mac2str(PEER_MAC), 4)].verdict == "accepts"
    assert verdicts.book.untracked == 100000 + 1 - GUESTS_PER_INTERFACE
    assert verdicts.status() == EXIT_NO_VERDICT  # those not tracked have none


def test_a_guest_with_many_addresses_names_a_few_in_its_line():
    verdicts, _ = play([(n * 0.1, arp_from(PEER_MAC, TOOL_IP, ip=f"198.51.100.{n + 10}"))
                        for n in range(20)])
    guest = only_guest(verdicts)
    assert len(guest.addresses) == 8 and guest.addresses_not_kept == 12
    assert "(198.51.100.10, 198.51.100.11, 198.51.100.12 and 17 more)" in guest.summary()


def test_settled_follows_every_guests_verdict_through_eviction():
    verdicts, _ = play([(0.0, who_has()), (0.5, ping())])
    assert verdicts.settled()
    other = who_has(mac=OTHER_MAC, ip=OTHER_IP)
    play([(1.0, other)], verdicts)
    assert not verdicts.settled()  # a second guest, no verdict yet
    play([(1.5, ping(mac=OTHER_MAC, ip=OTHER_IP))], verdicts)
    assert verdicts.settled()
    assert all(g.verdict for g in verdicts.guests.values())


def test_a_single_unicast_ask_is_no_question_and_holds_no_run():
    # A neighbour entry checked again (Linux's NUD_PROBE): one unicast ask,
    # answered, then silence. The guest knew the MAC already: nothing to judge.
    verdicts, changes = play([(0.0, who_has(to=MAC)), (30.0, who_has(to=MAC))])
    assert changes == [] and not verdicts.guests
    assert verdicts.status() == EXIT_NO_VERDICT and "no guest was heard" in \
        verdicts.why_no_verdict()
    # Beside a guest judged otherwise, it leaves the status to that one.
    verdicts, _ = play([(0.0, who_has()), (0.1, ping())])
    play([(1.0, who_has(mac=OTHER_MAC, ip=OTHER_IP, to=MAC))], verdicts)
    assert verdicts.settled() and verdicts.status() == EXIT_OK
