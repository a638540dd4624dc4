# SPDX-License-Identifier: GPL-2.0-only
"""Verdict integrity against the real stack, in namespaces each test
creates: guests A, B and C, each a namespace of its own on a veth (vA, vB,
vC in the host namespace), served by one pattern. A attacks: DECLINEs of the
whole pool, a RELEASE and a REQUEST in B's name, 300 spoofed DISCOVER and
REQUEST pairs, one forged answer to a probe, 4,096 made-up guests, floods of
Router Solicitations. B and C run the real clients (busybox udhcpc, ping);
their leases, verdicts and the exit status must be what their own frames
say. Then the roll: with --dhcp --ra, status 0 only once both judged."""

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.tftp import TFTP, TFTP_RRQ
from scapy.utils import mac2str

from arp_icmp_vlan0 import DEFAULT_MAC, JUDGED_WITHIN, Leases
from netlab import TOOL, drop_vlan0, run

pytestmark = pytest.mark.lab("ip", "ping", "busybox", "nft", prefix="avzt-int")

NETWORK = ipaddress.ip_network("198.51.100.0/24")
SERVER = "198.51.100.2"
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
    bound|renew) ip addr add "$ip/$mask" dev "$interface";;
esac
"""
# Sends the frames (hex, a line each) read from stdin on the interface named.
SENDER = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
gap = float(sys.argv[2])
import time
for line in sys.stdin:
    sock.send(bytes.fromhex(line.strip()))
    if gap:
        time.sleep(gap)
"""


class Guest:
    """A guest namespace on veth `v{name}` (host side) / eth0 (its own)."""

    def __init__(self, lab, name, mac=None, ipv6=False):
        self.lab, self.name, self.host_if = lab, name, f"v{name}"
        self.ns = f"{lab.host}-{name}"
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.host_if, "netns", lab.host, "type", "veth", "peer",
            "name", "eth0", "netns", self.ns)
        if not ipv6:
            self.run("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
        if mac:
            self.run("ip", "link", "set", "eth0", "address", mac)
        for command in (("ip", "link", "set", "eth0", "up"), ("ip", "link", "set", "lo", "up")):
            self.run(*command)
        lab.in_host("ip", "link", "set", self.host_if, "up")
        self.mac = self.run("cat", "/sys/class/net/eth0/address").stdout.strip()

    def run(self, *cmd, check=True, timeout=30):
        return run("ip", "netns", "exec", self.ns, *cmd, check=check, timeout=timeout)

    def send(self, frames, gap=0.0):
        """Write `frames` (bytes) onto its eth0, `gap` seconds apart."""
        subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", SENDER, "eth0",
                        str(gap)], input="".join(f.hex() + "\n" for f in frames), text=True,
                       check=True, timeout=120)

    def udhcpc(self, tmp_path, *options, tries=4):
        """busybox udhcpc, as a stock guest runs it: the lease (address) or
        None."""
        script = tmp_path / f"udhcpc-{self.name}.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        self.run("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", str(tries),
                 "-T", "2", "-s", str(script), *options, check=False, timeout=60)
        addresses = self.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout.split()
        return next((a.split("/")[0] for a in addresses if a.startswith("198.51.100.")), None)

    def delete(self):
        run("ip", "netns", "del", self.ns, check=False)


@pytest.fixture
def guests(lab):
    """Make guests by name, deleted afterwards: guests("a", "b")."""
    made = []

    def make(*names, **options):
        for name in names:
            made.append(Guest(lab, name, **options))
        return made[-len(names):] if len(names) > 1 else made[-1]
    yield make
    for guest in made:
        guest.delete()


def start(lab, *args, pattern="v[abc]"):
    path = os.path.join(lab.scratch, f"summary-{len(lab.processes)}.json")
    tool = lab.start(lab.host, sys.executable, TOOL, "--json", path, *args, pattern)
    tool.summary_path = path
    tool.wait_for("Hit Ctrl-C")
    return tool


def summary_of(tool):
    with open(tool.summary_path) as file:
        return json.load(file)


def dhcp(kind, mac, src_mac=None, **options):
    listed = [("message-type", kind)] + list(options.items()) + ["end"]
    return bytes(Ether(src=src_mac or mac, dst="ff:ff:ff:ff:ff:ff") /
                 IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) /
                 BOOTP(op=1, xid=0x1234, chaddr=mac2str(mac) + bytes(10)) / DHCP(options=listed))


def test_as_declines_release_and_request_in_bs_name_leave_b_its_lease_and_c_a_new_one(
        lab, guests, tmp_path):
    a, b, c = guests("a", "b", "c")
    tool = start(lab, "-4", "--ip", f"{SERVER}/24", "--dhcp", "-q")
    b_address = b.udhcpc(tmp_path)
    assert b_address, tool.output
    declines = [dhcp("decline", a.mac, requested_addr=f"198.51.100.{host}", server_id=SERVER)
                for host in range(1, 255)]
    in_bs_name = [dhcp("decline", b.mac, requested_addr=b_address, server_id=SERVER),
                  dhcp("release", b.mac, server_id=SERVER),
                  dhcp("request", b.mac, requested_addr=b_address, server_id="198.51.100.77")]
    a.send(declines + in_bs_name)
    time.sleep(0.5)
    # B renews, as its lease's half-life would make it: the same address, ACKed.
    b.run("ip", "addr", "flush", "dev", "eth0")
    assert b.udhcpc(tmp_path, "-r", b_address) == b_address, tool.output
    c_address = c.udhcpc(tmp_path)
    assert c_address and c_address != b_address, tool.output
    assert tool.stop() == 0
    record = summary_of(tool)
    clients = {client["interface"]: client for client in record["dhcp"]["clients"]}
    assert clients["vb"]["verdict"] == "accepts" and clients["vc"]["verdict"] == "accepts"
    leases = {(lease["interface"], lease["address"]): lease["state"]
              for lease in record["dhcp"]["leases"]}
    assert leases[("vb", b_address)] == "bound" and leases[("vc", c_address)] == "bound"
    assert "drops" not in tool.output


def test_300_spoofed_discover_and_request_pairs_on_a_leave_c_a_lease(lab, guests, tmp_path):
    a, c = guests("a", "c")
    tool = start(lab, "-4", "--ip", f"{SERVER}/24", "--dhcp", "-q")
    pool = Leases(NETWORK, ipaddress.ip_address(SERVER).packed)
    frames = []
    for n in range(300):
        mac = f"02:00:00:00:{n >> 8:02x}:{n & 255:02x}"
        wanted = ipaddress.ip_address(pool.preferred(("va", mac2str(mac)), 0))
        frames += [dhcp("discover", mac),
                   dhcp("request", mac, requested_addr=str(wanted), server_id=SERVER)]
    a.send(frames)
    assert c.udhcpc(tmp_path), tool.output
    assert tool.stop() == 0
    record = summary_of(tool)
    assert sum(lease["interface"] == "va" for lease in record["dhcp"]["leases"]) <= 16
    refused = record["dhcp"]["over_budget"].get("va", 0) + \
        record["dhcp"]["refused_at_cap"].get("va", 0)
    assert refused > 0, record["dhcp"]


def test_one_spoofed_arp_reply_from_a_cannot_make_bs_probe_verdict_drops(lab, guests):
    a, b = guests("a", "b")
    b.run("ip", "addr", "add", "198.51.100.50/24", "dev", "eth0")
    tool = start(lab, "-4", "--ip", f"{SERVER}/24", "--probe", "198.51.100.50",
                 "--until-verdict", "--timeout", "30", "-q", pattern="v[ab]")
    forged = Ether(src=b.mac, dst=DEFAULT_MAC) / ARP(op=2, hwsrc=b.mac, psrc="198.51.100.50",
                                                     hwdst=DEFAULT_MAC, pdst="0.0.0.0")
    a.send([bytes(forged)])
    assert tool.wait(timeout=40) == 0, tool.output
    probes = {p["interface"]: p["verdict"] for p in summary_of(tool)["probes"]}
    assert probes == {"vb": "answers", "va": "no answer"}, tool.output


def made_up_guests(count):
    """`count` guests that accept, each an ask, then a ping to the tool."""
    frames = []
    for n in range(count):
        mac = f"02:00:00:01:{n >> 8:02x}:{n & 255:02x}"
        frames += [bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") /
                         ARP(op=1, hwsrc=mac, psrc="203.0.113.1", pdst="203.0.113.2")),
                   bytes(Ether(src=mac, dst=DEFAULT_MAC) / IP(src="203.0.113.1",
                                                              dst="203.0.113.2") / ICMP())]
    return frames


def b_drops_and_a_floods(lab, guests, *options):
    """B (behind the VLAN-0 drop rule) drops the replies; then A, as 4,200
    made-up guests that accept. The tool's output and JSON."""
    a, b, c = guests("a", "b", "c")
    for guest, address in ((a, "203.0.113.1"), (b, "198.51.100.1"), (c, "198.51.100.3")):
        guest.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
    drop_vlan0(b.run, "eth0")
    tool = start(lab, "-4", "-q", *options)
    if "--until-verdict" in options:
        # C asks once and says no more: its guest stays without a verdict.
        c.run("busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0", SERVER, check=False)
    b.run("ping", "-c", "3", "-W", "1", SERVER, check=False)  # three asks: B drops
    tool.wait_for("it drops ARP replies tagged vlan 0, p 0")
    a.send(made_up_guests(4200), gap=0.0003)  # none lost in a socket's buffer
    time.sleep(1)  # every one of them taken in
    status = tool.stop()
    record = summary_of(tool)
    verdicts = {(g["interface"], g["mac"]): g["verdict"] for g in record["guests"]}
    assert verdicts.get(("vb", b.mac)) == "drops", tool.output  # 1.3.0 forgot it
    assert sum(interface == "va" for interface, _ in verdicts) == 256
    assert record["guests_not_tracked"] == 4200 - 256, record["guests_not_tracked"]
    assert f"guests not tracked: {4200 - 256:,} on va" in tool.output
    return status, record, verdicts, c


def test_bs_drop_is_never_forgotten_whatever_a_makes_up(lab, guests):
    b_drops_and_a_floods(lab, guests, "--timeout", "60")


def test_bs_drop_survives_4096_made_up_guests_from_a_and_the_status_is_3(lab, guests):
    status, record, verdicts, c = b_drops_and_a_floods(lab, guests, "--until-verdict",
                                                        "--timeout", "60")
    assert verdicts[("vc", c.mac)] is None  # C still without a verdict
    assert status == 3 and record["exit_status"] == 3


def test_two_guests_with_one_mac_on_two_interfaces_get_their_own_leases_and_verdicts(
        lab, guests, tmp_path):
    a, b = guests("a", "b", mac="52:54:00:12:34:56")
    drop_vlan0(b.run, "eth0")
    tool = start(lab, "-4", "--ip", f"{SERVER}/24", "--dhcp", "--until-verdict", "--timeout",
                 "40", "-q", pattern="v[ab]")
    script = tmp_path / "udhcpc-b.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    b_client = lab.start(b.ns, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4",
                         "-T", "2", "-s", str(script))  # B asks meanwhile, in vain
    time.sleep(0.5)  # its first DISCOVER heard before A binds
    assert a.udhcpc(tmp_path), tool.output
    assert tool.wait(timeout=50) == 3, tool.output
    b_client.wait(timeout=30)
    record = summary_of(tool)
    verdicts = {client["interface"]: client["verdict"] for client in record["dhcp"]["clients"]}
    assert verdicts == {"va": "accepts", "vb": "drops"}
    assert [lease["interface"] for lease in record["dhcp"]["leases"]
            if lease["state"] == "bound"] == ["va"]


def solicitations(mac, source, count, spoofed=False):
    frames = []
    for n in range(count):
        src = f"02:00:00:02:{n >> 8 & 255:02x}:{n & 255:02x}" if spoofed else mac
        frame = Ether(src=src, dst="33:33:00:00:00:02") / IPv6(src=source, dst="ff02::2",
                                                                hlim=255) / ICMPv6ND_RS()
        if source != "::":
            frame /= ICMPv6NDOptSrcLLAddr(lladdr=src)
        frames.append(bytes(frame))
    return frames


@pytest.mark.parametrize("source, spoofed", [("::", False), ("fe80::1", False),
                                             ("fe80::1", True)],
                         ids=["from-unspecified", "from-link-local", "from-made-up-macs"])
def test_1000_solicitations_a_second_for_2_s_get_a_dozen_advertisements(
        lab, guests, source, spoofed):
    a = guests("a")
    tool = start(lab, "-6", "--ip", "2001:db8::2/64", "--ra", "-q", pattern="va")
    a.send(solicitations(a.mac, source, 2000, spoofed), gap=0.001)
    time.sleep(MAX_WAIT)
    assert tool.stop() == 0
    counts = summary_of(tool)["interfaces"]["va"]
    assert counts["advertisements"] <= 12, counts
    assert counts["answered_later"] >= 1000, counts  # taken, not ignored


MAX_WAIT = 4  # seconds: the last answer to all nodes waits up to 3.5


def test_dhcp_and_solicitations_from_a_group_or_the_tools_own_mac_get_nothing(lab, guests):
    a = guests("a")  # IPv6 off: no solicitation of its own
    tool = start(lab, "--ip", f"{SERVER}/24", "--ip", "2001:db8::2/64", "--dhcp", "--ra", "-q",
                 pattern="va")
    time.sleep(0.5)  # past the first unsolicited advertisement
    frames = []
    for mac in ("ff:ff:ff:ff:ff:ff", DEFAULT_MAC):
        frames.append(dhcp("discover", mac))
        frames += solicitations(mac, "fe80::1", 1) + solicitations(mac, "::", 1)
    a.send(frames)
    time.sleep(MAX_WAIT)
    assert tool.stop() == 0
    counts = summary_of(tool)["interfaces"]["va"]
    assert counts["replies"]["dhcp"] == 0 and counts["answered_later"] == 0, counts


def test_a_guest_that_solicits_5_s_after_its_lease_ends_the_run_at_the_ra_verdict(
        lab, guests, tmp_path):
    a = guests("a")  # IPv6 off: its lease first
    tool = start(lab, "--ip", f"{SERVER}/24", "--ip", "2001:db8::2/64", "--dhcp", "--ra",
                 "--until-verdict", "--timeout", "60", "-q", pattern="va")
    assert a.udhcpc(tmp_path), tool.output
    time.sleep(5)
    assert tool.popen.poll() is None, tool.output  # the RA judge has not judged it
    a.run("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")  # now it solicits
    assert tool.wait(timeout=40) == 0, tool.output
    record = summary_of(tool)
    assert [client["verdict"] for client in record["ra"]] == ["accepts"], tool.output
    assert record["judged"][0]["not_judged"] == []


def test_a_guest_that_never_solicits_is_status_4_with_the_missing_judge_named(
        lab, guests, tmp_path):
    a = guests("a")
    tool = start(lab, "--ip", f"{SERVER}/24", "--ip", "2001:db8::2/64", "--dhcp", "--ra",
                 "--until-verdict", "--timeout", "60", "-q", pattern="va")
    started = time.monotonic()
    assert a.udhcpc(tmp_path), tool.output
    assert tool.wait(timeout=40) == 4, tool.output
    assert JUDGED_WITHIN <= time.monotonic() - started < JUDGED_WITHIN + 10
    assert (f"va: guest {a.mac}: no Router Solicitation nor an address taken from the prefix "
            f"in {JUDGED_WITHIN:g} s: Router Advertisements not judged (--ra)") in tool.output
    record = summary_of(tool)
    assert record["ra"] == [] and record["judged"][0]["not_judged"] == ["ra"]
    assert record["exit_status"] == 4


def read_request(mac, source, name, sport):
    packet = TFTP() / TFTP_RRQ(filename=name.encode(), mode=b"octet")
    return bytes(Ether(src=mac, dst=DEFAULT_MAC) / IP(src=source, dst=SERVER) /
                 UDP(sport=sport, dport=69) / packet)


def test_read_requests_in_bs_name_on_a_restart_nothing_of_bs_fetch(lab, guests, tmp_path):
    a, b = guests("a", "b")
    b.run("ip", "addr", "add", "198.51.100.50/24", "dev", "eth0")
    boot = tmp_path / "boot.bin"
    boot.write_bytes(os.urandom(8 << 20))
    tool = start(lab, "-4", "--ip", f"{SERVER}/24", "--dhcp", "--boot-file", str(boot), "-q",
                 pattern="v[ab]")
    # All through B's fetch, read requests in B's name (its MAC and
    # address) on A's interface: a transfer of B's would start again.
    in_bs_name = [read_request(b.mac, "198.51.100.50", "boot.bin", port)
                  for port in range(40000, 40150)]
    attack = threading.Thread(target=a.send, args=(in_bs_name, 0.01))
    attack.start()
    got = tmp_path / "got.bin"
    result = b.run("busybox", "tftp", "-g", "-r", "boot.bin", "-l", str(got), "-b", "512",
                   SERVER, check=False, timeout=120)
    attack.join()
    assert result.returncode == 0, result.stderr + tool.output
    assert got.read_bytes() == boot.read_bytes()
    assert tool.stop() == 0
    record = summary_of(tool)
    clients = {client["interface"]: client for client in record["tftp"]["clients"]
               if client["mac"] == b.mac}
    assert clients["vb"]["verdict"] == "accepts", clients
    assert "va" in clients  # A's asks in B's name: a record of A's interface
    assert record["interfaces"]["vb"]["resent"] == 0
    answered = record["interfaces"]["va"]["replies"]["tftp"]
    assert 0 < answered <= 8 + 2 * 3, answered  # the read-request budget
