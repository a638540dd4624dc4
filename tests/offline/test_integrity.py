# SPDX-License-Identifier: GPL-2.0-only
"""Verdict integrity, offline: an interface is a trust boundary. Guest A
(on tapA) attacks guest B (on tapB) with timed, crafted frames through the
services as the loop drives them: A's DECLINEs, spoofed RELEASEs and
REQUESTs, a flood of DISCOVERs, a forged answer to a probe, thousands of
made-up guests; none may change B's lease, verdict or the exit status B's
evidence gives. Then the bounds a guest's flood meets (the DHCP budget,
Router Advertisements as RFC 4861 6.2.6 spaces them, the source rules every
answer keeps) and the roll that makes status 0 mean every judge asked for
judged every guest."""

import ipaddress

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import mac2str

import arp_icmp_vlan0
from arp_icmp_vlan0 import (DECLINED_PER_INTERFACE, DHCP_BUDGET, ETH_P_IP, ETH_P_IPV6,
                            EXIT_DROPS, EXIT_NO_VERDICT, EXIT_OK, GUESTS_PER_INTERFACE,
                            JUDGED_WITHIN, LEASES_PER_INTERFACE, MIN_DELAY_BETWEEN_RAS, MISSING,
                            PROBE_DATA,
                            Advertiser, DhcpServer, Events, Framing, Prober, Replies, Roster,
                            Scope, answer_with, ethertype_and_offset, observe_with,
                            overall_status, plain_echo_replier, reply_to)
from checks import exchange, feed, observed
from frames import MAC, PEER_IP, PEER_MAC, TOOL_IP

NETWORK = ipaddress.ip_network("198.51.100.0/24")
SERVER = ipaddress.ip_address(TOOL_IP).packed
PREFIX = ipaddress.ip_network("2001:db8::/64")
A_MAC, B_MAC, C_MAC = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"
SCOPE = Scope(mac=MAC, targets=(NETWORK, PREFIX), own=(SERVER,), leased={})


def dhcp(kind, mac, src_mac=None, xid=1, ciaddr="0.0.0.0", giaddr="0.0.0.0", client_id=None,
         **options):
    """A client's DHCP message (chaddr `mac`) as it leaves the client, from
    Ethernet source `src_mac` (the client's own unless spoofed)."""
    listed = [("message-type", kind)] + list(options.items())
    if client_id is not None:
        listed.append(("client_id", client_id))
    return bytes(Ether(src=src_mac or mac, dst="ff:ff:ff:ff:ff:ff") /
                 IP(src=ciaddr, dst="255.255.255.255") / UDP(sport=68, dport=67) /
                 BOOTP(op=1, xid=xid, ciaddr=ciaddr, giaddr=giaddr,
                       chaddr=mac2str(mac) + bytes(10)) / DHCP(options=listed + ["end"]))


def ask(server, interface, frame, now=0.0):
    _, offset = ethertype_and_offset(frame)
    return server.answer(interface, frame, ETH_P_IP, offset, now)


def leased(server, interface, mac, now=0.0, client_id=None):
    """`mac` on `interface` takes a lease: DISCOVER, OFFER, REQUEST, ACK;
    the address (text)."""
    offer = ask(server, interface, dhcp("discover", mac, client_id=client_id), now)
    address = Ether(offer.reply)[BOOTP].yiaddr
    observed(server, interface, dhcp("discover", mac), offer, now)
    request = dhcp("request", mac, requested_addr=address, server_id=TOOL_IP,
                   client_id=client_id)
    ack = ask(server, interface, request, now + 0.01)
    assert Ether(ack.reply)[DHCP].options[0] == ("message-type", 5)
    observed(server, interface, request, ack, now + 0.01)
    return address


def holds(server, interface, mac, address):
    lease = server.leases.lease_of((interface, mac2str(mac)), 1.0)
    return lease is not None and lease.address == ipaddress.ip_address(address).packed \
        and lease.state == "bound"


def server():
    return DhcpServer(NETWORK, SERVER, SCOPE, Framing())


# -- DHCP: the holder alone releases or declines, and every interface its share

def test_declines_from_a_of_the_whole_pool_leave_b_its_lease_and_c_a_new_one():
    dhcpd = server()
    b_address = leased(dhcpd, "tapB", B_MAC)
    for host in range(1, 255):  # A declines every address: not A's, so nothing happens
        ask(dhcpd, "tapA", dhcp("decline", A_MAC, requested_addr=f"198.51.100.{host}",
                                server_id=TOOL_IP), 0.5 + host * 1e-4)
    assert holds(dhcpd, "tapB", B_MAC, b_address) and not dhcpd.leases.declined
    renew = dhcp("request", B_MAC, ciaddr=b_address)
    assert Ether(ask(dhcpd, "tapB", renew, 1.0).reply)[DHCP].options[0] == ("message-type", 5)
    assert leased(dhcpd, "tapC", C_MAC, 1.0) != b_address


def test_a_decline_in_bs_name_but_on_as_interface_frees_nothing():
    dhcpd = server()
    b_address = leased(dhcpd, "tapB", B_MAC)
    ask(dhcpd, "tapA", dhcp("decline", B_MAC, requested_addr=b_address, server_id=TOOL_IP), 0.5)
    assert holds(dhcpd, "tapB", B_MAC, b_address) and not dhcpd.leases.declined


def test_spoofed_release_and_request_for_another_server_leave_bs_lease():
    dhcpd = server()
    b_address = leased(dhcpd, "tapB", B_MAC)
    ask(dhcpd, "tapA", dhcp("release", B_MAC, ciaddr=b_address, server_id=TOOL_IP), 0.5)
    ask(dhcpd, "tapA", dhcp("request", B_MAC, requested_addr=b_address,
                            server_id="198.51.100.77"), 0.6)
    assert holds(dhcpd, "tapB", B_MAC, b_address)


def test_a_release_needs_the_leases_address_and_client_identifier():
    dhcpd = server()
    b_address = leased(dhcpd, "tapB", B_MAC, client_id=b"\x01b-id")
    other = str(ipaddress.ip_address(b_address) + 1)
    ask(dhcpd, "tapB", dhcp("release", B_MAC, ciaddr=other, client_id=b"\x01b-id"), 0.5)
    ask(dhcpd, "tapB", dhcp("release", B_MAC, ciaddr=b_address, client_id=b"\x01forged"), 0.6)
    assert holds(dhcpd, "tapB", B_MAC, b_address)
    ask(dhcpd, "tapB", dhcp("release", B_MAC, ciaddr=b_address, client_id=b"\x01b-id"), 0.7)
    assert not holds(dhcpd, "tapB", B_MAC, b_address)  # the holder itself: freed


def test_an_offer_withdrawn_by_a_request_for_another_server_is_that_clients_alone():
    dhcpd = server()
    offered = {}
    for interface, mac in (("tapA", A_MAC), ("tapB", B_MAC)):
        answer = ask(dhcpd, interface, dhcp("discover", mac))
        offered[interface] = Ether(answer.reply)[BOOTP].yiaddr
    ask(dhcpd, "tapA", dhcp("request", A_MAC, requested_addr=offered["tapA"],
                            server_id="198.51.100.77"), 0.1)
    assert dhcpd.leases.lease_of(("tapA", mac2str(A_MAC)), 0.2) is None
    assert dhcpd.leases.lease_of(("tapB", mac2str(B_MAC)), 0.2).state == "offered"


def test_a_holder_may_decline_but_one_interface_blocks_few_addresses():
    dhcpd = server()
    blocked = []
    for n in range(DECLINED_PER_INTERFACE + 3):
        mac = f"52:54:00:00:01:{n:02x}"
        address = leased(dhcpd, "tapA", mac, now=n)
        ask(dhcpd, "tapA", dhcp("decline", mac, requested_addr=address, server_id=TOOL_IP),
            n + 0.5)
        assert not holds(dhcpd, "tapA", mac, address)  # freed, as the holder asked
        blocked.append(ipaddress.ip_address(address).packed in dhcpd.leases.declined)
    assert blocked == [True] * DECLINED_PER_INTERFACE + [False] * 3


def test_spoofed_discover_and_request_pairs_fill_only_their_interfaces_share():
    dhcpd = server()
    for n in range(300):  # as fast as the budget lets them through: 1 s apart each
        mac = f"02:00:00:00:{n >> 8:02x}:{n & 255:02x}"
        offer = ask(dhcpd, "tapA", dhcp("discover", mac), float(n))
        if offer is not None:
            address = Ether(offer.reply)[BOOTP].yiaddr
            ask(dhcpd, "tapA", dhcp("request", mac, requested_addr=address, server_id=TOOL_IP),
                n + 0.5)
    held = [client for client in dhcpd.leases.by_client if client[0] == "tapA"]
    assert len(held) == LEASES_PER_INTERFACE
    assert dhcpd.leases.refused["tapA"] > 0
    assert leased(dhcpd, "tapC", C_MAC, 400.0)
    assert any("DHCP offers or leases refused" in line and line.startswith("tapA:")
               for line in dhcpd.lines())
    assert dhcpd.to_json()["dhcp"]["refused_at_cap"]["tapA"] == dhcpd.leases.refused["tapA"]


def test_two_guests_with_one_mac_on_two_interfaces_are_two_clients():
    dhcpd = server()
    first = leased(dhcpd, "tap0", "52:54:00:12:34:56")
    second = leased(dhcpd, "tap1", "52:54:00:12:34:56", 1.0)
    assert first != second
    assert holds(dhcpd, "tap0", "52:54:00:12:34:56", first)
    assert holds(dhcpd, "tap1", "52:54:00:12:34:56", second)
    assert sorted(c.interface for c in dhcpd.clients.values()) == ["tap0", "tap1"]
    leases = dhcpd.to_json()["dhcp"]["leases"]
    assert sorted((lease["interface"], lease["address"]) for lease in leases) == [
        ("tap0", first), ("tap1", second)]


def test_a_flood_of_discovers_is_refused_past_the_budget_before_any_dissection(monkeypatch):
    dhcpd = server()
    burst, rate = DHCP_BUDGET
    dissected = []  # parse_dhcp_request: Scapy's dissection
    real_parse = arp_icmp_vlan0.parse_dhcp_request
    monkeypatch.setattr(arp_icmp_vlan0, "parse_dhcp_request",
                        lambda *args: dissected.append(1) or real_parse(*args))
    answers = [ask(dhcpd, "tapA", dhcp("discover", f"02:00:00:00:00:{n % 200:02x}"), n * 1e-4)
               for n in range(1000)]  # 1,000 in 0.1 s
    assert sum(a is not None for a in answers) <= burst + 1 and len(dissected) <= burst + 1
    assert dhcpd.budget.over["tapA"] >= 1000 - burst - 1
    assert ask(dhcpd, "tapB", dhcp("discover", B_MAC), 0.1) is not None  # B has its own


@pytest.mark.parametrize("frame", [
    pytest.param(lambda: dhcp("discover", B_MAC, giaddr="203.0.113.1"), id="relayed"),
    pytest.param(lambda: dhcp("discover", B_MAC, src_mac=A_MAC), id="chaddr-not-the-source"),
    pytest.param(lambda: dhcp("discover", B_MAC)[:-60], id="truncated"),
    pytest.param(lambda: dhcp("discover", "ff:ff:ff:ff:ff:ff"), id="broadcast-source"),
    pytest.param(lambda: dhcp("discover", MAC), id="the-tools-own-mac"),
])
def test_what_the_cheap_look_refuses_never_reaches_scapy_or_an_answer(frame, monkeypatch):
    dhcpd = server()
    monkeypatch.setattr(arp_icmp_vlan0, "parse_dhcp_request",
                        lambda *args: pytest.fail("dissected"))
    assert ask(dhcpd, "tapA", frame()) is None and not dhcpd.budget.buckets


# -- the probe counts only answers to what it sent, on that interface

def arp_reply(mac, to, dst=MAC):
    return bytes(Ether(src=mac, dst=dst) / ARP(op=2, hwsrc=mac, psrc="198.51.100.50",
                                               hwdst=MAC, pdst=to))


def test_one_spoofed_arp_reply_from_a_makes_no_verdict_on_as_interface_nor_bs():
    events = Events()
    replies = Replies(SCOPE, Framing(), events)
    prober = Prober((ipaddress.ip_address("198.51.100.50").packed,), SCOPE, Framing(), 0x4242,
                    events)
    services = [replies, prober]
    prober.send_due(0.0, {"tapA", "tapB"})
    # A, at once: B's MAC as the sender, target 0.0.0.0, as if answering a control.
    assert feed(prober, "tapA", arp_reply(B_MAC, "0.0.0.0"), 0.2) == (None, [])
    # B answers the tagged probes, then its pings.
    feed(prober, "tapB", arp_reply(B_MAC, TOOL_IP), 0.3)
    now = 0.3
    while prober.pending:
        frames, _ = prober.send_due(now, {"tapA", "tapB"})
        for interface, frame, _ in frames:
            sent = Ether(frame)
            if interface == "tapB" and sent.haslayer(ICMP):
                reply = Ether(src=B_MAC, dst=MAC) / IP(src="198.51.100.50", dst=TOOL_IP) / \
                    ICMP(type=0, id=sent[ICMP].id, seq=sent[ICMP].seq) / PROBE_DATA
                feed(prober, "tapB", bytes(reply), now + 0.001)
        now += prober.due(now) or 0.001
    verdicts = {p.interface: p.verdict for p in prober.probes.values()}
    assert verdicts == {"tapA": "no answer", "tapB": "answers"}
    assert overall_status(services) != EXIT_DROPS
    assert overall_status([prober]) == EXIT_OK


@pytest.mark.parametrize("to", ["0.0.0.0", TOOL_IP])
def test_no_answer_counts_before_what_it_answers_went_out(to):
    prober = Prober((ipaddress.ip_address("198.51.100.50").packed,), SCOPE, Framing(), 0x4242)
    frame = arp_reply(B_MAC, to)
    assert feed(prober, "tapA", frame, 0.0)[0] is None  # nothing sent on tapA yet
    prober.send_due(0.0, {"tapA"})
    taken = feed(prober, "tapA", frame, 0.1)[0]
    assert (taken is not None) == (to == TOOL_IP)  # the control has not gone out yet


# -- no verdict lost or forged by volume

def who_has(mac, ip=PEER_IP):
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc=mac, psrc=ip, pdst=TOOL_IP))


PING = bytes(Ether(src=A_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP))


def test_bs_drop_survives_4096_made_up_guests_from_a_and_the_status_is_3():
    replies = Replies(Scope(mac=MAC), Framing())
    for now in (0.0, 1.0, 2.0):  # B asks three times: it drops the replies
        frame = who_has(B_MAC)
        observed(replies, "tapB", frame, reply_to(frame, Scope(mac=MAC), Framing()), now)
    template = who_has(A_MAC)
    for n in range(4096):  # A, as 4,096 guests that accept
        mac = b"\x02\x00" + n.to_bytes(4, "big")
        frame = template[:6] + mac + template[12:22] + mac + template[28:]
        observed(replies, "tapA", frame, reply_to(frame, Scope(mac=MAC), Framing()), 3 + n * 1e-3)
        observed(replies, "tapA", PING[:6] + mac + PING[12:], None, 3 + n * 1e-3 + 1e-4)
    b = replies.guests[("tapB", mac2str(B_MAC), 4)]
    assert b.verdict == "drops" and replies.status() == EXIT_DROPS
    assert len([g for g in replies.guests.values() if g.interface == "tapA"]) \
        == GUESTS_PER_INTERFACE
    assert replies.to_json()["guests_not_tracked"] == 4096 - GUESTS_PER_INTERFACE


def test_guests_not_tracked_make_no_verdict_never_a_0():
    replies = Replies(Scope(mac=MAC), Framing())
    template = who_has(A_MAC)
    for n in range(GUESTS_PER_INTERFACE + 1):
        mac = b"\x02\x00" + n.to_bytes(4, "big")
        frame = template[:6] + mac + template[12:22] + mac + template[28:]
        observed(replies, "tapA", frame, reply_to(frame, Scope(mac=MAC), Framing()), n)
        observed(replies, "tapA", PING[:6] + mac + PING[12:], None, n + 0.5)
    assert all(g.verdict == "accepts" for g in replies.guests.values())
    assert replies.status() == EXIT_NO_VERDICT
    assert "guests not tracked: 1 on tapA" in replies.why_no_verdict()


# -- the three gaps the mutation audit found

def test_an_accepting_guest_that_asks_twice_more_within_the_window_stays_accepting():
    replies = Replies(Scope(mac=MAC), Framing())
    scope = Scope(mac=MAC)
    ping = bytes(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP))
    changes = []
    for now, frame in ((0.0, who_has(PEER_MAC)), (0.1, ping), (0.2, who_has(PEER_MAC)),
                       (1.2, who_has(PEER_MAC))):
        guest = observed(replies, "tap0", frame, reply_to(frame, scope, Framing()), now)
        changes.append(guest and guest.verdict)
    assert changes == [None, "accepts", None, None]  # its earlier asks were cleared
    assert next(iter(replies.guests.values())).verdict == "accepts"


def test_the_plain_echo_path_never_answers_a_multicast_source_mac():
    request = bytes(Ether(src="01:00:5e:00:00:01", dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                    ICMP(type=8))
    plain = plain_echo_replier(Scope(mac=MAC), Framing())
    assert plain(request) is None and reply_to(request, Scope(mac=MAC), Framing()) is None
    unicast = request[:6] + mac2str(PEER_MAC) + request[12:]
    assert plain(unicast) is not None  # the same request from a station: answered


def solicit(advertiser, interface, mac=PEER_MAC, src="fe80::5054:ff:fe12:3456", now=0.0):
    """A Router Solicitation offered and shown to `advertiser`: (its
    Answer, the record changed)."""
    frame = Ether(src=mac, dst="33:33:00:00:00:02") / IPv6(src=src, dst="ff02::2", hlim=255) / \
        ICMPv6ND_RS()
    if src != "::":
        frame /= ICMPv6NDOptSrcLLAddr(lladdr=mac)
    frame = bytes(frame)
    _, offset = ethertype_and_offset(frame)
    answer = advertiser.answer(interface, frame, ETH_P_IPV6, offset, now)
    return answer, observed(advertiser, interface, frame, answer, now)


def advertiser():
    return Advertiser(PREFIX, 0, Scope(mac=MAC, targets=(PREFIX,), families=frozenset({6})),
                      Framing())


def test_solicitations_further_apart_than_the_window_start_a_new_run():
    ra = advertiser()
    window = arp_icmp_vlan0.RA_RETRY_WINDOW
    changes = [solicit(ra, "tap0", now=t)[1] for t in (0.0, 4.0, 4.0 + window + 1)]
    assert changes == [None, None, None]
    [client] = ra.clients.values()
    assert client.asks.count == 1 and client.verdict is None
    changes = [solicit(ra, "tap0", now=t)[1] for t in (20.0, 24.0)]
    assert changes[-1].verdict == "drops"  # 14.1, 20, 24: the new run's third


# -- Router Advertisements within RFC 4861 6.2.6's bounds; the source rules

@pytest.mark.parametrize("source, spoofed", [("::", False), ("fe80::5054:ff:fe12:3456", False),
                                             ("fe80::5054:ff:fe12:3456", True)],
                         ids=["from-unspecified", "from-link-local", "from-made-up-macs"])
def test_a_thousand_solicitations_a_second_for_2_s_get_a_dozen_advertisements(source, spoofed):
    ra = advertiser()
    sent, now, n = [], 0.0, 0
    while now < 2.0:
        mac = f"02:00:00:00:{n >> 8 & 255:02x}:{n & 255:02x}" if spoofed else PEER_MAC
        solicit(ra, "tap0", mac=mac, src=source, now=now)
        frames, _ = ra.send_due(now, {"tap0"})
        sent += [(now, Ether(frame)) for _, frame, _ in frames]
        now, n = round(now + 0.001, 6), n + 1
    frames, _ = ra.send_due(now + 5, {"tap0"})
    sent += [(now + 5, Ether(frame)) for _, frame, _ in frames]
    assert 1 < len(sent) <= 12, [(t, f.dst) for t, f in sent]
    to_all = [t for t, frame in sent if frame.dst == "33:33:00:00:00:01"]
    assert all(b - a >= MIN_DELAY_BETWEEN_RAS - 1e-3 for a, b in zip(to_all, to_all[1:]))


@pytest.mark.parametrize("mac, src", [
    ("52:54:00:12:34:56", "ff05::2"), ("52:54:00:12:34:56", "::1"),
    ("ff:ff:ff:ff:ff:ff", "fe80::1"), ("33:33:00:00:00:02", "::"), (MAC, "fe80::1"),
], ids=["site-multicast-source", "loopback-source", "broadcast-mac", "multicast-mac",
        "the-tools-own-mac"])
def test_solicitations_from_what_no_answer_may_go_to_are_not_taken(mac, src):
    ra = advertiser()
    assert solicit(ra, "tap0", mac=mac, src=src)[0] is None
    assert not ra.unicast_at and not ra.multicast_at


def test_every_answer_waits_a_random_moment_and_goes_to_the_soliciter():
    ra = advertiser()
    answer, _ = solicit(ra, "tap0", now=10.0)
    at = answer.request[1]
    assert answer.reply is None and 10.0 <= at <= 10.5
    assert [f for f in ra.send_due(at - 1e-6, {"tap0"})[0] if f[2] != "advertisements"
            or Ether(f[1]).dst == PEER_MAC] == []
    frames = [Ether(f) for _, f, _ in ra.send_due(at, {"tap0"})[0]]
    assert frames[0].dst == PEER_MAC and frames[0][IPv6].dst == "fe80::5054:ff:fe12:3456"
    assert frames[0].haslayer(ICMPv6ND_RA)


# -- the roll: status 0 only once every judge asked for has judged every guest

def roll():
    events = Events()
    scope = Scope(mac=MAC, targets=(NETWORK, PREFIX), own=(SERVER,), leased={})
    dhcpd = DhcpServer(NETWORK, SERVER, scope, Framing(), events)
    ra = Advertiser(PREFIX, 0, scope, Framing(), events)
    return [dhcpd, ra, Roster([dhcpd, ra], scope, events)]


def take(services, interface, frame, now):
    ethertype, offset = ethertype_and_offset(frame)
    answer, by = answer_with(services, interface, frame, ethertype, offset, now)
    return answer, observe_with(services, exchange(interface, frame, answer, now, by))


def lease_at_once(services, now=0.0):
    dhcpd = services[0]
    offer, _ = take(services, "tap0", dhcp("discover", PEER_MAC), now)
    address = Ether(offer.reply)[BOOTP].yiaddr
    take(services, "tap0", dhcp("request", PEER_MAC, requested_addr=address,
                                server_id=TOOL_IP), now + 0.01)
    assert dhcpd.verdict_of("tap0", mac2str(PEER_MAC)) == "accepts"
    return address


def test_a_guest_that_solicits_5_s_after_its_lease_is_settled_only_by_the_ra_verdict():
    services = roll()
    lease_at_once(services)
    assert not all(service.decided() for service in services)  # the RA judge has none yet
    ra, roster = services[1], services[2]
    assert 0 < roster.due(0.5) <= JUDGED_WITHIN
    for now in (5.0, 9.0, 13.0):  # it solicits, 4 s apart, and drops them
        take(services, "tap0", bytes(Ether(src=PEER_MAC, dst="33:33:00:00:00:02") /
                                     IPv6(src="fe80::5054:ff:fe12:3456", dst="ff02::2",
                                          hlim=255) / ICMPv6ND_RS() /
                                     ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)), now)
        ra.send_due(now + 0.5, {"tap0"})
    assert ra.verdict_of("tap0", mac2str(PEER_MAC)) == "drops"
    assert all(service.decided() for service in services)
    assert overall_status(services) == EXIT_DROPS


def test_a_judge_still_judging_at_15_s_is_not_said_to_have_heard_nothing():
    # A virtio-net guest under TCG: its DISCOVERs from 0 s, its first Router
    # Solicitation at 9.8 s, then 4 and 8 s later (Linux's backoff), each
    # answered and dropped. At 15 s the RA judge has a run going, no verdict
    # yet: no "no Router Solicitation ... in 15 s" line (false), and the run
    # ends on the RA judge's own drop, status 3.
    services = roll()
    offer, _ = take(services, "tap0", dhcp("discover", PEER_MAC), 0.0)
    ra, roster = services[1], services[2]
    solicitation = bytes(Ether(src=PEER_MAC, dst="33:33:00:00:00:02") /
                         IPv6(src="fe80::5054:ff:fe12:3456", dst="ff02::2", hlim=255) /
                         ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    take(services, "tap0", solicitation, 9.8)
    ra.send_due(10.3, {"tap0"})
    take(services, "tap0", solicitation, 13.8)
    ra.send_due(14.3, {"tap0"})
    _, decided = roster.send_due(JUDGED_WITHIN + 0.1, {"tap0"})
    assert [guest.missing for guest in decided] == [], [g.summary() for g in decided]
    assert not all(service.decided() for service in services)  # the RA judge's run goes on
    take(services, "tap0", solicitation, 22.9)
    ra.send_due(23.4, {"tap0"})
    assert ra.verdict_of("tap0", mac2str(PEER_MAC)) == "drops"
    assert roster.lines() == [] and roster.verdicts() == []
    assert overall_status(services) == EXIT_DROPS and offer is not None


def test_a_guest_that_never_solicits_is_no_verdict_with_a_line_never_0():
    services = roll()
    lease_at_once(services)
    roster = services[2]
    assert roster.send_due(JUDGED_WITHIN - 0.1, {"tap0"}) == ([], [])
    _, decided = roster.send_due(JUDGED_WITHIN + 0.1, {"tap0"})
    [guest] = decided
    assert guest.verdict == MISSING and all(service.decided() for service in services)
    assert overall_status(services) == EXIT_NO_VERDICT
    assert guest.summary() == (
        f"tap0: guest {PEER_MAC}: no Router Solicitation nor an address taken from the prefix "
        f"in {JUDGED_WITHIN:g} s: Router Advertisements not judged (--ra)")
    [judged] = roster.to_json()["judged"]
    assert (judged["dhcp"], judged["ra"], judged["not_judged"]) == ("accepts", None, ["ra"])


def test_a_guest_heard_by_its_frames_alone_waits_for_both_judges():
    services = roll()
    frame = bytes(Ether(src=PEER_MAC, dst="33:33:ff:00:00:01") /
                  IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1"))
    take(services, "tap0", frame, 0.0)  # DAD for its link-local: a sign of life
    roster = services[2]
    _, decided = roster.send_due(JUDGED_WITHIN, {"tap0"})
    assert [g.missing for g in decided] == [services[:2]]
    assert "no DHCPDISCOVER in 15 s: DHCP offers not judged (--dhcp)" in decided[0].summary()
