# SPDX-License-Identifier: GPL-2.0-only
"""--dhcp and --ra, offline: every reply field against Scapy's dissection
(RFC 2131's broadcast and unicast rules, the options, NAK, release and
decline), the lease table's determinism and bounds, the Router
Advertisement, and timed sequences through the verdict at each client's
retry pace."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS,
                                ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import mac2str, str2mac

import arp_icmp_vlan0
from arp_icmp_vlan0 import (ETH_P_IP, ETH_P_IPV6, EXIT_DROPS, EXIT_OK, MAX_RA_DELAY_TIME,
                            RA_INITIAL, Advertiser,
                            DhcpServer, Framing, Leases, Prober, Scope, all_settled, answer_with,
                            dhcp_pool, ethertype_and_offset, observe_with, overall_status,
                            parse_args, parse_probe_answer, reply_to, scope_from,
                            tool_link_local)
from checks import exchange, observed
from frames import MAC, PEER_MAC, truncated_and_flipped

NETWORK = ipaddress.ip_network("198.51.100.0/24")
SERVER = ipaddress.ip_address("198.51.100.2").packed
PREFIX = ipaddress.ip_network("2001:db8::/64")
OTHER_MAC = "52:54:00:ab:cd:ef"


def server(framing=Framing()):
    scope = Scope(mac=MAC, targets=(NETWORK,), own=(SERVER,), leased={})
    return DhcpServer(NETWORK, SERVER, scope, framing), scope


def client_message(kind, mac=PEER_MAC, xid=0x1234, flags=0, ciaddr="0.0.0.0",
                   giaddr="0.0.0.0", chaddr=None, src="0.0.0.0", dst="255.255.255.255",
                   **options):
    listed = [("message-type", kind)] + [(name.replace("_", "-") if name == "message_type"
                                          else name, value) for name, value in options.items()]
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst) /
                 UDP(sport=68, dport=67) /
                 BOOTP(op=1, xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr,
                       chaddr=mac2str(chaddr or mac) + bytes(10)) /
                 DHCP(options=listed + ["end"]))


def ask(dhcp, frame, now=0.0):
    _, offset = ethertype_and_offset(frame)
    return dhcp.answer("tap0", frame, ETH_P_IP, offset, now)


def dissect(answer):
    frame = Ether(answer.reply)
    options = {o[0]: o[1] for o in frame[DHCP].options if isinstance(o, tuple)}
    return frame, options


# -- the replies, field by field

def test_offer_fields_and_options():
    dhcp, _ = server()
    answer = ask(dhcp, client_message("discover"))
    frame, options = dissect(answer)
    assert answer.kind == "dhcp" and frame[Dot1Q].vlan == 0 and frame.src == MAC
    bootp = frame[BOOTP]
    assert (bootp.op, bootp.xid, bootp.chaddr[:6], bootp.giaddr, bootp.ciaddr) == (
        2, 0x1234, mac2str(PEER_MAC), "0.0.0.0", "0.0.0.0")
    offered = ipaddress.ip_address(bootp.yiaddr)
    assert offered in NETWORK and offered.packed != SERVER
    assert options == {"message-type": 2, "server_id": "198.51.100.2",
                       "subnet_mask": "255.255.255.0", "router": "198.51.100.2",
                       "broadcast_address": "198.51.100.255",
                       "lease_time": 3600, "renewal_time": 1800, "rebinding_time": 3150}
    assert (frame[IP].src, frame[IP].ttl, frame[UDP].sport, frame[UDP].dport) == (
        "198.51.100.2", 64, 67, 68)
    # RFC 2131 4.1: broadcast bit clear, ciaddr 0: unicast to yiaddr and chaddr.
    assert (frame.dst, frame[IP].dst) == (PEER_MAC, str(offered))
    assert_checksums_right(frame)


def assert_checksums_right(frame):
    fresh = frame.copy()
    del fresh[IP].chksum, fresh[UDP].chksum, fresh[IP].len, fresh[UDP].len
    assert bytes(Ether(bytes(fresh))) == bytes(frame)


def test_the_broadcast_bit_makes_the_reply_broadcast():
    dhcp, _ = server()
    frame, _ = dissect(ask(dhcp, client_message("discover", flags=0x8000)))
    assert (frame.dst, frame[IP].dst, frame[BOOTP].flags) == (
        "ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x8000)


def test_request_after_the_offer_is_acked_and_the_address_is_the_guests():
    dhcp, scope = server()
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    answer = ask(dhcp, client_message("request", requested_addr=offered,
                                      server_id="198.51.100.2"), 1.0)
    frame, options = dissect(answer)
    assert options["message-type"] == 5 and frame[BOOTP].yiaddr == offered
    assert (answer.request.sent, ipaddress.ip_address(answer.request.address)) == (
        5, ipaddress.ip_address(offered))
    # The tool answers ARP for the rest of the /24, but not for a leased address.
    who_has = bytes(Ether(src=OTHER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                    ARP(op=1, hwsrc=OTHER_MAC, psrc="198.51.100.9", pdst=offered))
    assert reply_to(who_has, scope, Framing()) is None
    who_has = who_has.replace(ipaddress.ip_address(offered).packed,
                              ipaddress.ip_address("198.51.100.200").packed)
    assert reply_to(who_has, scope, Framing()) is not None


def test_a_request_for_an_address_not_offered_is_nakked_to_broadcast():
    dhcp, _ = server()
    ask(dhcp, client_message("discover"))
    answer = ask(dhcp, client_message("request", requested_addr="198.51.100.2",
                                      server_id="198.51.100.2"))
    frame, options = dissect(answer)
    assert options == {"message-type": 6, "server_id": "198.51.100.2"}
    free = ask(dhcp, client_message("request", requested_addr="198.51.100.200",
                                    server_id="198.51.100.2"))
    assert dissect(free)[1]["message-type"] == 6  # free, but not what was offered
    assert (frame.dst, frame[IP].dst, frame[BOOTP].yiaddr) == (
        "ff:ff:ff:ff:ff:ff", "255.255.255.255", "0.0.0.0")


def test_a_request_naming_another_server_is_not_answered_and_frees_the_offer():
    dhcp, _ = server()
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    assert ask(dhcp, client_message("request", requested_addr=offered,
                                    server_id="198.51.100.77")) is None
    assert ipaddress.ip_address(offered).packed not in dhcp.leases


def test_renewing_is_acked_unicast_to_ciaddr():
    dhcp, _ = server()
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    ask(dhcp, client_message("request", requested_addr=offered, server_id="198.51.100.2"))
    frame, options = dissect(ask(dhcp, client_message("request", ciaddr=offered,
                                                      src=offered, dst="198.51.100.2")))
    assert options["message-type"] == 5
    assert (frame.dst, frame[IP].dst, frame[BOOTP].ciaddr) == (PEER_MAC, offered, offered)


def test_init_reboot_with_no_record_is_silent_unless_off_the_network():
    dhcp, _ = server()
    own = ipaddress.ip_address(dhcp.leases.preferred(("tap0", mac2str(PEER_MAC)), 0))
    taken = str(own + 1)
    assert ask(dhcp, client_message("request", requested_addr=taken)) is None  # RFC 2131 4.3.2
    _, options = dissect(ask(dhcp, client_message("request", requested_addr="203.0.113.5")))
    assert options["message-type"] == 6
    # Its own address (the hash's), after the tool restarted: acknowledged.
    _, options = dissect(ask(dhcp, client_message("request", requested_addr=str(own))))
    assert options["message-type"] == 5


def test_a_relayed_or_mismatched_message_is_never_answered():
    dhcp, _ = server()
    assert ask(dhcp, client_message("discover", giaddr="203.0.113.1")) is None
    assert ask(dhcp, client_message("discover", chaddr=OTHER_MAC)) is None
    not_dhcp = bytes(Ether(src=PEER_MAC) / IP(dst="198.51.100.2") / UDP(sport=68, dport=67) /
                     (b"\x01\x01\x06\x00" + bytes(40)))
    assert ask(dhcp, not_dhcp) is None


def test_release_frees_and_decline_moves_the_client_elsewhere():
    dhcp, _ = server()
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    ask(dhcp, client_message("request", requested_addr=offered, server_id="198.51.100.2"))
    assert ask(dhcp, client_message("release", ciaddr=offered, server_id="198.51.100.2")) is None
    assert ipaddress.ip_address(offered).packed not in dhcp.leases
    assert Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr == offered  # again
    assert ask(dhcp, client_message("decline", requested_addr=offered,
                                    server_id="198.51.100.2")) is None
    assert Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr != offered


def test_inform_gets_the_options_without_a_lease():
    dhcp, _ = server()
    frame, options = dissect(ask(dhcp, client_message("inform", ciaddr="198.51.100.50")))
    assert options["message-type"] == 5 and "lease_time" not in options
    assert frame[BOOTP].yiaddr == "0.0.0.0" and frame[IP].dst == "198.51.100.50"


def test_replies_are_framed_like_every_reply():
    dhcp, _ = server(Framing(vlans=(5,), prio=3))
    frame = Ether(ask(dhcp, client_message("discover")).reply)
    assert (frame[Dot1Q].vlan, frame[Dot1Q].prio) == (5, 3)
    dhcp, _ = server(Framing(vlans=()))
    assert not Ether(ask(dhcp, client_message("discover")).reply).haslayer(Dot1Q)


# -- the lease table

def test_a_mac_gets_the_same_address_again_and_from_another_copy_of_the_tool():
    macs = [(f"tap{i}", mac2str(f"52:54:00:00:00:{i:02x}")) for i in range(50)]
    table = Leases(NETWORK, SERVER)
    first = [table.offer(mac, None, 0) for mac in macs]
    assert [table.offer(mac, None, 1) for mac in macs] == first  # a retry, a reboot
    assert [Leases(NETWORK, SERVER).offer(mac, None, 0) for mac in macs] == [
        Leases(NETWORK, SERVER).preferred(mac, 0) for mac in macs]  # where the hash points
    assert [Leases(NETWORK, SERVER).offer(mac, None, 0) for mac in macs[:1]] == first[:1]
    assert len(set(first)) == 50  # each a different one
    hosts = {ipaddress.ip_address(a) for a in first}
    assert all(h in NETWORK and h not in (NETWORK.network_address, NETWORK.broadcast_address)
               and h.packed != SERVER for h in hosts)


def test_a_full_pool_offers_nothing_and_a_lapsed_offer_is_reused():
    network = ipaddress.ip_network("198.51.100.0/29")  # .1-.6, .2 the server's: 5 to lease
    table = Leases(network, SERVER)
    macs = [("tap0", mac2str(f"52:54:00:00:01:{i:02x}")) for i in range(6)]
    offered = [table.offer(mac, None, 0) for mac in macs]
    assert offered[-1] is None and None not in offered[:5]
    assert table.offer(macs[5], None, 61.0) is not None  # the others' offers lapsed


def test_the_table_is_bounded(monkeypatch):
    monkeypatch.setattr(arp_icmp_vlan0, "LEASES_KEPT", 8)
    table = Leases(ipaddress.ip_network("198.51.0.0/16"), SERVER)
    for i in range(20):
        table.offer((f"tap{i}", mac2str(f"52:54:00:00:02:{i:02x}")), None, 0)
    assert len(table.by_client) == 8 and len(table.holder) == 8
    bound = ("tap99", mac2str("52:54:00:00:03:00"))
    assert table.bind(bound, table.preferred(bound, 0), 0)
    assert table.by_client[bound].state == "bound" and len(table.by_client) == 8


# -- the verdict, at each client's pace

def play(sequence, dhcp=None):
    """(time, frame) pairs through the server and its verdicts, as the
    loop feeds them; the verdicts formed or changed, with when."""
    dhcp = dhcp or server()[0]
    changes = []
    for now, frame in sequence:
        answer = ask(dhcp, frame, now)
        client = observed(dhcp, "tap0", frame, answer, now)
        if client is not None:
            changes.append((now, client.verdict))
    return dhcp, changes


@pytest.mark.parametrize("client, pace", [
    ("udhcpc", (0, 3, 6)),          # -T 3: every 3 s
    ("dhclient", (0, 4, 12)),       # RFC 2131 back-off from about 4 s
    ("networkd", (0, 1, 3)),        # faster
])
def test_discovers_repeated_after_answered_offers_drop(client, pace):
    dhcp, changes = play([(t, client_message("discover")) for t in pace])
    assert changes == [(pace[-1], "drops")]
    [record] = dhcp.clients.values()
    assert record.summary().endswith(
        f"sent 3 DHCPDISCOVERs in {pace[-1]:.1f} s and every one was answered: it drops "
        "DHCP offers tagged vlan 0, p 0 (compare with --untagged)")
    assert overall_status([dhcp]) == EXIT_DROPS


def test_discovers_too_far_apart_are_no_run():
    _, changes = play([(t, client_message("discover")) for t in (0, 100, 200)])
    assert changes == []


def test_a_request_for_the_offer_accepts_and_its_use_accepts_the_ack():
    dhcp = server()[0]
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    dhcp = server()[0]
    probe = bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                  ARP(op=1, hwsrc=PEER_MAC, psrc="0.0.0.0", pdst=offered))
    dhcp, changes = play([
        (0.0, client_message("discover")),
        (0.5, client_message("discover")),  # a retry before the first offer arrived
        (0.52, client_message("request", requested_addr=offered, server_id="198.51.100.2")),
        (1.0, probe)], dhcp)
    assert changes == [(0.52, "accepts"), (1.0, "accepts")]
    [record] = dhcp.clients.values()
    assert record.summary() == (
        f"tap0: guest {PEER_MAC} ({offered}) accepts DHCP offers and ACKs tagged vlan 0, p 0: "
        f"480.0 ms after the answer it used {offered}")
    assert [e["event"] for e in record.evidence] == [
        "DHCPDISCOVER", "DHCPDISCOVER", "DHCPREQUEST", "accepted", "accepted"]
    assert all_settled([dhcp]) and overall_status([dhcp]) == EXIT_OK


def test_requests_repeated_after_answered_acks_drop_them():
    dhcp = server()[0]
    offered = Ether(ask(dhcp, client_message("discover")).reply)[BOOTP].yiaddr
    request = client_message("request", requested_addr=offered)  # INIT-REBOOT: no server id
    dhcp, changes = play([(t, request) for t in (10, 14, 22)], dhcp)
    assert changes == [(22, "drops")]
    assert "sent 3 DHCPREQUESTs in 12.0 s and every one was answered: it drops DHCP ACKs" in \
        next(iter(dhcp.clients.values())).summary()


# -- the command line

@pytest.mark.parametrize("argv, message", [
    (["--dhcp", "tap0"], "--dhcp needs the tool's address in an IPv4 prefix"),
    (["--ip", "198.51.100.0/24", "--dhcp", "tap0"], "--dhcp needs the tool's address"),
    (["--ip", "198.51.100.2", "--dhcp", "tap0"], "--dhcp needs the tool's address"),
    (["--ra", "--ip", "2001:db8::2/48", "tap0"], "--ra needs the IPv6 /64"),
    (["--ip", "198.51.100.2/24", "--ip", "2001:db8::2/64", "-6", "--dhcp", "tap0"],
     "--dhcp is IPv4: not with -6"),
    (["--router-lifetime", "30", "tap0"], "--router-lifetime goes with --ra"),
])
def test_services_need_their_prefix(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_pool_is_the_prefix_the_tools_address_is_in():
    args = parse_args(["--ip", "203.0.113.0/24", "--ip", "198.51.100.2/24", "--dhcp", "tap0"])
    assert dhcp_pool(args.targets) == (NETWORK, SERVER)
    assert scope_from(args).leased == {}


# -- Router Advertisements

def advertiser(framing=Framing(), lifetime=0):
    scope = Scope(mac=MAC, targets=(PREFIX,), families=frozenset({6}))
    return Advertiser(PREFIX, lifetime, scope, framing)


def solicitation(src="fe80::5054:ff:fe12:3456", option=True):
    frame = Ether(src=PEER_MAC, dst="33:33:00:00:00:02") / IPv6(src=src, dst="ff02::2",
                                                               hlim=255) / ICMPv6ND_RS()
    if option:
        frame /= ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    return bytes(frame)


def solicit(ra, frame, now=0.0):
    _, offset = ethertype_and_offset(frame)
    return ra.answer("tap0", frame, ETH_P_IPV6, offset, now)


def answered(ra, frame, now=0.0):
    """The Router Advertisement that `ra` sends in answer to `frame` a
    moment later (RFC 4861 6.2.6), or None if it takes none."""
    answer = solicit(ra, frame, now)
    if answer is None:
        return None
    assert answer.reply is None  # taken: the answer goes a moment later
    observed(ra, "tap0", frame, answer, now)
    at = answer.request[1]
    assert now <= at <= now + MAX_RA_DELAY_TIME
    frames, _ = ra.send_due(at, {"tap0"})
    return frames[0][1]  # the answers go before the unsolicited ones


def test_the_advertisement_to_a_soliciter():
    frame = Ether(answered(advertiser(lifetime=0), solicitation()))
    assert frame[Dot1Q].vlan == 0 and (frame.src, frame.dst) == (MAC, PEER_MAC)
    ip6 = frame[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == (tool_link_local(MAC), "fe80::5054:ff:fe12:3456", 255)
    ra = frame[ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == (
        64, 0, 0, 0, 0, 0)
    assert frame[ICMPv6NDOptSrcLLAddr].lladdr == MAC
    info = frame[ICMPv6NDOptPrefixInfo]
    assert (info.prefix, info.prefixlen, info.L, info.A, info.validlifetime,
            info.preferredlifetime) == ("2001:db8::", 64, 1, 1, 86400, 14400)
    fresh = frame.copy()
    del fresh[ICMPv6ND_RA].cksum
    assert bytes(Ether(bytes(fresh))) == bytes(frame)


def test_a_solicitation_from_unspecified_is_answered_to_all_nodes():
    frame = Ether(answered(advertiser(), solicitation(src="::", option=False)))
    assert (frame.dst, frame[IPv6].dst) == ("33:33:00:00:00:01", "ff02::1")
    assert solicit(advertiser(), solicitation(src="::", option=True)) is None  # RFC 4861 6.1.1
    hop_limit_64 = solicitation().replace(b"\xff\x02", b"\xff\x02", 1)
    hop_limit_64 = hop_limit_64[:21] + b"\x40" + hop_limit_64[22:]
    assert solicit(advertiser(), hop_limit_64) is None


def test_the_router_lifetime_is_asked_for():
    frame = Ether(answered(advertiser(lifetime=1800), solicitation()))
    assert frame[ICMPv6ND_RA].routerlifetime == 1800


def dad(target):
    group = "ff02::1:ff" + target.split(":")[-1][-2:].rjust(2, "0")
    return bytes(Ether(src=PEER_MAC, dst="33:33:ff:00:00:01") /
                 IPv6(src="::", dst=group, hlim=255) / ICMPv6ND_NS(tgt=target))


def test_slaac_after_the_advertisement_accepts_and_repeated_solicitations_drop():
    ra = advertiser()
    answer = solicit(ra, solicitation(), 0.0)
    observed(ra, "tap0", solicitation(), answer, 0.0)
    at = answer.request[1]  # when the answer goes
    ra.send_due(at, {"tap0"})
    changed = observed(ra, "tap0", dad("2001:db8::5054:ff:fe12:3456"), None, at + 0.9)
    assert changed.verdict == "accepts" and changed.address == "2001:db8::5054:ff:fe12:3456"
    assert changed.summary().endswith(
        "accepts Router Advertisements tagged vlan 0, p 0: 900.0 ms after the answer it took "
        "2001:db8::5054:ff:fe12:3456")
    ra = advertiser()
    outcomes = [observed(ra, "tap0", solicitation(), solicit(ra, solicitation(), t), t)
                for t in (0.0, 4.0, 8.0)]  # Linux: 4 s apart
    assert outcomes[:2] == [None, None] and outcomes[2].verdict == "drops"
    assert "sent 3 Router Solicitations in 8.0 s" in outcomes[2].summary()
    # DAD for an address outside the prefix (its link-local) tells nothing.
    ra = advertiser()
    observed(ra, "tap0", solicitation(), solicit(ra, solicitation()), 0.0)
    assert observed(ra, "tap0", dad("fe80::5054:ff:fe12:3456"), None, 1.0) is None


def test_unsolicited_advertisements_at_rfc_4861s_pace():
    ra = advertiser()
    now = 100.0
    frames, _ = ra.send_due(now, {"tap0"})
    sent = [now] * len(frames)
    while now < 100.0 + 2000:
        now += ra.due(now)
        frames, _ = ra.send_due(now, {"tap0"})
        sent += [now] * len(frames)
    assert [t - 100.0 for t in sent[:3]] == list(RA_INITIAL)
    gaps = [b - a for a, b in zip(sent[2:], sent[3:])]
    assert gaps and all(200 <= gap <= 600 for gap in gaps)
    frame = Ether(ra.send_due(sent[-1] + 601, {"tap0"})[0][0][1])
    assert (frame.dst, frame[IPv6].dst) == ("33:33:00:00:00:01", "ff02::1")


def test_slaac_from_an_unsolicited_advertisement_accepts_too():
    ra = advertiser()
    assert observed(ra, "tap0", dad("2001:db8::5054:ff:fe12:3456"), None, 1.0) is None  # none sent
    ra.send_due(5.0, {"tap0"})
    client = observed(ra, "tap0", dad("2001:db8::5054:ff:fe12:3456"), None, 5.5)
    assert client.verdict == "accepts" and client.reason[0] == 0.5


# -- whatever a guest sends: no exception, and an answer only to a well-formed ask

def probe_answers():
    """An ARP reply, an echo reply and an advertisement to the tool."""
    return [bytes(Ether(src=PEER_MAC, dst=MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc="198.51.100.1",
                                                     hwdst=MAC, pdst="198.51.100.2")),
            bytes(Ether(src=PEER_MAC, dst=MAC) / IP(src="198.51.100.1", dst="198.51.100.2") /
                  ICMP(type=0, id=0x4242, seq=1)),
            bytes(Ether(src=PEER_MAC, dst=MAC) / IPv6(src="2001:db8::1", dst=tool_link_local(MAC),
                                                      hlim=255) / ICMPv6ND_NA(tgt="2001:db8::1"))]


SEEDS = [client_message("discover"),
         client_message("request", requested_addr="198.51.100.9", server_id="198.51.100.2"),
         client_message("release", ciaddr="198.51.100.9"), solicitation(),
         solicitation(src="::", option=False), dad("2001:db8::1")] + probe_answers()


def feed_everything(frame, framing=Framing(vlans=(5,), prio=3)):
    """The frame through every guest-facing parser of the services and the
    probe, as the loop runs them; whatever they answer must be a well-formed
    answer to a station: tagged as configured, from the tool's MAC, to the
    asker's MAC (or the group it is for), dissecting as one message."""
    dhcp = DhcpServer(NETWORK, SERVER, Scope(mac=MAC, targets=(NETWORK,), own=(SERVER,),
                                             leased={}), framing)
    prober = Prober((ipaddress.ip_address("198.51.100.1").packed,),
                    Scope(mac=MAC, targets=(NETWORK,), own=(SERVER,)), framing, 0x4242)
    prober.send_due(0.0, {"tap0"})
    ra = advertiser(framing)
    ra.send_due(0.0, {"tap0"})  # the first unsolicited one, out of the way
    services = [prober, dhcp, ra]
    ethertype, offset = ethertype_and_offset(frame)
    answer, by = answer_with(services, "tap0", frame, ethertype, offset, 0.5)
    observe_with(services, exchange("tap0", frame, answer, 0.5, by))
    if answer is None:
        return None
    asker = str2mac(frame[6:12])
    assert not frame[6] & 1 and frame[6:12] != mac2str(MAC), "answered a group or itself"
    if by is prober:
        assert answer.reply is None and parse_probe_answer(frame, mac2str(MAC), 0x4242)
        return "probe"
    if by is dhcp:
        replies = [answer.reply]
        assert Ether(answer.reply).dst in (asker, "ff:ff:ff:ff:ff:ff")
    else:
        assert by is ra and answer.reply is None
        replies = [f for _, f, _ in ra.send_due(answer.request[1], {"tap0"})[0]]
        assert len(replies) == 1 and Ether(replies[0]).dst in (asker, "33:33:00:00:00:01")
    for reply in replies:
        packet = Ether(reply)
        assert packet.src == MAC and (packet[Dot1Q].vlan, packet[Dot1Q].prio) == (5, 3)
        assert not packet[Dot1Q].payload.haslayer(Dot1Q)  # one tag, exactly
        if by is dhcp:
            assert packet.haslayer(BOOTP) and packet[BOOTP].op == 2 and packet[UDP].dport == 68
            assert packet[DHCP].options[0][0] == "message-type"
        else:
            assert packet.haslayer(ICMPv6ND_RA) and packet[IPv6].hlim == 255
            fresh = packet.copy()
            del fresh[ICMPv6ND_RA].cksum
            assert bytes(Ether(bytes(fresh))) == bytes(packet), "its checksum"
    return "dhcp" if by is dhcp else "ra"


def test_the_seeds_are_answered_and_checked_as_any_answer_is():
    # So that the property tests below check answers, not silence alone.
    answered = [feed_everything(seed) for seed in SEEDS]
    assert answered.count("dhcp") == 2 and answered.count("ra") == 2, answered
    assert answered.count("probe") == 1, answered  # the ARP reply: a probe went out


@given(st.binary(max_size=600))
def test_random_bytes_never_raise_in_the_services_or_the_probe(frame):
    feed_everything(frame)


@given(st.sampled_from(SEEDS), st.integers(0, 300), st.lists(st.integers(0, 10_000),
                                                             max_size=4))
def test_truncated_and_bit_flipped_service_frames(seed, cut, flips):
    feed_everything(truncated_and_flipped(seed, cut, flips))
