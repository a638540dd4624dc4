# SPDX-License-Identifier: GPL-2.0-only
"""-r, judging a capture, offline: crafted captures of a switch that is not
the tool (an ISP's DHCP server, a router's ARP and RA, an access
concentrator, an authenticator), each protocol through accepts and drops;
how the switch is found; pcapng (nanosecond stamps, interface names, two
interfaces, one guest forging the other's MAC); the untagged capture; the
damaged, truncated, empty and foreign files, each one line and exit 1; the
real guests' recordings in captures/; no root; the capture's parsers under
random and mutated input. -w's own recordings are judged again after every
namespace and VM run that makes one (netlab.replayed())."""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (DUID_LL, DHCP6_Advertise, DHCP6_Reply, DHCP6_Request,
                                DHCP6_Solicit,
                                DHCP6OptClientId, DHCP6OptIA_PD, DHCP6OptIAPrefix,
                                DHCP6OptServerId)
from scapy.layers.eap import EAP, EAPOL
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                ICMPv6ND_RS, ICMPv6NDOptPrefixInfo, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE, PPPoED, PPPoED_Tags, PPPoETag
from scapy.utils import mac2str, wrpcap

import arp_icmp_vlan0
from arp_icmp_vlan0 import (CaptureScope, Fatal, Prober, _read_pcap, _read_pcapng, eap_sent,
                            parse_dhcp6_answer, parse_dhcp_answer, parse_pppoe_offer,
                            parse_router_advertisement, reply_signature, switch_asks,
                            switch_role)
from frames import truncated_and_flipped
from netlab import TOOL, judge_capture

CAPTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "captures")
SWITCH, GUEST, OTHER = "00:00:5e:00:53:01", "00:00:5e:00:53:10", "00:00:5e:00:53:20"
T0 = 1_765_000_000.0
ALL = "ff:ff:ff:ff:ff:ff"


def tagged(*layers, src=SWITCH, dst=GUEST, prio=6):
    """A frame of the switch's, priority-tagged (vlan 0, p `prio`)."""
    packet = Ether(src=src, dst=dst) / Dot1Q(vlan=0, prio=prio)
    for layer in layers:
        packet = packet / layer
    return packet


def plain(*layers, src=GUEST, dst=SWITCH):
    packet = Ether(src=src, dst=dst)
    for layer in layers:
        packet = packet / layer
    return packet


def write(path, timed):
    """A pcap of `timed`: (seconds after T0, Scapy packet)."""
    packets = []
    for at, packet in timed:
        packet = Ether(bytes(packet))
        packet.time = T0 + at
        packets.append(packet)
    wrpcap(str(path), packets)
    return path


def pcapng(path, timed, interface="wan0"):
    """A pcapng of `timed` ((seconds, packet) or (seconds, packet, interface
    index)), written here as dumpcap does: a section, an interface
    description per name in `interface` (a name or a list) with
    nanosecond stamps (if_tsresol 9), an enhanced packet block a frame."""
    names = [interface] if isinstance(interface, str) else list(interface)

    def block(kind, body):
        body += bytes(-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def option(code, value):
        return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)

    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for name in names:
        data += block(1, struct.pack("<HHI", 1, 0, 0) + option(2, name.encode()) +
                      option(9, b"\x09") + option(0, b""))
    for item in timed:
        at, packet, index = item if len(item) == 3 else (*item, 0)
        frame, stamp = bytes(packet), round((T0 + at) * 1e9)
        data += block(6, struct.pack("<IIIII", index, stamp >> 32, stamp & 0xFFFFFFFF,
                                     len(frame), len(frame)) + frame)
    path.write_bytes(data)
    return path


def judged(path, *options):
    return judge_capture(path, "-q", *options)


def verdicts(record, judge):
    found = record[judge]
    clients = found["clients"] if isinstance(found, dict) else found
    return [(client.get("interface"), client["mac"], client["verdict"]) for client in clients]


# -- DHCP: an ISP's server, as OPNsense's and pfSense's reporters captured it

def discover(xid, vendor=None):
    options = [("message-type", "discover")] + ([("vendor_class_id", vendor)] if vendor else [])
    return plain(IP(src="0.0.0.0", dst="255.255.255.255"), UDP(sport=68, dport=67),
                 BOOTP(chaddr=mac2str(GUEST), xid=xid, flags=0x8000),
                 DHCP(options=options + ["end"]), dst=ALL)


def offer(xid, kind="offer", boot_file=None, dst=ALL):
    options = [("message-type", kind), ("server_id", "203.0.113.1"),
               ("subnet_mask", "255.255.255.0"), ("lease_time", 3600)]
    options += [("boot-file-name", boot_file.encode())] if boot_file else []
    return tagged(IP(src="203.0.113.1", dst="255.255.255.255"), UDP(sport=67, dport=68),
                  BOOTP(op=2, chaddr=mac2str(GUEST), xid=xid, yiaddr="203.0.113.50",
                        flags=0x8000), DHCP(options=options + ["end"]), dst=dst)


def request(xid, vendor=None):
    options = [("message-type", "request"), ("server_id", "203.0.113.1"),
               ("requested_addr", "203.0.113.50")]
    options += [("vendor_class_id", vendor)] if vendor else []
    return plain(IP(src="0.0.0.0", dst="255.255.255.255"), UDP(sport=68, dport=67),
                 BOOTP(chaddr=mac2str(GUEST), xid=xid, flags=0x8000),
                 DHCP(options=options + ["end"]), dst=ALL)


def isp_drops(path):
    """A CPE that keeps sending DISCOVERs, each offered, tagged vlan 0 p 6,
    by a server whose MAC is not the tool's."""
    timed = []
    for i, at in enumerate((0, 4, 12, 28)):
        timed += [(at, discover(0x1000 + i)), (at + 0.2, offer(0x1000 + i))]
    return write(path, timed)


@pytest.mark.parametrize("options", [(), ("--switch-mac", SWITCH)],
                         ids=["found", "--switch-mac"])
def test_an_isp_capture_whose_client_ignores_the_tagged_offers_drops(tmp_path, options):
    status, output, record = judged(isp_drops(tmp_path / "wan.pcap"), *options)
    assert status == 3 == record["exit_status"], output
    found = "named with --switch-mac" if options else \
        "the station that serves DHCP, RA, DHCPv6, PPPoE or 802.1X"
    assert f"the switch is {SWITCH} ({found})" in output
    assert f"wan.pcap: guest {GUEST} (offered 203.0.113.50) sent 3 DHCPDISCOVERs in 12.0 s " \
        "and every one was answered: it drops DHCP offers tagged vlan 0, p 6; its own " \
        "frames: untagged" in output
    assert "compare with --untagged" not in output  # no run of its own to compare
    assert verdicts(record, "dhcp") == [("wan.pcap", GUEST, "drops")]
    assert record["capture"] == {"file": str(tmp_path / "wan.pcap"), "frames": 8,
                                 "switch": [SWITCH], "found": found, "framing": "vlan 0, p 6",
                                 "switch_frames_untagged": False, "damage": None}
    assert record["mac"] == SWITCH
    assert record["total"]["replies"]["dhcp"] == 4


def test_a_client_that_requests_the_offer_and_gets_an_ack_accepts(tmp_path):
    path = write(tmp_path / "wan.pcap", [
        (0, discover(7)), (0.3, offer(7)), (0.5, request(7)), (0.6, offer(7, kind="ack"))])
    status, output, record = judged(path)
    assert status == 0, output
    assert verdicts(record, "dhcp") == [("wan.pcap", GUEST, "accepts")]
    assert "it requested 203.0.113.50" in output


def test_edk2_pxe_offered_no_boot_file_is_no_verdict_and_with_one_it_is_judged(tmp_path):
    edk2 = "PXEClient:Arch:00007:UNDI:003000"
    timed = []
    for i, at in enumerate((0, 4, 12)):
        timed += [(at, discover(i, edk2)), (at + 0.1, offer(i))]
    status, output, record = judged(write(tmp_path / "plain.pcap", timed))
    assert status == 4, output
    [client] = record["dhcp"]["clients"]
    assert (client["stage"], client["verdict"]) == ("EDK2 PXE", "no verdict"), output
    assert "ignores an offer without a boot file" in client["line"]
    timed = []
    for i, at in enumerate((0, 4, 12)):
        timed += [(at, discover(i, edk2)), (at + 0.1, offer(i, boot_file="snponly.efi"))]
    status, output, record = judged(write(tmp_path / "named.pcap", timed))
    assert status == 3, output
    assert [(c["stage"], c["verdict"]) for c in record["dhcp"]["clients"]] == [
        ("EDK2 PXE", "drops")]


def tftp(payload, sport, dport, switch=False):
    layers = (IP(src="203.0.113.1", dst="203.0.113.50") if switch else
              IP(src="203.0.113.50", dst="203.0.113.1"), UDP(sport=sport, dport=dport), payload)
    return tagged(*layers) if switch else plain(*layers)


def boot_capture(path, fetched):
    """An iPXE client leased 203.0.113.50 with boot.ipxe named, then its
    TFTP read: 700 bytes in two blocks, acknowledged, or block 1 asked for
    again and again (the read request repeated), each time sent."""
    ipxe = "PXEClient:Arch:00000:UNDI:002001"
    timed = [(0, discover(1, ipxe)), (0.1, offer(1, boot_file="boot.ipxe")), (0.2, request(1, ipxe)),
             (0.3, offer(1, kind="ack", boot_file="boot.ipxe"))]
    rrq = b"\x00\x01boot.ipxe\x00octet\x00"
    if fetched:
        timed += [(1.0, tftp(rrq, 2000, 69)),
                  (1.01, tftp(b"\x00\x03\x00\x01" + bytes(512), 50000, 2000, switch=True)),
                  (1.02, tftp(b"\x00\x04\x00\x01", 2000, 50000)),
                  (1.03, tftp(b"\x00\x03\x00\x02" + bytes(188), 50000, 2000, switch=True)),
                  (1.04, tftp(b"\x00\x04\x00\x02", 2000, 50000))]
    else:
        for i, at in enumerate((1, 2, 4)):
            timed += [(at, tftp(rrq, 2000 + i, 69)),
                      (at + 0.01, tftp(b"\x00\x03\x00\x01" + bytes(512), 50000 + i, 2000 + i,
                                       switch=True))]
    return write(path, timed)


@pytest.mark.parametrize("fetched, status, verdict", [(True, 0, "accepts"), (False, 3, "drops")])
def test_a_network_boots_tftp_is_judged_from_the_capture(tmp_path, fetched, status, verdict):
    got, output, record = judged(boot_capture(tmp_path / "boot.pcap", fetched))
    assert got == status, output
    [client] = record["tftp"]["clients"]
    assert (client["stage"], client["verdict"]) == ("iPXE", verdict), output
    if fetched:
        assert "it fetched boot.ipxe (700 bytes, 2 blocks)" in client["line"], output
    else:
        assert "requests for block 1 of boot.ipxe" in client["line"], output
    assert [(c["stage"], c["verdict"]) for c in record["dhcp"]["clients"]] == [
        ("iPXE", "accepts")]


def test_an_offer_to_another_client_or_another_transaction_answers_nothing(tmp_path):
    timed = []
    for i, at in enumerate((0, 4, 12)):
        timed += [(at, discover(0x10 + i)), (at + 0.1, offer(0x99))]  # another xid
    status, output, record = judged(write(tmp_path / "other.pcap", timed))
    assert status == 4, output
    assert record["dhcp"]["clients"] == [] and record["total"]["replies"]["dhcp"] == 0


def test_answers_later_than_the_wait_answer_nothing(tmp_path):
    timed = []
    for i, at in enumerate((0, 10, 20)):
        timed += [(at, discover(i)), (at + arp_icmp_vlan0.ANSWER_WAIT + 1, offer(i))]
    status, output, record = judged(write(tmp_path / "late.pcap", timed))
    assert status == 4 and record["total"]["replies"]["dhcp"] == 0, output


# -- ARP, NDP and ping: a router that answers, tagged

def arp_ask(at, target="192.0.2.1"):
    return at, plain(ARP(op=1, hwsrc=GUEST, psrc="192.0.2.10", pdst=target), dst=ALL)


def arp_reply(at, target="192.0.2.1"):
    return at, tagged(ARP(op=2, hwsrc=SWITCH, psrc=target, hwdst=GUEST, pdst="192.0.2.10"))


def test_arp_asked_again_and_again_though_answered_drops(tmp_path):
    timed = [item for at in (0, 1, 2) for item in (arp_ask(at), arp_reply(at + 0.001))]
    status, output, record = judged(write(tmp_path / "arp.pcap", timed))
    assert status == 3, output
    assert "the one station that answers others' ARP, NDP or pings" in output
    assert verdicts(record, "guests") == [("arp.pcap", GUEST, "drops")]


def test_arp_answered_then_a_ping_to_the_switch_accepts(tmp_path):
    ping = plain(IP(src="192.0.2.10", dst="192.0.2.1"), ICMP(type=8, id=1, seq=1))
    path = write(tmp_path / "arp.pcap", [arp_ask(0), arp_reply(0.001), (0.01, ping)])
    status, output, record = judged(path)
    assert status == 0, output
    assert verdicts(record, "guests") == [("arp.pcap", GUEST, "accepts")]


def test_an_ask_the_switch_does_not_answer_is_no_ask(tmp_path):
    timed = [arp_ask(at, "192.0.2.99") for at in (0, 1, 2)] + [arp_ask(3), arp_reply(3.001)]
    status, output, record = judged(write(tmp_path / "arp.pcap", timed))
    assert status == 4, output  # one answered ask: nothing shown yet
    [guest] = record["guests"]
    assert guest["verdict"] is None and record["total"]["ignored"] == 3


def test_neighbor_solicitations_answered_tagged_and_repeated_drop(tmp_path):
    timed = []
    for at in (0, 1, 2):
        timed.append((at, plain(IPv6(src="2001:db8::10", dst="ff02::1:ff00:1", hlim=255),
                                ICMPv6ND_NS(tgt="2001:db8::1"), dst="33:33:ff:00:00:01")))
        timed.append((at + 0.001, tagged(IPv6(src="2001:db8::1", dst="2001:db8::10", hlim=255),
                                         ICMPv6ND_NA(tgt="2001:db8::1", R=1, S=1, O=1))))
    status, output, record = judged(write(tmp_path / "ndp.pcap", timed))
    assert status == 3, output
    assert verdicts(record, "guests") == [("ndp.pcap", GUEST, "drops")]


# -- the probe: a switch that asks the guest

def probe_capture(path, answered_tagged):
    """The switch asks for 192.0.2.10 tagged three times, then untagged from
    0.0.0.0 (the tool's control); the guest answers the tagged ones or only
    the control."""
    timed = []
    for at in (0, 1, 2):
        timed.append((at, tagged(ARP(op=1, hwsrc=SWITCH, psrc="192.0.2.1", pdst="192.0.2.10"),
                                 dst=ALL)))
        if answered_tagged:
            timed.append((at + 0.01, plain(ARP(op=2, hwsrc=GUEST, psrc="192.0.2.10",
                                               hwdst=SWITCH, pdst="192.0.2.1"))))
    if answered_tagged:
        for seq, at in ((1, 3), (2, 4)):
            timed.append((at, tagged(IP(src="192.0.2.1", dst="192.0.2.10"),
                                     ICMP(type=8, id=77, seq=seq))))
            timed.append((at + 0.01, plain(IP(src="192.0.2.10", dst="192.0.2.1"),
                                           ICMP(type=0, id=77, seq=seq))))
    else:
        timed.append((4, Ether(src=SWITCH, dst=ALL) / ARP(op=1, hwsrc=SWITCH, psrc="0.0.0.0",
                                                          pdst="192.0.2.10")))
        timed.append((4.01, plain(ARP(op=2, hwsrc=GUEST, psrc="192.0.2.10", hwdst=SWITCH,
                                      pdst="0.0.0.0"))))
    return write(path, timed)


@pytest.mark.parametrize("answered, status, verdict", [(True, 0, "answers"), (False, 3, "drops")])
def test_the_switchs_own_probes_are_judged_like_the_tools(tmp_path, answered, status, verdict):
    path = probe_capture(tmp_path / "probe.pcap", answered)
    got, output, record = judged(path, "--switch-mac", SWITCH)
    assert got == status, output
    [probe] = record["probes"]
    assert (probe["address"], probe["mac"], probe["verdict"]) == ("192.0.2.10", GUEST, verdict)


def test_tagged_probes_and_a_control_nobody_answered_is_no_answer(tmp_path):
    timed = [(at, tagged(ARP(op=1, hwsrc=SWITCH, psrc="192.0.2.1", pdst="192.0.2.77"),
                         dst=ALL)) for at in (0, 1, 2)]
    timed.append((4, Ether(src=SWITCH, dst=ALL) / ARP(op=1, hwsrc=SWITCH, psrc="0.0.0.0",
                                                      pdst="192.0.2.77")))
    timed += [arp_ask(5), arp_reply(5.001)]
    status, output, record = judged(write(tmp_path / "nobody.pcap", timed))
    assert status == 4, output
    [probe] = record["probes"]
    assert probe["verdict"] == "no answer" and "nobody answered at 192.0.2.77" in output


# -- Router Advertisements

def solicit(at):
    return at, plain(IPv6(src="fe80::10", dst="ff02::2", hlim=255), ICMPv6ND_RS(),
                     dst="33:33:00:00:00:02")


def advertisement(at):
    return at, tagged(IPv6(src="fe80::1", dst="ff02::1", hlim=255), ICMPv6ND_RA(),
                      ICMPv6NDOptPrefixInfo(prefix="2001:db8:1::", prefixlen=64),
                      dst="33:33:00:00:00:01")


def test_router_solicitations_answered_and_repeated_drop(tmp_path):
    timed = [item for at in (0, 4, 8) for item in (solicit(at), advertisement(at + 0.3))]
    status, output, record = judged(write(tmp_path / "ra.pcap", timed))
    assert status == 3, output
    assert verdicts(record, "ra") == [("ra.pcap", GUEST, "drops")]


def test_an_address_taken_from_the_advertised_prefix_accepts(tmp_path):
    dad = plain(IPv6(src="::", dst="ff02::1:ff00:10", hlim=255),
                ICMPv6ND_NS(tgt="2001:db8:1::10"), dst="33:33:ff:00:00:10")
    path = write(tmp_path / "ra.pcap", [solicit(0), advertisement(0.3), (0.9, dad)])
    status, output, record = judged(path)
    assert status == 0, output
    assert verdicts(record, "ra") == [("ra.pcap", GUEST, "accepts")]
    assert "took 2001:db8:1::10" in output


# -- the access link: DHCPv6 with a delegated prefix, PPPoE, 802.1X

SERVER_DUID = DHCP6OptServerId(duid=DUID_LL(lladdr=SWITCH))


def dhcp6(message, *options, mac=GUEST):
    packet = message / DHCP6OptClientId(duid=DUID_LL(lladdr=mac))
    for option in options:
        packet = packet / option
    return packet


def test_dhcpv6_solicits_answered_drop_and_a_request_after_the_advertise_accepts(tmp_path):
    prefix = DHCP6OptIA_PD(iaid=1, iapdopt=[DHCP6OptIAPrefix(prefix="2001:db8:200::", plen=56)])
    timed = []
    for trid, at in ((1, 0), (2, 1), (3, 3)):
        timed.append((at, plain(IPv6(src="fe80::10", dst="ff02::1:2"), UDP(sport=546, dport=547),
                                dhcp6(DHCP6_Solicit(trid=trid), DHCP6OptIA_PD(iaid=1)),
                                dst="33:33:00:01:00:02")))
        timed.append((at + 0.01, tagged(IPv6(src="fe80::1", dst="fe80::10"),
                                        UDP(sport=547, dport=546),
                                        dhcp6(DHCP6_Advertise(trid=trid), SERVER_DUID, prefix))))
    status, output, record = judged(write(tmp_path / "drops.pcap", timed))
    assert status == 3, output
    assert verdicts(record, "dhcp6") == [("drops.pcap", GUEST, "drops")]
    timed = timed[:2] + [(0.1, plain(IPv6(src="fe80::10", dst="ff02::1:2"),
                                     UDP(sport=546, dport=547),
                                     dhcp6(DHCP6_Request(trid=9), SERVER_DUID, prefix),
                                     dst="33:33:00:01:00:02")),
                         (0.11, tagged(IPv6(src="fe80::1", dst="fe80::10"),
                                       UDP(sport=547, dport=546),
                                       dhcp6(DHCP6_Reply(trid=9), SERVER_DUID, prefix)))]
    status, output, record = judged(write(tmp_path / "accepts.pcap", timed))
    assert status == 0, output
    assert verdicts(record, "dhcp6") == [("accepts.pcap", GUEST, "accepts")]
    assert "2001:db8:200::/56" in output


def pado(code, session=0):
    return tagged(PPPoED(code=code, sessionid=session),
                  PPPoED_Tags(tag_list=[PPPoETag(tag_type=0x0102, tag_value=b"isp-bras")]))


def padi(code=0x09, dst=ALL):
    return plain(PPPoED(code=code), PPPoED_Tags(tag_list=[PPPoETag(tag_type=0x0101,
                                                                   tag_value=b"")]), dst=dst)


def test_pppoe_padis_answered_drop_and_a_session_after_the_pads_accepts(tmp_path):
    timed = [item for at in (0, 5, 15) for item in ((at, padi()), (at + 0.01, pado(0x07)))]
    status, output, record = judged(write(tmp_path / "drops.pcap", timed))
    assert status == 3, output
    assert verdicts(record, "pppoe") == [("drops.pcap", GUEST, "drops")]
    timed = timed[:2] + [(0.1, padi(0x19, dst=SWITCH)), (0.11, pado(0x65, session=0x1234)),
                         (0.2, plain(PPPoE(sessionid=0x1234) / PPP(proto=0xC021) / b"\x01\x01"
                                     b"\x00\x04"))]
    status, output, record = judged(write(tmp_path / "accepts.pcap", timed))
    assert status == 0, output
    [client] = record["pppoe"]["clients"]
    assert client["verdict"] == "accepts" and "sent a session frame on session 4660" in \
        client["line"], output


def test_8021x_starts_while_requests_go_unanswered_drop_and_an_identity_accepts(tmp_path):
    start = plain(EAPOL(version=1, type=1), dst="01:80:c2:00:00:03")
    identity = tagged(EAPOL(version=2, type=0) / EAP(code=1, id=1, type=1),
                      dst="01:80:c2:00:00:03")
    timed = [(0, start), (0.01, identity)] + [(at, identity) for at in (5, 10, 15)] + \
        [(16, start), (16.01, identity)]
    status, output, record = judged(write(tmp_path / "drops.pcap", timed))
    assert status == 3, output
    assert verdicts(record, "dot1x") == [("drops.pcap", GUEST, "drops")]
    response = plain(EAPOL(version=1, type=0) / EAP(code=2, id=1, type=1, identity=b"cpe"),
                     dst="01:80:c2:00:00:03")
    challenge = tagged(EAPOL(version=2, type=0) / EAP(code=1, id=2, type=4) / (b"\x10" +
                                                                             bytes(16)))
    timed = [(0, start), (0.01, identity), (0.1, response), (0.11, challenge)]
    status, output, record = judged(write(tmp_path / "accepts.pcap", timed))
    assert verdicts(record, "dot1x") == [("accepts.pcap", GUEST, "accepts")], output


# -- the file: pcapng, interfaces, damage, foreign link types

def test_pcapng_with_nanosecond_stamps_and_a_named_interface(tmp_path):
    timed = []
    for i, at in enumerate((0, 4, 12)):
        timed += [(at, discover(i)), (at + 0.2, offer(i))]
    status, output, record = judged(pcapng(tmp_path / "wan.pcapng", timed))
    assert status == 3, output
    assert verdicts(record, "dhcp") == [("wan0", GUEST, "drops")]
    assert "in 12.0 s" in output  # the stamps, read at their resolution


def test_a_guest_forging_anothers_mac_on_another_interface_changes_nothing_of_its(tmp_path):
    """Two interfaces in one pcapng: on lan1 an attacker floods DISCOVERs
    with the victim's MAC, each offered; on lan0 the victim takes its offer."""
    timed = [(0, discover(1), 0), (0.1, offer(1), 0), (0.2, request(1), 0),
             (0.3, offer(1, kind="ack"), 0)]
    for i in range(40):
        timed += [(0.5 + i * 0.5, discover(100 + i), 1), (0.51 + i * 0.5, offer(100 + i), 1)]
    status, output, record = judged(pcapng(tmp_path / "two.pcapng", timed, ["lan0", "lan1"]))
    assert status == 3, output  # the forged one drops, on lan1
    assert sorted(verdicts(record, "dhcp")) == [("lan0", GUEST, "accepts"),
                                                ("lan1", GUEST, "drops")]
    assert record["interfaces"]["lan0"]["frames_seen"] == 2


def test_a_truncated_capture_is_judged_up_to_the_cut_in_one_line_and_exit_1(tmp_path):
    whole = isp_drops(tmp_path / "whole.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-30])
    status, output, record = judged(cut)
    assert status == 1 == record["exit_status"], output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.startswith("arp_icmp_vlan0: error")]
    assert line == f"arp_icmp_vlan0: error: {cut}: damaged after 7 frames (the last record " \
        "is cut short): those were judged"
    assert "it drops DHCP offers" in output  # the frames before the cut
    assert record["capture"]["damage"] == "the last record is cut short"


@pytest.mark.parametrize("data, said", [
    (b"", "empty, or too short to be a capture"),
    (b"GIF89a..........", "not a pcap or pcapng file (it begins 47494638)"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113),
     "link type 113 (Linux cooked, as tcpdump -i any writes it): its frames have no Ethernet "
     "header, so neither their tags nor their MACs are there to judge; capture on the port's "
     "own interface: tcpdump -i IF -e -w FILE"),
])
def test_a_file_that_is_no_ethernet_capture_is_refused_in_one_line(tmp_path, data, said):
    path = tmp_path / "x.pcap"
    path.write_bytes(data)
    result = subprocess.run([sys.executable, TOOL, "-r", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"arp_icmp_vlan0: error: {path}: {said}\n")


def test_untagged_switch_frames_are_said_and_still_judged(tmp_path):
    timed = []
    for i, at in enumerate((0, 4, 12)):
        untagged = Ether(bytes(offer(i)))
        untagged = Ether(src=SWITCH, dst=ALL) / untagged[Dot1Q].payload
        timed += [(at, discover(i)), (at + 0.2, untagged)]
    status, output, record = judged(write(tmp_path / "stripped.pcap", timed))
    assert status == 3, output
    assert f"the switch's frames in {tmp_path / 'stripped.pcap'} are untagged: the capture " \
        "cannot show what tagging did" in output
    assert "it drops DHCP offers untagged" in output and record["capture"][
        "switch_frames_untagged"]


def test_two_stations_answering_each_other_need_switch_mac(tmp_path):
    ping = plain(IP(src="192.0.2.10", dst="192.0.2.20"), ICMP(type=0, id=1, seq=1), dst=OTHER)
    pong = plain(IP(src="192.0.2.20", dst="192.0.2.10"), ICMP(type=0, id=2, seq=1), src=OTHER,
                 dst=GUEST)
    path = write(tmp_path / "lan.pcap", [(0, ping), (1, pong)])
    result = subprocess.run([sys.executable, TOOL, "-r", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr == (f"arp_icmp_vlan0: error: {path}: cannot tell which station is the "
                             f"switch: {GUEST}, {OTHER} each answer the others; name it: "
                             "--switch-mac MAC\n")


@pytest.mark.parametrize("capture, verdict, status", [
    ("e1000-ipv4.pcap", "accepts", 0), ("virtio-net-pci-ipv4.pcap", "drops", 3),
    ("e1000-ipv6.pcap", "accepts", 0), ("virtio-net-pci-ipv6.pcap", "drops", 3)])
def test_the_real_guests_recordings_give_their_verdicts(capture, verdict, status):
    got, output, record = judged(os.path.join(CAPTURES, capture))
    assert got == status, output
    assert [(g["mac"], g["verdict"]) for g in record["guests"]] == [("52:54:00:12:34:56",
                                                                      verdict)]
    assert "the tool's own MAC: its -w recording" in output


def test_no_root_and_standard_input(tmp_path):
    """-r - as an ordinary user (nobody, when the tests run as root: a copy
    of the tool in a folder of its own, run by the first Python with Scapy
    that nobody may run: the venv's, or Debian's when the checkout is where
    nobody cannot look, as /root is)."""
    path = isp_drops(tmp_path / "wan.pcap")
    command = [sys.executable, TOOL, "-q", "-r", "-"]
    folder = None
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("needs runuser to run as nobody")
        folder = tempfile.mkdtemp(prefix="avz-nobody-")
        os.chmod(folder, 0o755)
        shutil.copy(TOOL, folder)
        as_nobody = ["runuser", "-u", "nobody", "--"]
        python = next((python for python in (sys.executable, "/usr/bin/python3") if subprocess.run(
            as_nobody + [python, "-c", "import scapy"], capture_output=True, cwd="/",
            timeout=60).returncode == 0), None)
        if python is None:
            shutil.rmtree(folder)
            pytest.skip("no Python with Scapy that nobody may run (apt install python3-scapy)")
        command = as_nobody + [python, os.path.join(folder, "arp_icmp_vlan0.py"), "-q", "-r",
                               "-"]
    try:
        with open(path, "rb") as source:
            result = subprocess.run(command, stdin=source, capture_output=True, text=True,
                                    timeout=60, cwd="/")
    finally:
        if folder:
            shutil.rmtree(folder)
    assert result.returncode == 3, result
    assert "stdin: guest 00:00:5e:00:53:10 (offered 203.0.113.50) sent 3 DHCPDISCOVERs" in \
        result.stdout


@pytest.mark.parametrize("args, said", [
    (["-r", "x.pcap", "tap0"], "-r reads what the switch served, and how, from the capture: "
                               "not with INTERFACE"),
    (["-r", "x.pcap", "--dhcp", "--vlan", "5"], "not with --dhcp, --vlan"),
    (["--switch-mac", SWITCH, "tap0"], "--switch-mac goes with -r"),
    (["-r", "x.json", "--json", "x.json"], "-r and --json name the same file"),
])
def test_command_lines_that_make_no_sense_with_r_are_usage_errors(args, said):
    result = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and said in result.stderr, result.stderr


# -- hostile input: the capture's parsers

@given(st.binary(max_size=300))
def test_the_file_readers_stop_at_damage_and_never_fail_otherwise(data):
    for header in (b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 1),
                   b"\x0a\x0d\x0d\x0a"):
        try:
            reader = _read_pcap if header[0] == 0xD4 else _read_pcapng
            frames, damage = reader(header + data, "x", "x")
        except Fatal as refused:  # another link type
            assert "link type" in str(refused)
            continue
        assert damage is None or isinstance(damage, str)
        assert all(isinstance(frame, bytes) for _, _, frame in frames)


SEEDS = [bytes(offer(1)), bytes(offer(1, kind="ack", boot_file="boot.ipxe")),
         bytes(advertisement(0)[1]), bytes(pado(0x07)), bytes(pado(0x65, 3)),
         bytes(tagged(EAPOL(version=2, type=0) / EAP(code=1, id=1, type=1))),
         bytes(arp_reply(0)[1]), bytes(tagged(IP(src="192.0.2.1", dst="192.0.2.10"),
                                              ICMP(type=8, id=7, seq=1))),
         bytes(tagged(IPv6(src="fe80::1", dst="2001:db8::10"), ICMPv6EchoRequest(id=7, seq=2))),
         bytes(tagged(IPv6(src="fe80::1", dst="fe80::10"), UDP(sport=547, dport=546),
                      dhcp6(DHCP6_Advertise(trid=5), SERVER_DUID)))]


@given(st.sampled_from(SEEDS), st.integers(0, 400), st.lists(st.integers(0, 10_000),
                                                             max_size=6))
def test_the_switch_frame_parsers_take_any_cut_or_flipped_frame(seed, cut, flips):
    frame = truncated_and_flipped(seed, cut, flips)
    for parse in (parse_dhcp_answer, parse_dhcp6_answer, parse_router_advertisement,
                  parse_pppoe_offer, eap_sent, switch_role, switch_asks, reply_signature):
        parse(frame)
    prober = Prober((), CaptureScope(mac=SWITCH), arp_icmp_vlan0.Framing(), 0)
    prober.sent("x", frame, 1.0)


@settings(max_examples=max(1, settings.default.max_examples // 8))  # a whole run each
@given(st.integers(24, 2000), st.lists(st.integers(0, 100_000), max_size=8))
def test_a_mangled_capture_is_judged_or_refused_in_one_line(tmp_path_factory, cut, flips):
    data = bytearray(isp_drops(tmp_path_factory.mktemp("m") / "wan.pcap").read_bytes()[:cut])
    for flip in flips:
        if 24 <= flip < len(data):  # the file header stays: its link type is Ethernet
            data[flip] ^= 0xFF
    path = tmp_path_factory.mktemp("m") / "mangled.pcap"
    path.write_bytes(bytes(data))
    try:
        status, output, record = judged(path)
    except FileNotFoundError:  # refused before the summary: one line, exit 1
        return
    assert status in (0, 1, 3, 4) and "Traceback" not in output, output


def test_a_switch_frame_of_another_protocol_answers_no_ask(tmp_path):
    """Each kind of ask, then every kind of the switch's frames to that
    guest but its own answer: nothing answered, and no error (the fuzz run
    found one: a bool taken for an Answer)."""
    asks = [arp_ask(0)[1], discover(5), solicit(0)[1], padi(),
            plain(EAPOL(version=1, type=1), dst="01:80:c2:00:00:03"),
            plain(IPv6(src="fe80::10", dst="ff02::1:2"), UDP(sport=546, dport=547),
                  dhcp6(DHCP6_Solicit(trid=4)), dst="33:33:00:01:00:02")]
    answers = [arp_reply(0)[1], offer(5, dst=GUEST), advertisement(0)[1], pado(0x07),
               tagged(EAPOL(version=2, type=0) / EAP(code=1, id=1, type=1)),
               tagged(IPv6(src="fe80::1", dst="fe80::10"), UDP(sport=547, dport=546),
                      dhcp6(DHCP6_Advertise(trid=4), SERVER_DUID))]
    timed = [(0, packet) for packet in [pado(0x65), offer(5, kind="ack")]]  # every judge on
    for i, ask in enumerate(asks):  # each past the others' wait
        timed.append((10 + 10 * i, ask))
        timed += [(10 + 10 * i + 0.01, answer) for j, answer in enumerate(answers) if j != i]
    status, output, record = judged(write(tmp_path / "mixed.pcap", timed))
    assert "error" not in output and record["total"]["internal_errors"] == 0, output
    assert sum(record["total"]["replies"].values()) == 0 and record["total"][
        "answered_later"] == 0, output
