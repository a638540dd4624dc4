# SPDX-License-Identifier: GPL-2.0-only
"""The crafted frames the tests and tests/figures/fuzz.py share: the
addresses, builders of requests and of fragment sets, reassemble(), the seed
frames and the independent Scapy oracle. Nothing but Scapy and the tool:
fuzz.py imports this without pytest or hypothesis installed (the checks the
tests build on it: tests/lib/checks.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scapy.layers.inet import ICMP, IP, fragment  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptDNSSL,  # noqa: E402
                                ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrFragment, fragment6)
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from arp_icmp_vlan0 import DEFAULT_MAC, ethertype_and_offset, fragment_of  # noqa: E402

MAC = DEFAULT_MAC
PEER_MAC = "52:54:00:12:34:56"
PEER_IP, TOOL_IP = "198.51.100.1", "198.51.100.2"
PEER6, TOOL6 = "2001:db8::1", "2001:db8::2"
SOLICITED_NODE, SOLICITED_NODE_MAC = "ff02::1:ff00:2", "33:33:ff:00:00:02"


def wire(packet):
    """What Scapy's socket hands over: the frame dissected from its bytes, or
    Raw where dissection fails (as SuperSocket.recv does)."""
    try:
        return Ether(bytes(packet))
    except Exception:
        return Raw(bytes(packet))


def arp_request(**arp):
    fields = dict(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=TOOL_IP)
    fields.update(arp)
    return wire(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(**fields))


def echo_request(data=b"0123456789abcdef", ether_dst=MAC, pad=b"", **ip):
    fields = dict(src=PEER_IP, dst=TOOL_IP, ttl=61, tos=0x10, flags="DF", id=4242)
    fields.update(ip)
    frame = (Ether(src=PEER_MAC, dst=ether_dst) / IP(**fields) /
             ICMP(type=8, id=0x1234, seq=7) / data)
    return wire(bytes(frame) + pad)


def solicitation(target=TOOL6, src=PEER6, dst=SOLICITED_NODE, ether_dst=SOLICITED_NODE_MAC,
                 hlim=255, options=True, extension=None, code=0):
    frame = Ether(src=PEER_MAC, dst=ether_dst) / IPv6(src=src, dst=dst, hlim=hlim)
    if extension is not None:
        frame = frame / extension
    frame = frame / ICMPv6ND_NS(tgt=target, code=code)
    if options:
        frame = frame / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    return wire(frame)


def dnssl_solicitation():
    """A Neighbor Solicitation for TOOL6 with a DNS Search List option whose
    name holds "%" (110 bytes): Scapy 2.5.0's summary of that option takes
    the guest's bytes as a format string and raises. The bytes, undissected."""
    return bytes(Ether(src=PEER_MAC, dst=SOLICITED_NODE_MAC)
                 / IPv6(src=PEER6, dst=SOLICITED_NODE, hlim=255) / ICMPv6ND_NS(tgt=TOOL6)
                 / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
                 / ICMPv6NDOptDNSSL(searchlist=["100%.example"]))


def echo6(data=b"ping6 data", src=PEER6, dst=TOOL6, ether_dst=MAC, extension=None,
          pad=b"", code=0):
    frame = Ether(src=PEER_MAC, dst=ether_dst) / IPv6(src=src, dst=dst, hlim=64, tc=0x28)
    if extension is not None:
        frame = frame / extension
    return wire(bytes(frame / ICMPv6EchoRequest(id=0x4321, seq=11, data=data, code=code)) + pad)


# ---------------------------------------------------------------- reassembly

def ipv4_fragments(size=3000, fragsize=1480, ident=77):
    packet = (Ether(src=PEER_MAC, dst=MAC) /
              IP(src=PEER_IP, dst=TOOL_IP, id=ident) / ICMP(id=9, seq=1) / (b"z" * size))
    return [bytes(f) for f in fragment(packet, fragsize)]


def ipv6_fragments(size=3000, fragsize=1280, ident=99):
    packet = (Ether(src=PEER_MAC, dst=MAC) / IPv6(src=PEER6, dst=TOOL6) /
              IPv6ExtHdrFragment(id=ident) / ICMPv6EchoRequest(id=9, seq=1, data=b"y" * size))
    return [bytes(Ether(src=PEER_MAC, dst=MAC) / f) for f in fragment6(packet[IPv6], fragsize)]


def reassemble(reassembler, frame, now):
    """What the tool does with a received frame before the core: the frame
    itself if it is no fragment, else the reassembled datagram or None."""
    piece = fragment_of(frame, *ethertype_and_offset(frame))
    return frame if piece is None else reassembler.add(piece, now)


# ---------------------------------------------------------------- seeds and oracle

# An ARP request and echo requests (with data, empty, padded).
VALID_REQUESTS = [arp_request(), echo_request(), echo_request(b""),
                  echo_request(b"!", pad=b"\x00" * 17)]
# ... and a Neighbor Solicitation and ICMPv6 echo requests, as bytes.
SEEDS = [bytes(f) for f in VALID_REQUESTS + [solicitation(), echo6(), echo6(b"")]]


def assert_well_formed(frame, kind):
    """Scapy's independent view: the frame answered is a well-formed request
    of that kind, checksums included."""
    while frame[12:14] == b"\x91\x00":  # a TPID Scapy does not dissect as a tag
        frame = frame[:12] + b"\x81\x00" + frame[14:]
    packet = Ether(frame)
    if kind == "arp":
        arp = packet[ARP]
        assert (arp.op, arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 1, 0x800, 6, 4)
        return
    if kind == "icmp echo":
        ip = packet[IP]
        raw = bytes(ip)[:ip.len]
        fresh = IP(raw)
        del fresh.chksum, fresh[ICMP].chksum
        fresh = IP(bytes(fresh))
        assert (fresh.chksum, fresh[ICMP].chksum) == (ip.chksum, ip[ICMP].chksum)
        assert (ip[ICMP].type, ip[ICMP].code, ip.frag, ip.flags.MF) == (8, 0, 0, 0)
        return
    layer = ICMPv6ND_NS if kind == "ndp" else ICMPv6EchoRequest
    ip6 = packet[IPv6]
    assert packet[layer].code == 0
    fresh = Ether(frame)
    del fresh[layer].cksum
    assert Ether(bytes(fresh))[layer].cksum == packet[layer].cksum
    if kind == "ndp":
        assert ip6.hlim == 255


def truncated_and_flipped(seed, cut, flips):
    """`seed` (bytes) less its last `cut` bytes, with one bit flipped at
    each of `flips` (positions taken modulo the length): the property
    tests' mutation."""
    frame = bytearray(seed[:max(0, len(seed) - cut)])
    for flip in flips:
        if frame:
            frame[flip % len(frame)] ^= 1 << (flip % 8)
    return bytes(frame)


def service_seeds():
    """What --dhcp, --boot-file, --ra and --probe read from a guest: DHCP
    DISCOVER (a plain one and iPXE's, with its classes and architecture) and
    REQUEST, TFTP read requests (with options) and an ACK, a Router
    Solicitation, and answers to the probes (an ARP reply, an echo reply
    with the probes' identifier 0x4242, an advertisement)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6ND_NA, ICMPv6ND_RS
    from scapy.layers.tftp import TFTP, TFTP_ACK, TFTP_RRQ, TFTP_Option, TFTP_Options
    from scapy.utils import mac2str

    def tftp(payload, port=69):
        return bytes(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                     UDP(sport=2000, dport=port) / payload)
    read = TFTP() / TFTP_RRQ(filename=b"boot.ipxe", mode=b"octet")
    with_options = read / TFTP_Options(options=[
        TFTP_Option(oname=b"blksize", value=b"1468"), TFTP_Option(oname=b"tsize", value=b"0")])

    def dhcp(*options):
        return bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                     IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) /
                     BOOTP(op=1, xid=0x1234, chaddr=mac2str(PEER_MAC) + bytes(10)) /
                     DHCP(options=list(options) + ["end"]))
    return [dhcp(("message-type", "discover")),
            dhcp(("message-type", "discover"),
                 ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
                 ("user_class", b"iPXE"), ("pxe_client_architecture", b"\x00\x00")),
            tftp(read), tftp(with_options), tftp(TFTP() / TFTP_ACK(block=1), port=61440),
            dhcp(("message-type", "request"), ("requested_addr", "198.51.100.9"),
                 ("server_id", TOOL_IP)),
            bytes(Ether(src=PEER_MAC, dst="33:33:00:00:00:02") /
                  IPv6(src="fe80::1", dst="ff02::2", hlim=255) / ICMPv6ND_RS() /
                  ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)),
            bytes(Ether(src=PEER_MAC, dst=MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP,
                                                     hwdst=MAC, pdst=TOOL_IP)),
            bytes(Ether(src=PEER_MAC, dst=MAC) / IP(src=PEER_IP, dst=TOOL_IP) /
                  ICMP(type=0, id=0x4242, seq=1)),
            bytes(Ether(src=PEER_MAC, dst=MAC) / IPv6(src=PEER6, dst="fe80::76:6cff:fe61:6e30") /
                  ICMPv6EchoReply(id=0x4242, seq=1)),
            bytes(Ether(src=PEER_MAC, dst=MAC) / IPv6(src=PEER6, dst="fe80::76:6cff:fe61:6e30",
                                                      hlim=255) / ICMPv6ND_NA(tgt=PEER6))]


PEER_LL = "fe80::5054:ff:fe12:3456"  # PEER_MAC's link-local address


def dhcp6_message(message, *options, src=PEER_LL, mac=PEER_MAC, client_id=True):
    """A client's DHCPv6 `message` (a Scapy DHCP6_* layer) with its DUID-LLT
    Client Identifier first, then `options`, from its link-local address to
    All_DHCP_Relay_Agents_and_Servers."""
    from scapy.layers.dhcp6 import DUID_LLT, DHCP6OptClientId
    from scapy.layers.inet import UDP
    packet = message
    if client_id:
        packet = packet / DHCP6OptClientId(duid=DUID_LLT(lladdr=mac, timeval=5))
    for option in options:
        packet = packet / option
    return bytes(Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=src, dst="ff02::1:2") /
                 UDP(sport=546, dport=547) / packet)


def pppoe_discovery(code, *tags, dst="ff:ff:ff:ff:ff:ff", session=0, mac=PEER_MAC):
    """A client's PPPoE discovery frame with `tags` ((type, value))."""
    from scapy.layers.ppp import PPPoED, PPPoED_Tags, PPPoETag
    return bytes(Ether(src=mac, dst=dst) / PPPoED(code=code, sessionid=session) /
                 PPPoED_Tags(tag_list=[PPPoETag(tag_type=kind, tag_value=value)
                                       for kind, value in tags]))


def eapol(*layers, dst="01:80:c2:00:00:03", kind=0, mac=PEER_MAC):
    """A supplicant's EAPOL frame (`kind`: 0 EAP packet, 1 Start, 2 Logoff)."""
    from scapy.layers.eap import EAPOL
    packet = EAPOL(version=1, type=kind)
    for layer in layers:
        packet = packet / layer
    return bytes(Ether(src=mac, dst=dst) / packet)


def access_seeds():
    """What --dhcp6, --pppoe and --dot1x read from a guest: a Solicit (an
    IA_NA, an IA_PD, Rapid Commit), a Request and a Renew naming the tool,
    an Information-request; a PADI, a PADR, a PPPoE session frame; an
    EAPOL-Start and EAP-Responses (Identity, MD5)."""
    from scapy.layers.dhcp6 import (DUID_LL, DHCP6_InfoRequest, DHCP6_Renew, DHCP6_Request,
                                    DHCP6_Solicit, DHCP6OptIA_NA, DHCP6OptIA_PD,
                                    DHCP6OptIAAddress, DHCP6OptIAPrefix, DHCP6OptRapidCommit,
                                    DHCP6OptServerId)
    from scapy.layers.eap import EAP, EAP_MD5
    from scapy.layers.ppp import PPP, PPPoE
    server = DHCP6OptServerId(duid=DUID_LL(lladdr=MAC))
    na = DHCP6OptIA_NA(iaid=1, ianaopts=[DHCP6OptIAAddress(addr="2001:db8::1:2")])
    pd = DHCP6OptIA_PD(iaid=2, iapdopt=[DHCP6OptIAPrefix(plen=56, prefix="2001:db8:100::")])
    return [dhcp6_message(DHCP6_Solicit(trid=7), DHCP6OptRapidCommit(), na, pd),
            dhcp6_message(DHCP6_Solicit(trid=8), DHCP6OptIA_PD(iaid=2)),
            dhcp6_message(DHCP6_Request(trid=9), server, na, pd),
            dhcp6_message(DHCP6_Renew(trid=10), server, na),
            dhcp6_message(DHCP6_InfoRequest(trid=11)),
            pppoe_discovery(0x09, (0x0101, b""), (0x0103, b"uniq")),
            pppoe_discovery(0x19, (0x0101, b""), (0x0104, bytes(16)), dst=MAC),
            bytes(Ether(src=PEER_MAC, dst=MAC) / PPPoE(sessionid=1) / PPP(proto=0xC021) /
                  b"\x01\x01\x00\x04"),
            eapol(kind=1),
            eapol(EAP(code=2, id=1, type=1, identity=b"user")),
            eapol(EAP_MD5(code=2, id=2, value=bytes(16)), dst=MAC)]
