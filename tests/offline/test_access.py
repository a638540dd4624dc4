# SPDX-License-Identifier: GPL-2.0-only
"""--dhcp6, --pppoe, --dot1x and the guests' own framing, offline: every
field of the answers after a bytes() round trip against Scapy's dissection,
the bindings' and sessions' determinism and bounds (one interface cannot
take or end another's), timed sequences through each verdict at the real
clients' pace, and the parsers under random and mutated frames."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dhcp6 import (DUID_LL, DHCP6_Advertise, DHCP6_Confirm, DHCP6_Decline,
                                DHCP6_InfoRequest, DHCP6_Rebind, DHCP6_Release, DHCP6_Renew,
                                DHCP6_Reply, DHCP6_Request, DHCP6_Solicit, DHCP6OptClientId,
                                DHCP6OptIA_NA, DHCP6OptIA_PD, DHCP6OptIAAddress,
                                DHCP6OptPref, DHCP6OptRapidCommit,
                                DHCP6OptServerId, DHCP6OptStatusCode)
from scapy.layers.eap import EAP, EAP_MD5, EAPOL
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6ND_RA, IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE, PPPoED, PPPoED_Tags

import arp_icmp_vlan0
from arp_icmp_vlan0 import (ACCEPTS, BINDINGS_PER_INTERFACE, DHCP6_FILTER, DROPS, EAPOL_FILTER,
                            EXIT_DROPS, EXIT_OK, NO_VERDICT, PPPOE_FILTER,
                            SESSIONS_PER_INTERFACE, Advertiser, Budget, DhcpServer,
                            Dhcp6Server, Dot1xAuthenticator, Framing, Framings, PppoeServer,
                            Replies, Scope, Settings, answer_with, ethertype_and_offset,
                            observe_with, overall_status, parse_args, services_from,
                            tags_text)
from arp_icmp_vlan0 import tags_of as frame_tags
from checks import exchange, feed
from frames import (MAC, PEER_LL, PEER_MAC, access_seeds, dhcp6_message, eapol,
                    pppoe_discovery, truncated_and_flipped)

PREFIX = ipaddress.ip_network("2001:db8::/64")
OWN = ipaddress.ip_address("2001:db8::2").packed
DELEGATE = (ipaddress.ip_network("2001:db8:100::/40"), 56)
OTHER_MAC = "52:54:00:ab:cd:ef"
TOOL_LL = "fe80::76:6cff:fe61:6e30"
SERVER_ID = DHCP6OptServerId(duid=DUID_LL(lladdr=MAC))


def dhcp6_server(framing=Framing(), delegate=DELEGATE):
    scope = Scope(mac=MAC, targets=(PREFIX,), own=(OWN,), leased={})
    return Dhcp6Server(PREFIX, OWN, delegate, scope, framing), scope


def first(answer):
    """The answer's frame, dissected from its bytes."""
    return Ether(answer.reply)


# -- DHCPv6: the answers, field by field

def test_advertise_fields_and_options():
    dhcp6, _ = dhcp6_server()
    solicit = dhcp6_message(DHCP6_Solicit(trid=0xABCDEF), DHCP6OptIA_NA(iaid=7),
                            DHCP6OptIA_PD(iaid=9))
    answer, _ = feed(dhcp6, "tap0", solicit, 0.0)
    packet = first(answer)
    assert answer.kind == "dhcp6" and packet.src == MAC and packet.dst == PEER_MAC
    assert (packet[Dot1Q].vlan, packet[Dot1Q].prio, packet[Dot1Q].type) == (0, 0, 0x86DD)
    assert (packet[IPv6].src, packet[IPv6].dst, packet[IPv6].hlim) == (TOOL_LL, PEER_LL, 64)
    assert (packet[UDP].sport, packet[UDP].dport) == (547, 546)
    advertise = packet[DHCP6_Advertise]
    assert advertise.trid == 0xABCDEF
    # The Client Identifier exactly as it came; the tool's DUID-LL; preference 255.
    assert bytes(packet[DHCP6OptClientId])[:18] == bytes(Ether(solicit)[DHCP6OptClientId])[:18]
    assert bytes(packet[DHCP6OptServerId].duid) == b"\x00\x03\x00\x01" + bytes.fromhex(
        MAC.replace(":", ""))
    assert packet[DHCP6OptPref].prefval == 255
    assert not packet.haslayer(DHCP6OptRapidCommit)
    na, pd = packet[DHCP6OptIA_NA], packet[DHCP6OptIA_PD]
    assert (na.iaid, na.T1, na.T2) == (7, 1800, 2880)
    address = na.ianaopts[0]
    assert ipaddress.ip_address(address.addr) in PREFIX and address.addr != "2001:db8::2"
    assert (address.preflft, address.validlft) == (3600, 7200)
    assert (pd.iaid, pd.T1, pd.T2) == (9, 1800, 2880)
    prefix = pd.iapdopt[0]
    delegated = ipaddress.ip_network(f"{prefix.prefix}/{prefix.plen}")
    assert prefix.plen == 56 and delegated.subnet_of(DELEGATE[0])
    assert (prefix.preflft, prefix.validlft) == (3600, 7200)
    fresh = packet.copy()
    del fresh[UDP].chksum, fresh[IPv6].plen, fresh[UDP].len
    assert bytes(Ether(bytes(fresh))) == bytes(packet), "its lengths and checksum"


def test_request_naming_the_tool_is_replied_with_the_same_address_and_accepts():
    dhcp6, scope = dhcp6_server()
    advertised, _ = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Solicit(trid=1),
                                                      DHCP6OptIA_NA(iaid=7)), 0.0)
    offered = first(advertised)[DHCP6OptIA_NA].ianaopts[0].addr
    answer, changed = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Request(trid=2), SERVER_ID,
                                                        DHCP6OptIA_NA(iaid=7)), 1.05)
    packet = first(answer)
    assert packet.haslayer(DHCP6_Reply) and packet[DHCP6_Reply].trid == 2
    assert packet[DHCP6OptIA_NA].ianaopts[0].addr == offered
    assert not packet.haslayer(DHCP6OptRapidCommit) and not packet.haslayer(DHCP6OptPref)
    client, = changed
    assert client.verdict == ACCEPTS and client.reason[0] == pytest.approx(1.05)
    assert f"accepts DHCPv6 Advertises tagged vlan 0, p 0: 1050.0 ms after the answer it " \
           f"requested {offered}" in client.summary()
    # The tool no longer answers for the guest's address (its NS, a neighbour's).
    assert ipaddress.ip_address(offered).packed in scope.leased
    assert not scope.answers_for(ipaddress.ip_address(offered).packed)


def test_request_naming_another_server_is_not_answered():
    dhcp6, _ = dhcp6_server()
    other = DHCP6OptServerId(duid=DUID_LL(lladdr=OTHER_MAC))
    answer, _ = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Request(trid=2), other,
                                                  DHCP6OptIA_NA(iaid=7)), 0.0)
    assert answer is None


@pytest.mark.parametrize("message,options", [
    (DHCP6_Solicit(trid=1), (SERVER_ID,)),   # a Solicit names no server
    (DHCP6_Request(trid=1), ()),             # a Request must
    (DHCP6_Renew(trid=1), ()),
    (DHCP6_Rebind(trid=1), (SERVER_ID,)),
    (DHCP6_InfoRequest(trid=1), (DHCP6OptIA_NA(iaid=1),)),
])
def test_messages_invalid_as_rfc_8415_16_says_are_discarded(message, options):
    dhcp6, _ = dhcp6_server()
    answer, _ = feed(dhcp6, "tap0", dhcp6_message(message, *options), 0.0)
    assert answer is None


def test_no_client_identifier_and_a_global_source_are_discarded():
    dhcp6, _ = dhcp6_server()
    assert feed(dhcp6, "tap0", dhcp6_message(DHCP6_Solicit(trid=1), client_id=False),
                0.0)[0] is None
    assert feed(dhcp6, "tap0", dhcp6_message(DHCP6_Solicit(trid=1), src="2001:db8::1"),
                0.0)[0] is None


def test_rapid_commit_with_an_address_is_a_reply_and_its_dad_accepts():
    dhcp6, _ = dhcp6_server()
    answer, changed = feed(dhcp6, "tap0", dhcp6_message(
        DHCP6_Solicit(trid=3), DHCP6OptRapidCommit(), DHCP6OptIA_NA(iaid=1)), 0.0)
    packet = first(answer)
    assert packet.haslayer(DHCP6_Reply) and packet.haslayer(DHCP6OptRapidCommit)
    assert changed == []
    address = packet[DHCP6OptIA_NA].ianaopts[0].addr
    dad = bytes(Ether(src=PEER_MAC, dst="33:33:ff:00:00:01") /
                IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=address))
    client, = dhcp6.observe(exchange("tap0", dad, None, 0.4))
    assert client.verdict == ACCEPTS and client.used and f"used {address}" in client.summary()


def test_rapid_commit_for_a_prefix_alone_is_advertised_so_that_a_request_tells():
    dhcp6, _ = dhcp6_server()
    answer, _ = feed(dhcp6, "tap0", dhcp6_message(
        DHCP6_Solicit(trid=3), DHCP6OptRapidCommit(), DHCP6OptIA_PD(iaid=1)), 0.0)
    assert first(answer).haslayer(DHCP6_Advertise)


def test_three_solicits_at_dhclients_pace_drop_and_a_restart_is_not_a_repeat():
    dhcp6, _ = dhcp6_server(Framing(prio=6))
    solicit = dhcp6_message(DHCP6_Solicit(trid=5), DHCP6OptIA_NA(iaid=1))
    changed = [feed(dhcp6, "tap0", solicit, now)[1] for now in (0.0, 1.1, 3.3)]
    assert changed[:2] == [[], []]
    client, = changed[2]
    assert client.verdict == DROPS and overall_status([dhcp6]) == EXIT_DROPS
    assert "sent 3 Solicits in 3.3 s and every one was answered: it drops DHCPv6 " \
           "Advertises tagged vlan 0, p 6 (compare with --untagged)" in client.summary()
    # networkd starts over at once with a new transaction: no repeat.
    other, _ = dhcp6_server()
    for now, trid in ((0.0, 1), (0.1, 2), (0.2, 3)):
        _, changed = feed(other, "tap0", dhcp6_message(DHCP6_Solicit(trid=trid),
                                                       DHCP6OptIA_NA(iaid=1)), now)
        assert changed == []


def test_bindings_are_the_same_for_a_mac_and_apart_for_interfaces():
    one, _ = dhcp6_server()
    two, _ = dhcp6_server()
    solicit = dhcp6_message(DHCP6_Solicit(trid=1), DHCP6OptIA_NA(iaid=1), DHCP6OptIA_PD(iaid=2))
    a = first(feed(one, "tap0", solicit, 0.0)[0])
    b = first(feed(two, "tap0", solicit, 0.0)[0])  # after a restart, the same
    assert a[DHCP6OptIA_NA].ianaopts[0].addr == b[DHCP6OptIA_NA].ianaopts[0].addr
    assert a[DHCP6OptIA_PD].iapdopt[0].prefix == b[DHCP6OptIA_PD].iapdopt[0].prefix
    c = first(feed(one, "tap1", solicit, 0.0)[0])  # the same MAC elsewhere: another client
    assert c[DHCP6OptIA_NA].ianaopts[0].addr != a[DHCP6OptIA_NA].ianaopts[0].addr
    assert c[DHCP6OptIA_PD].iapdopt[0].prefix != a[DHCP6OptIA_PD].iapdopt[0].prefix


def test_a_release_frees_only_the_clients_own_binding():
    dhcp6, _ = dhcp6_server()
    request = dhcp6_message(DHCP6_Request(trid=1), SERVER_ID, DHCP6OptIA_NA(iaid=1))
    address = first(feed(dhcp6, "tap0", request, 0.0)[0])[DHCP6OptIA_NA].ianaopts[0].addr
    release = dhcp6_message(DHCP6_Release(trid=2), SERVER_ID, DHCP6OptIA_NA(
        iaid=1, ianaopts=[DHCP6OptIAAddress(addr=address)]))
    answer, _ = feed(dhcp6, "tap1", release, 1.0)  # the same MAC on another interface
    assert first(answer)[DHCP6OptStatusCode].statuscode == 0
    assert len(dhcp6.bindings.by_ia) == 1, "another interface's Release freed it"
    feed(dhcp6, "tap0", release, 1.0)
    assert dhcp6.bindings.by_ia == {}


def test_a_declined_address_is_not_handed_out_again():
    dhcp6, _ = dhcp6_server()
    request = dhcp6_message(DHCP6_Request(trid=1), SERVER_ID, DHCP6OptIA_NA(iaid=1))
    address = first(feed(dhcp6, "tap0", request, 0.0)[0])[DHCP6OptIA_NA].ianaopts[0].addr
    feed(dhcp6, "tap0", dhcp6_message(DHCP6_Decline(trid=2), SERVER_ID, DHCP6OptIA_NA(
        iaid=1, ianaopts=[DHCP6OptIAAddress(addr=address)])), 1.0)
    again = first(feed(dhcp6, "tap0", request, 2.0)[0])[DHCP6OptIA_NA].ianaopts[0].addr
    assert again != address


def test_one_interface_holds_its_share_and_the_next_is_refused_with_a_status():
    dhcp6, _ = dhcp6_server()
    dhcp6.budget = Budget(float("inf"), float("inf"))
    for i in range(BINDINGS_PER_INTERFACE):
        mac = f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        answer, _ = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Request(trid=i), SERVER_ID,
                                                      DHCP6OptIA_NA(iaid=1), mac=mac), 0.0)
        assert first(answer)[DHCP6OptIA_NA].ianaopts[0].haslayer(DHCP6OptIAAddress)
    answer, _ = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Request(trid=99), SERVER_ID,
                                                  DHCP6OptIA_NA(iaid=1)), 0.0)
    assert first(answer)[DHCP6OptIA_NA].ianaopts[0].statuscode == 2  # NoAddrsAvail
    assert dhcp6.bindings.refused == {"tap0": 1}
    assert "1 DHCPv6 addresses or prefixes refused" in " ".join(dhcp6.lines())
    answer, _ = feed(dhcp6, "tap1", dhcp6_message(DHCP6_Request(trid=99), SERVER_ID,
                                                  DHCP6OptIA_NA(iaid=1)), 0.0)
    assert first(answer)[DHCP6OptIA_NA].ianaopts[0].haslayer(DHCP6OptIAAddress)


def test_a_flood_is_refused_after_a_cheap_look_past_the_interfaces_budget():
    dhcp6, _ = dhcp6_server()
    solicit = dhcp6_message(DHCP6_Solicit(trid=1), DHCP6OptIA_NA(iaid=1))
    answered = [feed(dhcp6, "tap0", solicit, 0.0)[0] is not None for _ in range(33)]
    assert answered == [True] * 32 + [False] and dhcp6.budget.over == {"tap0": 1}
    assert feed(dhcp6, "tap1", solicit, 0.0)[0] is not None  # another interface's own budget


def test_information_request_alone_is_no_verdict_with_its_reason():
    dhcp6, _ = dhcp6_server()
    answer, changed = feed(dhcp6, "tap0", dhcp6_message(DHCP6_InfoRequest(trid=4)), 0.0)
    packet = first(answer)
    assert packet.haslayer(DHCP6_Reply) and not packet.haslayer(DHCP6OptIA_NA)
    client, = changed
    assert client.verdict == NO_VERDICT and "Information-requests" in client.summary()


def test_confirm_says_whether_the_addresses_are_on_link():
    dhcp6, _ = dhcp6_server()
    for address, status in (("2001:db8::1:2", 0), ("2001:db8:9::1", 4)):
        answer, _ = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Confirm(trid=1), DHCP6OptIA_NA(
            iaid=1, ianaopts=[DHCP6OptIAAddress(addr=address)])), 0.0)
        assert first(answer)[DHCP6OptStatusCode].statuscode == status


def test_renew_after_the_reply_accepts_a_rapid_commit_client():
    dhcp6, _ = dhcp6_server()
    feed(dhcp6, "tap0", dhcp6_message(DHCP6_Solicit(trid=3), DHCP6OptRapidCommit(),
                                      DHCP6OptIA_NA(iaid=1)), 0.0)
    _, changed = feed(dhcp6, "tap0", dhcp6_message(DHCP6_Renew(trid=4), SERVER_ID,
                                                   DHCP6OptIA_NA(iaid=1)), 1800.0)
    client, = changed
    assert client.verdict == ACCEPTS and "sent a Renew" in client.summary()


def test_the_ra_says_managed_when_dhcp6_runs_too():
    settings = Settings(("tap0",), Scope(mac=MAC, targets=(PREFIX,), own=(OWN,), leased={}),
                        ra=PREFIX, dhcp6=(PREFIX, OWN))
    advertiser, = [s for s in services_from(settings) if isinstance(s, Advertiser)]
    ra = ICMPv6ND_RA(advertiser.message)
    assert (ra.M, ra.O) == (1, 1)
    plain = Advertiser(PREFIX, 0, settings.scope, Framing())
    assert (ICMPv6ND_RA(plain.message).M, ICMPv6ND_RA(plain.message).O) == (0, 0)


# -- PPPoE discovery

def pppoe_server(framing=Framing()):
    return PppoeServer("avz-ac", Scope(mac=MAC), framing)


def tags_of(packet):
    return {tag.tag_type: tag.tag_value for tag in packet[PPPoED_Tags].tag_list}


def padi(service=b"", uniq=b"\x01\x02", mac=PEER_MAC):
    return pppoe_discovery(0x09, (0x0101, service), (0x0103, uniq), (0x0110, b"relay"),
                           mac=mac)


def test_pado_fields_and_tags():
    server = pppoe_server(Framing(prio=6))
    answer, changed = feed(server, "tap0", padi(b"internet"), 0.0)
    packet = first(answer)
    assert (packet.src, packet.dst) == (MAC, PEER_MAC)
    assert (packet[Dot1Q].vlan, packet[Dot1Q].prio, packet[Dot1Q].type) == (0, 6, 0x8863)
    assert (packet[PPPoED].version, packet[PPPoED].type, packet[PPPoED].code,
            packet[PPPoED].sessionid) == (1, 1, 0x07, 0)
    tags = tags_of(packet)
    assert tags[0x0102] == b"avz-ac" and tags[0x0101] == b"internet"
    assert tags[0x0103] == b"\x01\x02" and tags[0x0110] == b"relay"
    assert tags[0x0104] == server.cookie("tap0", bytes.fromhex(PEER_MAC.replace(":", "")))
    assert len(tags[0x0104]) == 16
    assert packet[PPPoED].len == len(bytes(packet[PPPoED_Tags]))
    assert changed == []


def test_padr_with_the_cookie_gets_a_session_and_accepts_the_pado():
    server = pppoe_server()
    cookie = tags_of(first(feed(server, "tap0", padi(), 0.0)[0]))[0x0104]
    padr = pppoe_discovery(0x19, (0x0101, b""), (0x0104, cookie), (0x0103, b"\x01\x02"),
                           dst=MAC)
    answer, changed = feed(server, "tap0", padr, 0.25)
    packet = first(answer)
    assert packet[PPPoED].code == 0x65 and packet[PPPoED].sessionid != 0
    assert tags_of(packet) == {0x0101: b"", 0x0103: b"\x01\x02"}
    client, = changed
    assert client.verdict == ACCEPTS and "accepts PPPoE PADOs tagged vlan 0, p 0: 250.0 ms " \
        "after the answer it sent a PADR with its cookie" in client.summary()
    # Its first session frame: the PADS arrived; a PADT says there is no PPP here.
    session = packet[PPPoED].sessionid
    lcp = bytes(Ether(src=PEER_MAC, dst=MAC) / PPPoE(sessionid=session) / PPP(proto=0xC021) /
                b"\x01\x01\x00\x04")
    answer, changed = feed(server, "tap0", lcp, 0.5)
    padt = first(answer)
    assert padt[PPPoED].code == 0xA7 and padt[PPPoED].sessionid == session
    assert b"no PPP" in tags_of(padt)[0x0203]
    client, = changed
    assert client.used and "accepts PPPoE PADOs and PADS" in client.summary()
    assert feed(server, "tap0", lcp, 0.6)[0] is None  # the session is over


def test_until_verdict_waits_a_moment_after_the_pads_for_the_session():
    server = pppoe_server()
    cookie = tags_of(first(feed(server, "tap0", padi(), 0.0)[0]))[0x0104]
    pads = first(feed(server, "tap0", pppoe_discovery(0x19, (0x0101, b""), (0x0104, cookie),
                                                      dst=MAC), 0.1)[0])
    assert not server.decided() and server.due(0.1) == pytest.approx(3.0)
    assert server.send_due(2.0, {"tap0"}) == ([], []) and not server.decided()
    server.send_due(3.2, {"tap0"})
    assert server.decided() and server.due(3.2) == arp_icmp_vlan0.LONGEST_WAIT
    # pppd's LCP at once: decided then, the PADS accepted too.
    other = pppoe_server()
    cookie = tags_of(first(feed(other, "tap0", padi(), 0.0)[0]))[0x0104]
    session = first(feed(other, "tap0", pppoe_discovery(
        0x19, (0x0101, b""), (0x0104, cookie), dst=MAC), 0.1)[0])[PPPoED].sessionid
    feed(other, "tap0", bytes(Ether(src=PEER_MAC, dst=MAC) / PPPoE(sessionid=session) /
                              PPP(proto=0xC021) / b"\x01\x01\x00\x04"), 0.2)
    assert other.decided() and pads[PPPoED].code == 0x65


def test_a_padr_without_this_clients_cookie_is_not_answered():
    server = pppoe_server()
    cookie = tags_of(first(feed(server, "tap0", padi(), 0.0)[0]))[0x0104]
    for tags, mac, interface in (((0x0101, b""),), PEER_MAC, "tap0"), \
            (((0x0101, b""), (0x0104, bytes(16))), PEER_MAC, "tap0"), \
            (((0x0101, b""), (0x0104, cookie)), OTHER_MAC, "tap0"), \
            (((0x0101, b""), (0x0104, cookie)), PEER_MAC, "tap1"):
        padr = pppoe_discovery(0x19, *tags, dst=MAC, mac=mac)
        assert feed(server, interface, padr, 1.0)[0] is None, (tags, mac, interface)


def test_a_padt_ends_only_the_clients_own_session():
    server = pppoe_server()
    cookie = tags_of(first(feed(server, "tap0", padi(), 0.0)[0]))[0x0104]
    pads = first(feed(server, "tap0", pppoe_discovery(0x19, (0x0101, b""), (0x0104, cookie),
                                                      dst=MAC), 0.1)[0])
    session = pads[PPPoED].sessionid
    feed(server, "tap0", pppoe_discovery(0xA7, dst=MAC, session=session, mac=OTHER_MAC), 0.2)
    feed(server, "tap1", pppoe_discovery(0xA7, dst=MAC, session=session), 0.2)
    assert server.sessions == {("tap0", bytes.fromhex(PEER_MAC.replace(":", ""))): session}
    feed(server, "tap0", pppoe_discovery(0xA7, dst=MAC, session=session), 0.3)
    assert server.sessions == {}


def test_three_padis_at_rp_pppoes_pace_drop():
    server = pppoe_server()
    changed = [feed(server, "tap0", padi(), now)[1] for now in (0.0, 5.0, 15.0)]
    client, = changed[2]
    assert changed[:2] == [[], []] and client.verdict == DROPS
    assert "sent 3 PADIs in 15.0 s and every one was answered: it drops PPPoE PADOs " \
           "tagged vlan 0, p 0" in client.summary()


def test_padrs_repeated_after_each_pads_drop_the_pads():
    server = pppoe_server()
    cookie = tags_of(first(feed(server, "tap0", padi(), 0.0)[0]))[0x0104]
    padr = pppoe_discovery(0x19, (0x0101, b""), (0x0104, cookie), dst=MAC)
    verdicts = [[c.verdict for c in feed(server, "tap0", padr, now)[1]]
                for now in (0.1, 5.1, 15.1)]
    assert verdicts == [[ACCEPTS], [], [DROPS]]


def test_padi_not_to_broadcast_or_with_two_service_names_is_discarded():
    server = pppoe_server()
    assert feed(server, "tap0", pppoe_discovery(0x09, (0x0101, b""), dst=MAC), 0.0)[0] is None
    assert feed(server, "tap0", pppoe_discovery(0x09, (0x0101, b""), (0x0101, b"x")),
                0.0)[0] is None


def test_sessions_on_one_interface_are_capped():
    server = pppoe_server()
    server.budget = Budget(float("inf"), float("inf"))
    for i in range(SESSIONS_PER_INTERFACE + 1):
        mac = f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        cookie = tags_of(first(feed(server, "tap0", padi(mac=mac), 0.0)[0]))[0x0104]
        pads = first(feed(server, "tap0", pppoe_discovery(
            0x19, (0x0101, b""), (0x0104, cookie), dst=MAC, mac=mac), 0.0)[0])
    assert pads[PPPoED].sessionid == 0 and 0x0203 in tags_of(pads)
    assert len({s for s in server.sessions.values()}) == SESSIONS_PER_INTERFACE
    assert server.refused == {"tap0": 1}


# -- 802.1X

def authenticator(framing=Framing()):
    return Dot1xAuthenticator(Scope(mac=MAC), framing)


def test_start_identity_md5_success_fields_and_verdict():
    dot1x = authenticator(Framing(prio=6))
    answer, changed = feed(dot1x, "tap0", eapol(kind=1), 0.0)
    packet = first(answer)
    assert (packet.src, packet.dst) == (MAC, PEER_MAC)
    assert (packet[Dot1Q].vlan, packet[Dot1Q].prio, packet[Dot1Q].type) == (0, 6, 0x888E)
    assert (packet[EAPOL].version, packet[EAPOL].type, packet[EAPOL].len) == (2, 0, 5)
    assert (packet[EAP].code, packet[EAP].type, packet[EAP].len) == (1, 1, 5)
    assert changed == []
    ident = packet[EAP].id
    answer, changed = feed(dot1x, "tap0", eapol(EAP(code=2, id=ident, type=1,
                                                    identity=b"user")), 0.02)
    challenge = first(answer)
    assert challenge[EAP].code == 1 and challenge.haslayer(EAP_MD5)
    assert len(challenge[EAP_MD5].value) == 16 and challenge[EAP].id != ident
    client, = changed
    assert client.verdict == ACCEPTS and "(identity 'user') accepts EAP-Requests tagged " \
        "vlan 0, p 6: 20.0 ms after the answer it answered with its identity" in client.summary()
    assert not dot1x.decided(), "--until-verdict waits for the EAP-Success"
    answer, changed = feed(dot1x, "tap0", eapol(EAP_MD5(code=2, id=challenge[EAP].id,
                                                        value=bytes(16)), dst=MAC), 0.03)
    success = first(answer)
    assert (success[EAP].code, success[EAP].id, success[EAP].len) == (3, challenge[EAP].id, 4)
    assert changed[0].used and dot1x.decided() and overall_status([dot1x]) == EXIT_OK


def test_unanswered_requests_while_starts_keep_coming_drop():
    dot1x = authenticator()
    assert feed(dot1x, "tap0", eapol(kind=1), 0.0)[1] == []
    for now in (5.0, 10.0):
        frames, _ = dot1x.send_due(now, {"tap0"})
        assert [(i, Ether(f).dst, c) for i, f, c in frames] == [
            ("tap0", "01:80:c2:00:00:03", "eap_requests")]
    assert dot1x.due(10.0) == pytest.approx(5.0)
    _, changed = feed(dot1x, "tap0", eapol(kind=1), 30.0)
    client, = changed
    assert client.verdict == DROPS and "kept sending EAPOL-Starts while 3 EAP-Requests went " \
        "unanswered in 30.0 s: it drops EAP-Requests tagged vlan 0, p 0" in client.summary()


def test_requests_to_the_pae_group_at_link_up_and_not_once_all_are_judged():
    dot1x = authenticator()
    frames, _ = dot1x.send_due(0.0, {"tap0"})
    packet = Ether(frames[0][1])
    assert packet.dst == "01:80:c2:00:00:03" and packet[EAP].type == 1
    _, changed = feed(dot1x, "tap0", eapol(EAP(code=2, id=packet[EAP].id, type=1,
                                               identity=b"u")), 0.3)
    assert changed[0].verdict == ACCEPTS and changed[0].reason[0] == pytest.approx(0.3)
    assert dot1x.send_due(5.0, {"tap0"})[0] == []


# -- the guests' own framing

@pytest.mark.parametrize("layers,text", [
    ((), "untagged"),
    ((Dot1Q(vlan=0, prio=6),), "tagged vlan 0, p 6"),
    ((Dot1Q(vlan=5, prio=0, dei=1),), "tagged vlan 5, p 0, DEI"),
    ((Dot1Q(vlan=100, type=0x8100), Dot1Q(vlan=0)), "tagged vlan 100, p 0, vlan 0, p 0"),
])
def test_tags_text_is_tcpdumps(layers, text):
    packet = Ether(src=PEER_MAC)
    for layer in layers:
        packet = packet / layer
    assert tags_text(frame_tags(bytes(packet / IP()))) == text


def test_the_verdict_line_says_how_the_guests_own_frames_came():
    scope = Scope(mac=MAC, targets=(PREFIX,), own=(OWN,), leased={})
    settings = Settings(("tap0",), scope, dhcp6=(PREFIX, OWN), delegate=DELEGATE)
    services = services_from(settings)
    assert isinstance(services[0], Framings) and services[0].needs_tags
    solicit = Ether(dhcp6_message(DHCP6_Solicit(trid=1), DHCP6OptIA_PD(iaid=1)))
    tagged = bytes(Ether(src=solicit.src, dst=solicit.dst) / Dot1Q(vlan=0, prio=6) /
                   solicit.payload)
    ethertype, offset = ethertype_and_offset(tagged)
    answer, by = answer_with(services, "tap0", tagged, ethertype, offset, 0.0)
    assert isinstance(by, Dhcp6Server)
    observe_with(services, exchange("tap0", tagged, answer, 0.0, by))
    client, = by.clients.values()
    assert client.summary().endswith("; its own frames: tagged vlan 0, p 6")
    arp = bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / bytes(28))
    answer_with(services, "tap0", arp, 0x0806, 14, 0.1)
    assert client.summary().endswith(
        "; its own frames: DHCPv6 tagged vlan 0, p 6; ARP untagged")
    assert client.to_json()["own_framing"] == [
        {"protocol": "DHCPv6", "framing": "tagged vlan 0, p 6", "frames": 1},
        {"protocol": "ARP", "framing": "untagged", "frames": 1}]


def test_expect_framing_counts_the_frames_framed_otherwise_as_a_finding():
    scope = Scope(mac=MAC)
    framings = Framings(scope, expected=((0, 6),))
    solicit = Ether(dhcp6_message(DHCP6_Solicit(trid=1), DHCP6OptIA_NA(iaid=1)))
    frames = [bytes(Ether(src=solicit.src, dst=solicit.dst) / Dot1Q(vlan=0, prio=prio) /
                    solicit.payload) for prio in (6, 6, 0)]
    frames.append(bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / bytes(28)))
    for frame in frames:
        ethertype, offset = ethertype_and_offset(frame)
        assert framings.answer("tap0", frame, ethertype, offset, 0.0) is None
    line, = framings.lines()
    assert line == (f"tap0: guest {PEER_MAC}: 2 of 4 frames not tagged vlan 0, p 6 as "
                    "expected: DHCPv6 tagged vlan 0, p 0; ARP untagged")
    record, = framings.to_json()["framing"]
    assert record["not_as_expected"] == 2
    assert framings.to_json()["expected_framing"] == "tagged vlan 0, p 6"
    assert overall_status([framings]) == arp_icmp_vlan0.EXIT_NO_VERDICT  # judges nothing
    assert framings.verdicts() == []  # a finding, not a verdict
    any_priority = Framings(scope, expected=((0, None),))
    for frame in frames[:3]:
        any_priority.answer("tap0", frame, *ethertype_and_offset(frame), 0.0)
    assert any_priority.lines() == []
    assert Framings(scope).lines() == []  # nothing expected: no finding


@pytest.mark.parametrize("text,expected", [
    ("vlan 0, p 6", ((0, 6),)), ("vlan 0", ((0, None),)), ("untagged", ()),
    ("vlan 100, p 0, vlan 0", ((100, 0), (0, None))),
])
def test_expect_framing_reads_tcpdumps_words(text, expected):
    args = parse_args(["--expect-framing", text, "tap0"])
    assert args.expect_framing == expected
    assert isinstance(services_from(Settings.from_args(args))[0], Framings)


@pytest.mark.parametrize("text", ["vlan 0, p 8", "vlan 4095", "p 6", "tagged"])
def test_expect_framing_refuses_other_words(text, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--expect-framing", text, "tap0"])
    assert "--expect-framing" in capsys.readouterr().err


def test_no_framing_with_q_alone_which_reads_frames_without_their_tags():
    quiet = Settings(("tap0",), Scope(mac=MAC), verbose=-1)
    assert [type(s) for s in services_from(quiet)] == [Replies]
    assert not any(s.needs_tags for s in services_from(quiet))
    recorded = Settings(("tap0",), Scope(mac=MAC), verbose=-1, recording=True)
    assert isinstance(services_from(recorded)[0], Framings)


# -- the command line

@pytest.mark.parametrize("argv,message", [
    (["--delegate", "2001:db8:100::/40", "tap0"], "--delegate goes with --dhcp6"),
    (["--dhcp6", "tap0"], "--dhcp6 needs an IPv6 /64"),
    (["-4", "--ip", "198.51.100.2/24", "--dhcp6", "tap0"], "--dhcp6 is IPv6"),
    (["--dhcp6", "--delegate", "2001:db8:100::/40", "--delegated-length", "32", "tap0"],
     "--delegated-length 32 is shorter"),
    (["--dhcp6", "--delegate", "2001:db8:100::1/40", "tap0"], "invalid IPv6 prefix"),
    (["--dhcp6", "--delegate", "2001:db8:100::/80", "tap0"], "/64 or shorter"),
    (["--ac-name", "x", "tap0"], "--ac-name goes with --pppoe"),
    (["--self-test", "--dot1x"], "--self-test takes no"),
])
def test_usage_errors_say_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as ended:
        parse_args(argv)
    assert ended.value.code == 2 and message in capsys.readouterr().err


def test_settings_from_the_command_line():
    args = parse_args(["--dhcp6", "--delegate", "2001:db8:100::/40", "--pppoe", "--dot1x",
                       "--ip", "2001:db8::2/64", "tap0"])
    settings = Settings.from_args(args)
    assert settings.dhcp6 == (PREFIX, OWN) and settings.delegate == DELEGATE
    assert settings.pppoe == "arp_icmp_vlan0" and settings.dot1x
    names = [type(s).__name__ for s in services_from(settings)]
    assert names == ["Framings", "Replies", "Dhcp6Server", "PppoeServer", "Dot1xAuthenticator",
                     "Roster"]
    prefixes_only = Settings.from_args(parse_args(["--dhcp6", "--delegate", "2001:db8::/48",
                                                   "--delegated-length", "60", "tap0"]))
    assert prefixes_only.dhcp6 == (None, None)
    assert prefixes_only.delegate == (ipaddress.ip_network("2001:db8::/48"), 60)


def test_filters_pass_what_the_services_read():
    from test_filter import passes
    for frame in access_seeds()[:5]:
        assert passes(Ether(frame), program=DHCP6_FILTER)
    for frame in access_seeds()[5:8]:
        assert passes(Ether(frame), program=PPPOE_FILTER)
    for frame in access_seeds()[8:]:
        assert passes(Ether(frame), program=EAPOL_FILTER)
        assert not passes(Ether(frame), program=PPPOE_FILTER)
    assert not passes(Ether(access_seeds()[0]), program=EAPOL_FILTER)


# -- hostile input: nothing raises, and whatever is answered is well formed

def all_three():
    scope = Scope(mac=MAC, targets=(PREFIX,), own=(OWN,), leased={})
    services = [Framings(scope), Dhcp6Server(PREFIX, OWN, DELEGATE, scope, Framing()),
                PppoeServer("avz", scope, Framing()), Dot1xAuthenticator(scope, Framing())]
    for service in services[1:]:
        service.budget = Budget(float("inf"), float("inf"))
    return services


def tagged(frame):
    packet = Ether(frame)
    return bytes(Ether(src=packet.src, dst=packet.dst) / Dot1Q(vlan=0, prio=6) / packet.payload)


SERVICES = all_three()
SEEDS = access_seeds() + [tagged(seed) for seed in access_seeds()]


def feed_all(frame):
    ethertype, offset = ethertype_and_offset(frame)
    answer, by = answer_with(SERVICES, "tap0", frame, ethertype, offset, 0.0)
    observe_with(SERVICES, exchange("tap0", frame, answer, 0.0, by))
    if answer is None or answer.reply is None:
        return None
    packet = Ether(answer.reply)
    assert packet.src == MAC and packet[Dot1Q].vlan == 0 and packet.dst == Ether(frame).src
    if answer.kind == "dhcp6":
        assert packet[UDP].sport == 547 and packet[IPv6].src == TOOL_LL
        assert packet.haslayer(DHCP6_Reply) or packet.haslayer(DHCP6_Advertise)
    elif answer.kind == "pppoe":
        assert packet.haslayer(PPPoED) and packet[PPPoED].code in (0x07, 0x65, 0xA7)
    else:
        assert packet.haslayer(EAP) and packet[EAP].code in (1, 3)
    return answer.kind


def test_the_seeds_are_answered():
    kinds = [feed_all(seed) for seed in SEEDS]
    assert kinds.count("dhcp6") == 10 and kinds.count("dot1x") == 6, kinds
    assert kinds.count("pppoe") == 2, kinds  # the PADI; the PADR has no cookie of this run


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(frame):
    feed_all(frame)


@given(st.sampled_from(SEEDS), st.integers(0, 200), st.lists(st.integers(0, 10_000),
                                                             max_size=4))
def test_truncated_and_bit_flipped_access_frames(seed, cut, flips):
    feed_all(truncated_and_flipped(seed, cut, flips))


@given(st.sampled_from(SEEDS), st.binary(max_size=64), st.integers(14, 120))
def test_bytes_spliced_into_access_frames(seed, junk, at):
    feed_all(seed[:at] + junk + seed[at:])


def test_the_module_names_every_new_service_in_services():
    assert arp_icmp_vlan0.SERVICES[0] is Framings
    assert {Dhcp6Server, PppoeServer, Dot1xAuthenticator} <= set(arp_icmp_vlan0.SERVICES)
    assert DhcpServer in arp_icmp_vlan0.SERVICES
