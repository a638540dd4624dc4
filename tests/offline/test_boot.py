# SPDX-License-Identifier: GPL-2.0-only
"""Network boot, offline: the PXE fields of an offer after a bytes() round
trip, the boot file chosen by a client's stage and architecture, each
firmware stage judged apart (a stage change flips no earlier verdict, and a
stage whose silence says nothing is no verdict, never a drop), and the
TFTP server: every field of its blocks and options, a whole transfer, a
client that drops the blocks, timeouts, and every request it refuses (path
escapes, writes) without reading anything."""

import ipaddress
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.tftp import TFTP, TFTP_ACK, TFTP_DATA, TFTP_ERROR, TFTP_RRQ, TFTP_WRQ
from scapy.layers.tftp import TFTP_Option, TFTP_Options
from scapy.utils import mac2str

import arp_icmp_vlan0
from arp_icmp_vlan0 import (EXIT_NO_VERDICT, STAGE_EDK2, STAGE_HTTP, STAGE_IPXE, TFTP_BLOCK_MAX,
                            TFTP_RETRIES, TFTP_TRANSFERS_EACH, DhcpServer, Events, Framing, Scope,
                            TftpServer, dhcp_stage, ethertype_and_offset, overall_status,
                            parse_args)
from checks import exchange, feed
from frames import MAC, PEER_MAC, truncated_and_flipped

NETWORK = ipaddress.ip_network("198.51.100.0/24")
SERVER = ipaddress.ip_address("198.51.100.2").packed
SCOPE = Scope(mac=MAC, targets=(NETWORK,), own=(SERVER,), leased={})
IPXE = (b"PXEClient:Arch:00000:UNDI:002001", b"iPXE")
EDK2 = (b"PXEClient:Arch:00007:UNDI:003000", b"")
HTTP = (b"HTTPClient:Arch:00016", b"")
BOOT = bytes(range(256)) * 5  # 1,280 bytes: two whole blocks of 512 and a short one


def dhcp(kind, classes=(b"", b""), arch=None, mac=PEER_MAC, **options):
    listed = [("message-type", kind)] + list(options.items())
    if classes[0]:
        listed.append(("vendor_class_id", classes[0]))
    if classes[1]:
        listed.append(("user_class", classes[1]))
    if arch is not None:
        listed.append(("pxe_client_architecture", arch.to_bytes(2, "big")))
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                 IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) /
                 BOOTP(op=1, xid=7, chaddr=mac2str(mac) + bytes(10)) /
                 DHCP(options=listed + ["end"]))


def services(boot_files=None, files=None, framing=Framing()):
    events = Events()
    dhcpd = DhcpServer(NETWORK, SERVER, SCOPE, framing, events, boot_files)
    tftp = TftpServer(files or {"boot.ipxe": BOOT}, SERVER, SCOPE, framing, events)
    return dhcpd, tftp


def lease(dhcpd, classes, arch=None, now=0.0):
    """DISCOVER, OFFER, REQUEST, ACK: the offer dissected, the verdicts."""
    offer, changed = feed(dhcpd, "tap0", dhcp("discover", classes, arch), now)
    packet = Ether(offer.reply)
    request = dhcp("request", classes, arch, requested_addr=packet[BOOTP].yiaddr,
                   server_id="198.51.100.2")
    _, more = feed(dhcpd, "tap0", request, now + 0.1)
    return packet, changed + more


def options_of(packet):
    return {o[0]: o[1] for o in packet[DHCP].options if isinstance(o, tuple)}


# -- the offer a PXE client needs

@pytest.mark.parametrize("classes, arch, boot_files, expected", [
    (IPXE, 0, {"": "boot.ipxe"}, "boot.ipxe"),
    (IPXE, 0, {"bios": "undionly.kpxe", "ipxe": "boot.ipxe"}, "boot.ipxe"),  # iPXE: its own
    (EDK2, 7, {"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}, "snponly.efi"),
    (EDK2, 9, {"efi-x64": "snponly.efi"}, "snponly.efi"),
    (EDK2, 0, {"efi-x64": "snponly.efi"}, None),  # none for its architecture
    (HTTP, 16, {"": "boot.ipxe"}, None),  # HTTP boot: no TFTP name will do
    ((b"", b""), None, {"": "boot.ipxe"}, None),  # an operating system's client
])
def test_the_boot_file_by_stage_and_architecture(classes, arch, boot_files, expected):
    dhcpd, _ = services(boot_files)
    offer, _ = feed(dhcpd, "tap0", dhcp("discover", classes, arch), 0.0)
    packet = Ether(offer.reply)
    options = options_of(packet)
    bootp = packet[BOOTP]
    if expected is None:
        assert bootp.siaddr == "0.0.0.0" and not bootp.file.strip(b"\0")
        assert "boot-file-name" not in options and "vendor_class_id" not in options
        return
    assert (bootp.siaddr, bootp.file.rstrip(b"\0")) == ("198.51.100.2", expected.encode())
    assert options["boot-file-name"] == expected.encode()
    # No option 60: with "PXEClient" and no option 43, EDK2 takes the offer
    # for a BINL one and asks port 4011 again (PXE-E16 here, measured); as
    # a plain offer with a boot file it REQUESTs and fetches it.
    assert "vendor_class_id" not in options
    assert options["message-type"] == 2 and packet[Dot1Q].vlan == 0
    fresh = packet.copy()
    del fresh[IP].chksum, fresh[UDP].chksum, fresh[IP].len, fresh[UDP].len
    assert bytes(Ether(bytes(fresh))) == bytes(packet)


def test_the_ack_names_the_boot_file_too():
    dhcpd, _ = services({"": "boot.ipxe"})
    offer = Ether(feed(dhcpd, "tap0", dhcp("discover", IPXE), 0.0)[0].reply)
    ack, _ = feed(dhcpd, "tap0", dhcp("request", IPXE, requested_addr=offer[BOOTP].yiaddr,
                                      server_id="198.51.100.2"), 0.1)
    packet = Ether(ack.reply)
    assert options_of(packet)["message-type"] == 5
    assert packet[BOOTP].file.rstrip(b"\0") == b"boot.ipxe"


@pytest.mark.parametrize("vendor, user, stage", [
    (b"PXEClient:Arch:00000:UNDI:002001", b"iPXE", STAGE_IPXE),
    (b"PXEClient:Arch:00007:UNDI:003010", b"", STAGE_IPXE),
    (b"PXEClient:Arch:00007:UNDI:003000", b"", STAGE_EDK2),
    (b"HTTPClient:Arch:00016:UNDI:003001", b"", STAGE_HTTP),
    (b"PXEClient:Arch:00000:UNDI:002001", b"", STAGE_IPXE),
    (b"PXEClient:Arch:00000", b"", "PXE"),
    (b"udhcp 1.35.0", b"", ""),
    (b"", b"", ""),
])
def test_the_stage_from_the_classes(vendor, user, stage):
    assert dhcp_stage(vendor, user) == stage


# -- each stage judged apart

def test_a_stage_change_flips_no_earlier_verdict():
    dhcpd, _ = services({"": "boot.ipxe"})
    _, changed = lease(dhcpd, IPXE, 0)
    assert [(c.stage, c.verdict) for c in changed] == [(STAGE_IPXE, "accepts")]
    assert "(firmware, iPXE; 198.51.100." in changed[0].summary()
    for now in (10.0, 12.0, 14.0):  # then the OS's client drops its offers
        feed(dhcpd, "tap0", dhcp("discover"), now)
    verdicts = {c.stage: c.verdict for c in dhcpd.clients.values()}
    assert verdicts == {STAGE_IPXE: "accepts", "": "drops"}
    assert dhcpd.verdict_of("tap0", mac2str(PEER_MAC)) == "drops"  # the latest stage's


@pytest.mark.parametrize("classes, boot_files, why", [
    (EDK2, None, "EDK2 PXE ignores an offer without a boot file"),
    (HTTP, {"": "boot.ipxe"}, "UEFI HTTP boot waits for an offer with a boot URL"),
])
def test_a_stage_whose_silence_says_nothing_is_no_verdict_never_a_drop(classes, boot_files,
                                                                        why):
    dhcpd, _ = services(boot_files)
    changes = [feed(dhcpd, "tap0", dhcp("discover", classes), now)[1] for now in (0, 2, 4, 6)]
    assert [len(c) for c in changes] == [1, 0, 0, 0]
    [client] = dhcpd.clients.values()
    assert client.verdict == "no verdict" and why in client.summary()
    assert overall_status([dhcpd]) == EXIT_NO_VERDICT
    assert dhcpd.decided()  # --until-verdict need not wait for it


def test_an_edk2_client_offered_its_boot_file_is_judged():
    dhcpd, _ = services({"efi-x64": "snponly.efi"})
    for now in (0.0, 4.0, 8.0):
        feed(dhcpd, "tap0", dhcp("discover", EDK2, 7), now)
    [client] = dhcpd.clients.values()
    assert client.verdict == "drops" and client.stage == STAGE_EDK2
    assert "(firmware, EDK2 PXE; offered 198.51.100." in client.summary()


# -- TFTP

CLIENT_IP, CLIENT_PORT = "198.51.100.77", 2000


def tftp_frame(payload, port=69, src=CLIENT_IP, sport=CLIENT_PORT, mac=PEER_MAC):
    return bytes(Ether(src=mac, dst=MAC) / IP(src=src, dst="198.51.100.2") /
                 UDP(sport=sport, dport=port) / payload)


def rrq(name=b"boot.ipxe", mode=b"octet", **options):
    packet = TFTP() / TFTP_RRQ(filename=name, mode=mode)
    if options:
        packet /= TFTP_Options(options=[TFTP_Option(oname=key.encode(), value=str(value).encode())
                                        for key, value in options.items()])
    return packet


def ack(block):
    return TFTP() / TFTP_ACK(block=block)


def answered(tftp, frame, now):
    answer, changed = feed(tftp, "tap0", frame, now)
    reply = answer and answer.reply and Ether(answer.reply)
    return answer, reply, changed


def assert_udp_right(reply, sport_any=True):
    assert reply[Dot1Q].vlan == 0 and reply.src == MAC and reply.dst == PEER_MAC
    assert (reply[IP].src, reply[IP].dst, reply[IP].ttl) == ("198.51.100.2", CLIENT_IP, 64)
    assert reply[UDP].dport == CLIENT_PORT
    fresh = reply.copy()
    del fresh[IP].chksum, fresh[UDP].chksum
    assert bytes(Ether(bytes(fresh))) == bytes(reply)  # both checksums right


def test_a_read_request_without_options_gets_block_1_from_a_port_of_its_own():
    _, tftp = services()
    answer, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    assert_udp_right(reply)
    assert 61440 <= reply[UDP].sport <= 61695
    data = TFTP(bytes(reply[UDP].payload))
    assert data.op == 3 and data[TFTP_DATA].block == 1 and data[TFTP_DATA].load == BOOT[:512]


def test_options_are_acknowledged_and_then_the_blocks_follow_to_the_end():
    _, tftp = services()
    _, oack, _ = answered(tftp, tftp_frame(rrq(blksize=1024, tsize=0, timeout=3)), 0.0)
    port = oack[UDP].sport
    assert TFTP(bytes(oack[UDP].payload)).op == 6
    assert bytes(oack[UDP].payload)[2:] == b"blksize\x001024\x00tsize\x001280\x00timeout\x003\x00"
    got = b""
    for block in (0, 1):
        _, reply, _ = answered(tftp, tftp_frame(ack(block), port=port), 0.1 + block)
        data = TFTP(bytes(reply[UDP].payload))[TFTP_DATA]
        assert data.block == block + 1
        got += data.load
    answer, reply, changed = answered(tftp, tftp_frame(ack(2), port=port), 3.0)
    assert reply is None and answer.kind == "the last block acknowledged" and got == BOOT
    [client] = changed
    assert client.verdict == "accepts" and client.summary().endswith(
        "it fetched boot.ipxe (1,280 bytes, 2 blocks)")
    assert [e["event"] for e in client.evidence] == ["read request", "fetched", "accepted"]
    assert not tftp.transfers and not tftp.by_port


def test_a_block_size_past_the_mtu_is_cut_to_what_fits():
    _, tftp = services()
    _, oack, _ = answered(tftp, tftp_frame(rrq(blksize=8192)), 0.0)
    assert f"blksize\0{TFTP_BLOCK_MAX}\0".encode() in bytes(oack[UDP].payload)


def test_a_client_that_drops_the_blocks_asks_again_and_drops():
    _, tftp = services()
    _, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    port = reply[UDP].sport
    answered(tftp, tftp_frame(ack(1), port=port), 0.1)  # block 2 goes
    changes = [answered(tftp, tftp_frame(ack(1), port=port), t)[2] for t in (1.1, 2.1, 3.1)]
    assert [bool(c) for c in changes] == [False, True, False]  # the ask, and two more
    [client] = tftp.clients.values()
    assert client.verdict == "drops"
    assert "sent 3 requests for block 2 of boot.ipxe in 2.0 s and every one was answered: " \
           "it drops TFTP blocks tagged vlan 0, p 0" in client.summary()


def test_a_read_request_repeated_before_any_block_arrived_is_a_drop_too():
    _, tftp = services()
    changes = [answered(tftp, tftp_frame(rrq()), t)[2] for t in (0.0, 2.0, 4.0)]
    assert [bool(c) for c in changes] == [False, False, True]
    assert len(tftp.transfers) == 1  # one a client, the newest


def test_an_unacknowledged_block_goes_again_then_the_transfer_is_given_up():
    _, tftp = services()
    _, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    assert tftp.due(0.0) == pytest.approx(1.0)
    resent = []
    now = 0.0
    for _ in range(TFTP_RETRIES):
        now += tftp.due(now)
        frames, _ = tftp.send_due(now, {"tap0"})
        resent += [(frame, counter) for _, frame, counter in frames]
    assert [Ether(f) for f, _ in resent] == [reply] * TFTP_RETRIES
    assert {counter for _, counter in resent} == {"resent"}
    now += tftp.due(now)
    frames, decided = tftp.send_due(now, {"tap0"})
    assert frames == [] and not tftp.transfers
    [client] = decided
    assert client.verdict == "no verdict" and "asked no more" in client.summary()


@pytest.mark.parametrize("payload, code", [
    (rrq(b"../../etc/passwd"), 1),
    (rrq(b"/etc/passwd"), 1),
    (rrq(b"boot.ipxe/../../etc/passwd"), 1),
    (rrq(b"BOOT.IPXE"), 1),
    (rrq(b"boot.ipxe", b"netascii"), 0),
    (TFTP() / TFTP_WRQ(filename=b"boot.ipxe", mode=b"octet"), 2),
    (TFTP() / TFTP_WRQ(filename=b"../x", mode=b"octet"), 2),
])
def test_what_is_refused_gets_an_error_and_nothing_is_opened(payload, code, monkeypatch):
    monkeypatch.setattr("builtins.open", lambda *args, **kwargs: pytest.fail("opened"))
    _, tftp = services()
    answer, reply, _ = answered(tftp, tftp_frame(payload), 0.0)
    error = TFTP(bytes(reply[UDP].payload))
    assert error.op == 5 and error[TFTP_ERROR].errorcode == code
    assert_udp_right(reply)
    assert not tftp.transfers


def test_a_lease_naming_the_boot_file_expects_the_read_request():
    dhcpd, tftp = services({"": "boot.ipxe"})
    lease(dhcpd, IPXE, 0)
    [client] = tftp.clients.values()
    assert (client.stage, client.verdict) == (STAGE_IPXE, None)
    assert not tftp.decided()  # --until-verdict waits for the file


def test_acknowledgements_from_another_station_or_port_are_no_ones():
    _, tftp = services()
    _, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    port = reply[UDP].sport
    for frame in (tftp_frame(ack(1), port=port, mac="52:54:00:00:00:99"),
                  tftp_frame(ack(1), port=port, sport=3000),
                  tftp_frame(ack(1), port=port, src="198.51.100.78"),
                  tftp_frame(ack(1), port=port + 1 if port < 61695 else port - 1)):
        assert answered(tftp, frame, 0.5)[0] is None
    assert tftp.transfers[("tap0", mac2str(PEER_MAC))].block == 1


def test_one_interface_holds_8_transfers_at_most_and_no_other_interfaces_room():
    _, tftp = services()
    tftp.budget = arp_icmp_vlan0.Budget(1000, 1000.0)
    for n in range(TFTP_TRANSFERS_EACH + 4):
        mac = f"52:54:00:00:01:{n:02x}"
        answer, _ = feed(tftp, "tap1", tftp_frame(rrq(timeout=255), mac=mac), 0.0)
        opcode = TFTP(bytes(Ether(answer.reply)[UDP].payload)).op
        assert opcode == (6 if n < TFTP_TRANSFERS_EACH else 5), n
    assert len(tftp.transfers) == TFTP_TRANSFERS_EACH
    # The same client asking again takes its own transfer's room.
    again = tftp_frame(rrq(), mac="52:54:00:00:01:00")
    assert TFTP(bytes(Ether(feed(tftp, "tap1", again, 0.1)[0].reply)[UDP].payload)).op == 3
    answer, _ = feed(tftp, "tap0", tftp_frame(rrq()), 0.2)
    assert TFTP(bytes(Ether(answer.reply)[UDP].payload))[TFTP_DATA].block == 1


def test_every_block_is_tagged_as_configured():
    _, tftp = services(framing=Framing(vlans=(100, 0), prio=5))
    _, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    assert bytes(Ether(answered(tftp, tftp_frame(rrq()), 0.1)[0].reply))[12:20] == \
        Framing(vlans=(100, 0), prio=5).tags


def test_boot_files_on_the_command_line(tmp_path, capsys, monkeypatch):
    boot = tmp_path / "boot.ipxe"
    boot.write_bytes(b"#!ipxe\necho hello\n")
    args = parse_args(["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(boot),
                       "--boot-file", f"efi-x64={boot}", "tap0"])
    assert args.boot_files == {"": ("boot.ipxe", boot.read_bytes()),
                               "efi-x64": ("boot.ipxe", boot.read_bytes())}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "boot.ipxe"
    other.write_bytes(b"#!ipxe\necho other\n")
    big = tmp_path / "big.efi"
    big.write_bytes(bytes(1025))
    monkeypatch.setattr(arp_icmp_vlan0, "TFTP_FILE_MAX", 1024)
    odd = tmp_path / "a=b"
    odd.mkdir()
    (odd / "x=y.efi").write_bytes(b"MZ")
    args = parse_args(["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", f"{odd}/x=y.efi",
                       "--boot-file", f"ipxe={odd}/x=y.efi", "tap0"])
    assert args.boot_files == {"": ("x=y.efi", b"MZ"), "ipxe": ("x=y.efi", b"MZ")}
    for argv, message in (
            (["--boot-file", str(boot), "tap0"], "--boot-file goes with --dhcp"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", "mips=x", "tap0"],
             "unknown ARCH 'mips'"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(tmp_path / "none"),
              "tap0"], "No such file or directory"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(tmp_path), "tap0"],
             "Is a directory"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(fifo), "tap0"],
             "not a regular file"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(boot), "--boot-file",
              f"bios={other}", "tap0"], "two different files named 'boot.ipxe'"),
            (["--ip", "198.51.100.2/24", "--dhcp", "--boot-file", str(big), "tap0"],
             "larger than 0 MiB")):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


SEEDS = [bytes(tftp_frame(rrq())), bytes(tftp_frame(rrq(blksize=1024, tsize=0))),
         bytes(tftp_frame(ack(1), port=61440)), bytes(tftp_frame(rrq(b"../../etc/passwd"))),
         bytes(tftp_frame(TFTP() / TFTP_WRQ(filename=b"x", mode=b"octet")))]


def check_any(frame):
    """Whatever the bytes: nothing raises; an answer is a TFTP packet in a
    well-formed, tagged UDP datagram to the asker, from the tool."""
    _, tftp = services()
    _, reply, _ = answered(tftp, tftp_frame(rrq()), 0.0)
    tftp.by_port[61440] = tftp.by_port.pop(reply[UDP].sport)  # so the seeds' ACKs match
    tftp.transfers[("tap0", mac2str(PEER_MAC))].port = 61440
    ethertype, offset = ethertype_and_offset(frame)
    answer = tftp.answer("tap0", frame, ethertype, offset, 0.5)
    tftp.observe(exchange("tap0", frame, answer, 0.5, tftp))
    if answer is None or answer.reply is None:
        return
    packet = Ether(answer.reply)
    assert packet.dst == Ether(frame).src and packet[Dot1Q].vlan == 0
    assert packet[IP].src == "198.51.100.2" and TFTP(bytes(packet[UDP].payload)).op in (3, 5, 6)
    fresh = packet.copy()
    del fresh[IP].chksum, fresh[UDP].chksum
    assert bytes(Ether(bytes(fresh))) == bytes(packet)


@given(st.sampled_from(SEEDS), st.integers(0, 200), st.lists(st.integers(0, 4000),
                                                             max_size=4))
def test_truncated_and_bit_flipped_tftp_frames(seed, cut, flips):
    check_any(truncated_and_flipped(seed, cut, flips))


@given(st.binary(max_size=300))
def test_random_bytes_after_a_udp_header_to_port_69(payload):
    check_any(tftp_frame(payload))


def test_the_seeds_are_answered():
    for seed in SEEDS:
        check_any(seed)
    assert arp_icmp_vlan0.TFTP_PORTS == (61440, 61695)  # what TFTP_FILTER passes
