#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Side-by-side benchmark of ARP and ICMP echo responders on one veth pair.

USAGE: sudo python3 tests/figures/benchmark.py [--quick] [--peers a,b,...] [--json FILE]
                                               [--tool PATH]
       sudo python3 tests/figures/benchmark.py --two-guests [--floods a,b,...]
                                               [--flood-rate N] [--flood-seconds S]
                                               [--peers a,b,...]
                                               [--json FILE] [--tool PATH]

Builds its own pair of network namespaces ("guest" and "host", joined by a
veth, documentation addresses only, removed on every exit path) and measures,
in one run and on the same veth pair, these peers in the host namespace:

  kernel        the Linux stack itself, the address configured (the limit)
  c-floor       floor.c, beside this file: blocking recvfrom, swap, send (the
                user-space floor), compiled with cc; skipped, with a line, without cc
  python-floor  the same minimal loop in bare Python (the interpreter's floor)
  tool-q        arp_icmp_vlan0.py -q
  tool-busy-poll  arp_icmp_vlan0.py -q --busy-poll (a core kept busy)
  tool          arp_icmp_vlan0.py, a line per reply (to /dev/null)
  card-send     the design card's loop around the tool's byte core:
                sniff(opened_socket=..., prn=...) and the socket's send()
  card-sendp    the card's loop exactly: the same with sendp(reply, socket=...)
  scapy-am-reused  Scapy's ARP_am + ICMPEcho_am, one socket reused (socket=)
  scapy-am      Scapy's ARP_am + ICMPEcho_am as usually run (iface=)

Every peer but the kernel answers as 02:76:6c:61:6e:30 with VLAN 0 tags.
Figures per peer: idle ping round trips (ping -i 0.2, in rounds that take the
peers in turn, so that the machine's drift falls on all alike: avg, p50,
p99); the highest ICMP echo and ARP request rates answered with < 0.1% loss
(a fixed-rate ladder); CPU microseconds per reply; peak RSS; the time from
launch to the first reply; and whether a burst of 1,000 back-to-back echo
requests is answered exactly once each. Prints a table with ratios to the
kernel and to the C floor (RTT also to the Python floor), and writes JSON.
Not part of the pytest run: it takes minutes and its numbers depend on the
machine.

--two-guests measures instead whether one guest can starve another: a
second guest namespace (guest B, 203.0.113.1/24) is joined to the same host
namespace by a second veth, and peers kernel, tool and tool-q serve both host
ends (the kernel with 198.51.100.2/24 and 203.0.113.2/24). Guest A floods at
--flood-rate frames a second for --flood-seconds, one flood after the other
(--floods): "fragments", tiny IPv4 fragments of ICMP echo datagrams that
never complete (8 data bytes, more-fragments set, every offset of 8
datagrams once); "echo", whole echo requests; "big", the fragments of whole
64 KB echo requests (ping -s 65000), whose replies the peer fragments in
turn; "dhcp", DHCPDISCOVERs from 4,096 made-up clients; "rs", Router
Solicitations from 4,096 made-up stations (for these two the tool runs with
--dhcp --ra and --ip for both guests' prefixes). Meanwhile guest B pings the
peer every 0.2 s. A row per peer and flood: the
rate achieved, what guest A received, guest B's replies received of sent,
their average and highest round trip, and the peer's CPU (of one core, over
the flood). Goal: guest B keeps every reply, and a round trip within a few
milliseconds, as with the kernel.

--tool PATH measures another arp_icmp_vlan0.py (a copy of a known version,
while this repository's is being edited) wherever the benchmark runs the
tool; the namespaces are still made by this repository's tests/lib/netlab.py.

The load generator is this file run inside the guest namespace (--generate
...): it sends prebuilt frames on a packet socket at a fixed rate and counts
what arrives from the veth's own receive counter.
"""

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(TESTS))  # the tool
sys.path.insert(0, os.path.join(TESTS, "lib"))  # netlab

from netlab import (GUEST_IF, GUEST_IP, HOST_IF, TOOL, TOOL_IP, Lab,  # noqa: E402
                    above_zero, command_line, names_from, require, text_table)
from netlab import run as run_command  # noqa: E402 (run: this file's main mode)

LADDER = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 75_000, 100_000)
LOSS_LIMIT = 0.001
BURST = 1000
GUEST_MAC = "02:00:00:00:00:01"
TOOL_MAC = "02:76:6c:61:6e:30"
PEERS = ("kernel", "c-floor", "python-floor", "tool-q", "tool-busy-poll", "tool", "card-send",
         "card-sendp", "scapy-am-reused", "scapy-am")

# --two-guests: guest B on a second veth into the same host namespace.
TWO_GUEST_PEERS = ("kernel", "tool", "tool-q")
FLOODS = ("fragments", "echo", "big", "dhcp", "rs")
# The tool's options for a flood of DHCPDISCOVERs or Router Solicitations:
# what it serves then, guest B's address among the --ip ones.
SERVICE_OPTIONS = ("--ip", "198.51.100.2/24", "--ip", "203.0.113.2/24", "--ip",
                   "2001:db8::2/64", "--dhcp", "--ra")
BIG_PING = 65000      # data bytes of a "big" flood's echo requests, as ping -s 65000
HOST_B_IF, GUEST_B_IF = "veth-host-b", "veth-guest-b"
GUEST_B_IP, PEER_B_IP = "203.0.113.1", "203.0.113.2"
PING_INTERVAL = 0.2
FLOOD_SETTLE = 1.0    # seconds of flood before guest B's first ping, and after its last
FRAGMENT_IDS = 8      # 8 x 8,191 distinct fragments: none repeats in 16 s at 4,000/s
LAST_FRAGMENT_OFFSET = 8190  # in 8-byte units: the last whose 8 bytes end within 65,535


# ---------------------------------------------------------------- peers (host side)

def load_tool(path):
    """The arp_icmp_vlan0.py at `path` as a module of its own name, apart
    from the repository's that netlab imports."""
    spec = importlib.util.spec_from_file_location("measured_tool", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_floor(iface):
    """floor.c in Python: blocking recvfrom, swap, patch, send."""
    mac, address = bytes.fromhex(TOOL_MAC.replace(":", "")), socket.inet_aton(TOOL_IP)
    tag = b"\x81\x00\x00\x00"
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    while True:
        frame, where = sock.recvfrom(2048)
        if where[2] == socket.PACKET_OUTGOING or len(frame) < 42:
            continue
        if frame[12:14] == b"\x08\x06" and frame[21] == 1 and frame[38:42] == address:
            sock.send(frame[6:12] + mac + tag + frame[12:21] + b"\x02" + mac + address
                      + frame[22:32] + frame[42:])
        elif frame[12:14] == b"\x08\x00" and frame[:6] == mac and frame[23] == 1 \
                and frame[34] == 8:
            start = 14 + 4 * (frame[14] & 0x0F)
            patched = (frame[start + 2] << 8 | frame[start + 3]) + 0x0800
            patched = (patched & 0xFFFF) + (patched >> 16)
            sock.send(frame[6:12] + mac + tag + frame[12:26] + frame[30:34] + frame[26:30]
                      + frame[34:start] + b"\x00" + frame[start + 1:start + 2]
                      + patched.to_bytes(2, "big") + frame[start + 4:])


def card_socket(tool, iface):
    """The card's socket: Scapy's own L2Socket on `iface`, with the tool's
    kernel filter (the tool opens its packet sockets itself since 1.8.0:
    open_socket())."""
    from scapy.arch.linux import L2Socket
    from scapy.libs.structures import bpf_insn, sock_fprog
    sock = L2Socket(iface=iface, type=0, promisc=False)
    sock.ins.setsockopt(tool.SOL_PACKET, tool.PACKET_ADD_MEMBERSHIP, struct.pack(
        "IHH8s", socket.if_nametoindex(iface), tool.PACKET_MR_PROMISC, 0, b""))
    program = tool.REQUEST_FILTER
    insns = (bpf_insn * len(program))(*program)
    sock.ins.setsockopt(socket.SOL_SOCKET, tool.SO_ATTACH_FILTER,
                        sock_fprog(len(program), insns))
    sock.ins.bind((iface, tool.ETH_P_ALL))
    return sock


def card_loop(iface, send_with, tool_path):
    """The design card's shape around the tool's own core: Scapy's sniff()
    hands each request to a prn callback, which answers with the socket's
    send() or with sendp(reply, socket=...)."""
    from scapy.all import sendp, sniff
    tool = load_tool(tool_path)
    scope, framing = tool.Scope(), tool.Framing()
    sock = card_socket(tool, iface)

    def prn(packet):
        answer = tool.reply_to(bytes(packet), scope, framing)
        if answer is not None:
            if send_with == "sendp":
                sendp(answer.reply, socket=sock, verbose=False)
            else:
                sock.send(answer.reply)
    sniff(opened_socket=sock, prn=prn, store=False)


def answering_machines(iface, reuse):
    """Scapy's own responders, ARP_am and ICMPEcho_am, untagged."""
    from scapy.all import ARP_am, ICMPEcho_am, conf, get_if_hwaddr
    conf.verb = 0
    options = {"socket": conf.L2socket(iface=iface)} if reuse else {}
    ARP_am(iface=iface, IP_addr=TOOL_IP, ARP_addr=get_if_hwaddr(iface), **options).bg()
    ICMPEcho_am(iface=iface, **options)()


def per_call_costs(iface, tool_path):
    """Microseconds a call, on `iface`: what the card's way costs against
    what the tool does (warm, the best of five runs of many calls), and the
    three Internet checksums of an echo request and its reply (IP header,
    64-byte message, IP header) in a cold process (after 64 MiB of other
    memory went through the caches), Scapy's against the tool's."""
    import timeit
    from scapy.all import ICMPEcho_am, Ether, conf, sendp
    from scapy.utils import checksum as scapy_checksum
    tool = load_tool(tool_path)
    conf.verb = 0
    sock = card_socket(tool, iface)
    own = tool.open_socket(iface)
    frame = echo_frames(TOOL_MAC, 1)[0]
    scope, framing = tool.Scope(), tool.Framing()
    answering_machine = ICMPEcho_am(iface=iface)

    def warm(call, number):
        return round(min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6, 1)

    flood = bytearray(64 << 20)

    def cold(call):
        times = []
        for _ in range(41):
            flood[::64] = bytes(len(flood) // 64)  # a byte per cache line: they all turn over
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return round(statistics.median(times) * 1e6, 1)
    header, message = frame[14:34], frame[34:]
    return {
        "sendp_socket_us": warm(lambda: sendp(frame, socket=sock), 500),
        "socket_send_us": warm(lambda: own.send(frame), 5000),
        "sendp_iface_us": warm(lambda: sendp(frame, iface=iface), 20),
        "scapy_echo_reply_us": warm(
            lambda: bytes(answering_machine.make_reply(Ether(frame))), 200),
        "core_echo_reply_us": warm(lambda: tool.reply_to(frame, scope, framing), 5000),
        "checksums_cold_scapy_us": cold(lambda: (scapy_checksum(header), scapy_checksum(message),
                                                 scapy_checksum(header))),
        "checksums_cold_tool_us": cold(lambda: (tool.checksum(header), tool.checksum(message),
                                                tool.checksum(header))),
    }


def peer_command(name, floor_binary, tool, interfaces):
    """The command that starts peer `name` in the host namespace, or None for
    the kernel; the tool's peers serve all of `interfaces`, the others the
    first."""
    me = [sys.executable, os.path.abspath(__file__)]
    return {
        "kernel": None,
        "c-floor": [floor_binary, HOST_IF, TOOL_IP],
        "python-floor": me + ["--serve", "python-floor"],
        "tool-q": [sys.executable, tool, "-q", "-4", *interfaces],
        "tool": [sys.executable, tool, "-4", *interfaces],
        "tool-busy-poll": [sys.executable, tool, "-q", "--busy-poll", "-4", *interfaces],
        "card-send": me + ["--serve", "card-send", "--tool", tool],
        "card-sendp": me + ["--serve", "card-sendp", "--tool", tool],
        "scapy-am-reused": me + ["--serve", "scapy-am-reused"],
        "scapy-am": me + ["--serve", "scapy-am"],
    }[name]


def serve(name, tool_path):
    if name == "python-floor":
        python_floor(HOST_IF)
    elif name.startswith("card-"):
        card_loop(HOST_IF, name[len("card-"):], tool_path)
    else:
        answering_machines(HOST_IF, reuse=name == "scapy-am-reused")


# ---------------------------------------------------------------- generator (guest side)

def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo_frames(peer_mac, count):
    """Prebuilt echo requests, distinct sequence numbers, 56 data bytes."""
    frames = []
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 84, 0, 0, 64, 1, 0,
                               socket.inet_aton(GUEST_IP), socket.inet_aton(TOOL_IP)))
    ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
    for seq in range(count):
        icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + bytes(range(56)))
        icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
        frames.append(mac_bytes(peer_mac) + mac_bytes(GUEST_MAC) + b"\x08\x00" +
                      bytes(ip) + bytes(icmp))
    return frames


def fragment_frames(peer_mac):
    """Tiny fragments of ICMP echo datagrams that never complete: 8 data
    bytes each, more-fragments set, every offset of FRAGMENT_IDS datagrams
    once, the datagrams in turn (so a peer that reassembles holds them all
    until it gives up on them)."""
    head = mac_bytes(peer_mac) + mac_bytes(GUEST_MAC) + b"\x08\x00"
    addresses = socket.inet_aton(GUEST_IP) + socket.inet_aton(TOOL_IP)
    echo_header = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 0)  # never summed: never whole
    frames = []
    for offset in range(LAST_FRAGMENT_OFFSET + 1):
        data = echo_header if offset == 0 else bytes(range(8))
        for ident in range(1, FRAGMENT_IDS + 1):
            ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 28, ident, 0x2000 | offset, 64, 1,
                                       0) + addresses)
            ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
            frames.append(head + bytes(ip) + data)
    return frames


def big_frames(peer_mac, datagrams=64):
    """The fragments of `datagrams` whole 64 KB echo requests (ping -s
    65000), 1,480 data bytes each, one datagram after the other."""
    head = mac_bytes(peer_mac) + mac_bytes(GUEST_MAC) + b"\x08\x00"
    addresses = socket.inet_aton(GUEST_IP) + socket.inet_aton(TOOL_IP)
    frames = []
    for ident in range(1, datagrams + 1):
        icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x4242, ident) + bytes(BIG_PING))
        icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
        for at in range(0, len(icmp), 1480):
            piece = bytes(icmp[at:at + 1480])
            more = 0x2000 if at + 1480 < len(icmp) else 0
            ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(piece), ident,
                                       more | at // 8, 64, 1, 0) + addresses)
            ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
            frames.append(head + bytes(ip) + piece)
    return frames


def dhcp_frames(count=4096):
    """DHCPDISCOVERs from `count` made-up clients (chaddr their source)."""
    frames = []
    for n in range(count):
        mac = b"\x02\x00\x00\x03" + n.to_bytes(2, "big")
        bootp = (struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, n, 0, 0, bytes(4), bytes(4),
                             bytes(4), bytes(4)) + mac + bytes(10) + bytes(192)
                 + b"\x63\x82\x53\x63" + b"\x35\x01\x01\xff")
        udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                   bytes(4), b"\xff" * 4))
        ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
        frames.append(b"\xff" * 6 + mac + b"\x08\x00" + bytes(ip) + udp)
    return frames


def rs_frames(count=4096):
    """Router Solicitations from `count` made-up stations, each from its
    link-local address with its source link-layer option."""
    frames = []
    for n in range(count):
        mac = b"\x02\x00\x00\x04" + n.to_bytes(2, "big")
        source = b"\xfe\x80" + bytes(6) + b"\x00\x00\x00\xff\xfe\x00" + n.to_bytes(2, "big")
        group = b"\xff\x02" + bytes(13) + b"\x02"
        message = bytearray(struct.pack("!BBHI", 133, 0, 0, 0) + b"\x01\x01" + mac)
        pseudo = source + group + struct.pack("!I3xB", len(message), 58)
        message[2:4] = struct.pack("!H", checksum(pseudo + bytes(message)))
        ip6 = struct.pack("!IHBB", 6 << 28, len(message), 58, 255) + source + group
        frames.append(b"\x33\x33\x00\x00\x00\x02" + mac + b"\x86\xdd" + ip6 + bytes(message))
    return frames


def arp_frames():
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac_bytes(GUEST_MAC),
                       socket.inet_aton(GUEST_IP), b"\x00" * 6, socket.inet_aton(TOOL_IP))
    return [b"\xff" * 6 + mac_bytes(GUEST_MAC) + b"\x08\x06" + body + b"\x00" * 18]


def rx_packets():
    with open(f"/sys/class/net/{GUEST_IF}/statistics/rx_packets") as counter:
        return int(counter.read())


def send_at_rate(sock, frames, rate, seconds):
    """Send `rate` frames a second for `seconds`, paced every millisecond."""
    total, sent, start = int(rate * seconds), 0, time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            try:
                sock.send(frames[sent % len(frames)])
            except BlockingIOError:
                break  # the device queue is full: the pace falls behind, measured below
            sent += 1
        time.sleep(0.0005)
    return sent, time.monotonic() - start


def ladder(sock, frames, step):
    results = []
    for rate in LADDER:
        before = rx_packets()
        sent, took = send_at_rate(sock, frames, rate, step)
        time.sleep(0.5)  # late replies still count
        received = rx_packets() - before
        loss = max(0.0, 1 - received / sent)
        results.append({"rate": rate, "sent": sent, "achieved_pps": round(sent / took),
                        "received": received, "loss": round(loss, 5)})
        if loss >= LOSS_LIMIT:
            break  # a backlogged peer would distort the next step
    return results


def burst(sock, peer_mac):
    """BURST back-to-back echo requests; how many replies per sequence number."""
    listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    listener.bind((GUEST_IF, 0))
    listener.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: hold them all
    listener.settimeout(0.5)
    for frame in echo_frames(peer_mac, BURST):
        sock.send(frame)
    replies = {}
    try:
        while True:
            data, address = listener.recvfrom(65535)
            if address[2] == socket.PACKET_OUTGOING or data[12:14] != b"\x08\x00":
                continue  # the kernel hands us the frame untagged
            if data[23] == 1 and data[34] == 0 and data[38:40] == b"\x42\x42":
                seq = struct.unpack("!H", data[40:42])[0]
                replies[seq] = replies.get(seq, 0) + 1
    except socket.timeout:
        pass
    return {"sent": BURST, "answered": len(replies),
            "exactly_once": sum(1 for n in replies.values() if n == 1)}


def first_reply(sock, interface, deadline=30):
    """Send an ARP request every 5 ms until an ARP reply arrives; when, on
    the system-wide monotonic clock?"""
    listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    listener.bind((interface, 0))
    listener.setblocking(False)
    request = arp_frames()[0]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        sock.send(request)
        time.sleep(0.005)
        try:
            while True:
                data, address = listener.recvfrom(2048)
                if address[2] != socket.PACKET_OUTGOING and data[20:22] == b"\x00\x02":
                    return time.monotonic()
        except BlockingIOError:
            pass
    return None


def generate(args):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.interface, 0))
    if args.generate == "first-reply":
        print("ready", flush=True)
        result = first_reply(sock, args.interface)
    elif args.generate == "burst":
        result = burst(sock, args.peer_mac)
    elif args.generate == "flood":
        sock.setblocking(False)
        frames = {"fragments": lambda: fragment_frames(args.peer_mac),
                  "echo": lambda: echo_frames(args.peer_mac, 4096),
                  "big": lambda: big_frames(args.peer_mac),
                  "dhcp": dhcp_frames, "rs": rs_frames}[args.frames]()
        print("flooding", flush=True)
        before = rx_packets()
        sent, took = send_at_rate(sock, frames, args.rate, args.count / args.rate)
        time.sleep(0.5)
        result = {"sent": sent, "received": rx_packets() - before,
                  "achieved_pps": round(sent / took)}
    else:
        sock.setblocking(False)
        frames = echo_frames(args.peer_mac, 4096) if args.generate == "icmp" else arp_frames()
        result = ladder(sock, frames, args.step)
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- orchestration (root ns)

class Peer:
    """One responder in the host namespace, started and stopped by PID."""

    def __init__(self, lab, name, floor_binary, tool, served=((HOST_IF, TOOL_IP),), options=()):
        """`served`: the (host interface, the kernel's address there) pairs
        it answers on; `options`: the tool's, beyond its peer's."""
        self.lab, self.name, self.served = lab, name, served
        self.command = peer_command(name, floor_binary, tool, [i for i, _ in served])
        if self.command and options:  # the services on, so IPv6 too
            self.command = [word for word in self.command if word != "-4"]
            self.command[2:2] = options
        self.process = None
        self.mac = TOOL_MAC
        if name in ("kernel", "scapy-am", "scapy-am-reused"):
            self.mac = lab.in_host("cat", f"/sys/class/net/{HOST_IF}/address").stdout.strip()

    def start(self):
        """Start; return the seconds from launch to the first ARP reply."""
        self.lab.in_guest("ip", "neigh", "flush", "dev", GUEST_IF)
        waiter = self.lab.start(self.lab.guest, sys.executable, os.path.abspath(__file__),
                                "--generate", "first-reply")
        waiter.wait_for("ready")
        launched = time.monotonic()
        if self.command is None:
            for interface, address in self.served:
                self.lab.in_host("ip", "addr", "add", f"{address}/24", "dev", interface)
        else:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.lab.host, *self.command],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waiter.wait(timeout=40)
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")
        answered = json.loads(waiter.output.strip().splitlines()[-1])
        return round(answered - launched, 3) if answered else None

    def stop(self):
        if self.process is None:
            for interface, address in self.served:  # check=False: a start cut short
                self.lab.in_host("ip", "addr", "del", f"{address}/24", "dev", interface,
                                 check=False)
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cpu_seconds(self):
        if self.process is None:
            return 0.0
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            kib = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
        return round(kib / 1024, 1)


def guest_generate(lab, mode, peer_mac="", step=2.0):
    result = lab.in_guest(sys.executable, os.path.abspath(__file__), "--generate", mode,
                          "--peer-mac", peer_mac, "--step", str(step), timeout=900)
    return json.loads(result.stdout.strip().splitlines()[-1])


def ping_times(lab, count):
    """Round trips in ms of `count` pings 0.2 s apart (each finds the peer
    idle), after one that resolves the address."""
    lab.in_guest("ping", "-n", "-c", "1", "-W", "1", TOOL_IP, check=False)
    result = lab.in_guest("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", TOOL_IP,
                          check=False, timeout=count + 30)
    return [float(t) for t in re.findall(r"time=([\d.]+) ms", result.stdout)]


def rtt_figures(times):
    if not times:
        return {"received": 0}
    times = sorted(times)
    return {"received": len(times), "avg_ms": round(statistics.mean(times), 3),
            "p50_ms": round(statistics.median(times), 3),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)}


def best_rate(steps):
    good = [s["rate"] for s in steps if s["loss"] < LOSS_LIMIT]
    return max(good) if good else 0


def load_figures(lab, peer, step):
    """Everything but the round trips, for one peer already answering."""
    figures = {"burst": guest_generate(lab, "burst", peer.mac)}
    cpu_before = peer.cpu_seconds()
    icmp = guest_generate(lab, "icmp", peer.mac, step)
    replies = sum(s["received"] for s in icmp)
    if peer.process:
        figures["cpu_us_per_reply"] = round(
            (peer.cpu_seconds() - cpu_before) * 1e6 / max(replies, 1), 1)
    figures["icmp_ladder"], figures["icmp_max_pps"] = icmp, best_rate(icmp)
    arp = guest_generate(lab, "arp", peer.mac, step)
    figures["arp_ladder"], figures["arp_max_pps"] = arp, best_rate(arp)
    if peer.process:
        figures["peak_rss_mib"] = peer.peak_rss_mib()
    return figures


def build_floor(directory):
    """floor.c (beside this file) compiled into `directory`, or None without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = os.path.join(directory, "floor")
    subprocess.run([compiler, "-O2", "-o", binary, os.path.join(HERE, "floor.c")],
                   check=True)
    return binary


def ratio(value, base):
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


def table(results):
    by_name = {r["peer"]: r for r in results}
    kernel, floor, pyfloor = (by_name.get(n, {}) for n in ("kernel", "c-floor",
                                                             "python-floor"))
    base = lambda r, key: r.get(key) if key != "rtt" else r.get("ping", {}).get("avg_ms")  # noqa: E731
    rows = [("peer", "RTT avg ms (/kernel /C floor /Py floor)", "p50", "p99",
             "ICMP pps <0.1% loss (/kernel /floor)", "ARP pps (/kernel /floor)",
             "CPU us/reply", "peak RSS MiB", "1st reply s", "burst 1000")]
    for r in results:
        ping = r["ping"]
        rtt = ping.get("avg_ms")
        rows.append((
            r["peer"],
            f"{rtt if rtt is not None else '-'}{ratio(rtt, base(kernel, 'rtt'))}"
            f"{ratio(rtt, base(floor, 'rtt'))}{ratio(rtt, base(pyfloor, 'rtt'))}",
            str(ping.get("p50_ms", "-")), str(ping.get("p99_ms", "-")),
            f"{r['icmp_max_pps']}{ratio(r['icmp_max_pps'], kernel.get('icmp_max_pps'))}"
            f"{ratio(r['icmp_max_pps'], floor.get('icmp_max_pps'))}",
            f"{r['arp_max_pps']}{ratio(r['arp_max_pps'], kernel.get('arp_max_pps'))}"
            f"{ratio(r['arp_max_pps'], floor.get('arp_max_pps'))}",
            str(r.get("cpu_us_per_reply", "-")), str(r.get("peak_rss_mib", "-")),
            str(r.get("first_reply_s", "-")),
            f"{r['burst']['exactly_once']}/{r['burst']['sent']} once"))
    return text_table(rows)


def machine():
    with open("/proc/cpuinfo") as cpuinfo:
        model = re.search(r"model name\s*:\s*(.*)", cpuinfo.read())
    try:
        import scapy
        scapy_version = scapy.__version__
    except ImportError:
        scapy_version = "not installed"
    return {"cpu": model.group(1) if model else platform.machine(), "cores": os.cpu_count(),
            "kernel": platform.release(), "python": platform.python_version(),
            "scapy": scapy_version}


def run(names, step, rounds, per_round, rtt_only, tool):
    with tempfile.TemporaryDirectory() as scratch, Lab(prefix="avzb") as lab:
        floor_binary = build_floor(scratch)
        if floor_binary is None and "c-floor" in names:
            print("c-floor: skipped (no cc to compile tests/figures/floor.c)", flush=True)
            names = [n for n in names if n != "c-floor"]
        lab.in_guest("ip", "link", "set", "dev", GUEST_IF, "address", GUEST_MAC)
        # No IPv6 chatter from the host side into the guest's receive counter.
        lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_IF}.disable_ipv6=1")
        peers = {name: Peer(lab, name, floor_binary, tool) for name in names}
        results = {name: {"peer": name} for name in names}
        for name, peer in ({} if rtt_only else peers).items():
            print(f"measuring {name} under load ...", flush=True)
            results[name]["first_reply_s"] = peer.start()
            try:
                results[name].update(load_figures(lab, peer, step))
            finally:
                peer.stop()
        times = {name: [] for name in names}
        for number in range(rounds):
            print(f"round trips, round {number + 1} of {rounds} ...", flush=True)
            for name, peer in peers.items():
                peer.start()
                try:
                    times[name] += ping_times(lab, per_round)
                finally:
                    peer.stop()
        for name in names:
            results[name]["ping"] = rtt_figures(times[name])
        print("costs per call ...", flush=True)
        costs = json.loads(lab.in_host(sys.executable, os.path.abspath(__file__),
                                       "--per-call", "--tool", tool,
                                       timeout=300).stdout.splitlines()[-1])
        return [results[name] for name in names], costs


# ---------------------------------------------------------------- two guests (root ns)

class SecondGuest:
    """Guest B: a namespace of its own (named with the Lab's random suffix)
    joined to the Lab's host namespace by a second veth; deleted, and its
    veth with it, on every exit path."""

    def __init__(self, lab):
        prefix, _, suffix = lab.host.rpartition("-h-")
        self.lab, self.ns = lab, f"{prefix}-b-{suffix}"

    def __enter__(self):
        try:
            run_command("ip", "netns", "add", self.ns)
            run_command("ip", "link", "add", HOST_B_IF, "netns", self.lab.host, "type",
                        "veth", "peer", "name", GUEST_B_IF, "netns", self.ns)
            # IPv6 off before the links come up: no DAD or MLD frame of guest
            # B's own competes with its pings.
            self.lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_B_IF}.disable_ipv6=1")
            self.run("sysctl", "-qw", f"net.ipv6.conf.{GUEST_B_IF}.disable_ipv6=1")
            self.run("ip", "addr", "add", f"{GUEST_B_IP}/24", "dev", GUEST_B_IF)
            for ns, dev in ((self.lab.host, HOST_B_IF), (self.ns, GUEST_B_IF), (self.ns, "lo")):
                run_command("ip", "-n", ns, "link", "set", dev, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def run(self, *cmd, **kw):
        return run_command("ip", "netns", "exec", self.ns, *cmd, **kw)


def ping_figures(output):
    """Replies received of sent, and their round trips, from ping's output."""
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    if counts is None:
        raise RuntimeError(f"no summary in ping's output:\n{output}")
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms(?! \(DUP!\))", output)]
    return {"sent": int(counts[1]), "received": int(counts[2]),
            "avg_ms": round(statistics.mean(times), 3) if times else None,
            "max_ms": max(times) if times else None}


def flood_case(lab, guest_b, peer, kind, rate, seconds):
    """Guest A floods `kind` at `rate` a second for `seconds`; meanwhile
    guest B pings the same peer."""
    try:
        peer.start()
        guest_b.run("ip", "neigh", "flush", "dev", GUEST_B_IF)
        # Resolved before the flood, so that guest B's figures are its echoes'.
        if guest_b.run("ping", "-n", "-c", "1", "-i", str(PING_INTERVAL), "-w", "10",
                       PEER_B_IP, check=False, timeout=20).returncode:
            raise RuntimeError(f"{peer.name} does not answer guest B")
        flood = lab.start(lab.guest, sys.executable, os.path.abspath(__file__), "--generate",
                          "flood", "--frames", kind, "--peer-mac", peer.mac,
                          "--rate", str(rate), "--count", str(round(rate * seconds)))
        flood.wait_for("flooding", timeout=60)
        cpu_before, started = peer.cpu_seconds(), time.monotonic()
        time.sleep(FLOOD_SETTLE)
        pings = max(1, int((seconds - 2 * FLOOD_SETTLE) / PING_INTERVAL))
        ping = guest_b.run("ping", "-n", "-i", str(PING_INTERVAL), "-c", str(pings), "-W", "1",
                           PEER_B_IP, check=False, timeout=seconds + 30)
        if flood.wait(timeout=seconds + 30):
            raise RuntimeError(f"the flood failed:\n{flood.output}")
        cpu = (peer.cpu_seconds() - cpu_before) / (time.monotonic() - started)
        if peer.process and peer.process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with status {peer.process.returncode}")
    finally:
        peer.stop()
    sent = json.loads(flood.output.strip().splitlines()[-1])
    return {"peer": peer.name, "flood": kind, "flood_rate": rate,
            "flood_sent": sent["sent"], "flood_achieved_pps": sent["achieved_pps"],
            "guest_a_received": sent["received"], "guest_b": ping_figures(ping.stdout),
            "peer_cpu_percent": None if peer.command is None else round(cpu * 100)}


def run_two_guests(names, tool, rate, seconds, floods=FLOODS):
    with Lab(prefix="avzb") as lab, SecondGuest(lab) as guest_b:
        lab.in_guest("ip", "link", "set", "dev", GUEST_IF, "address", GUEST_MAC)
        lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_IF}.disable_ipv6=1")
        served = ((HOST_IF, TOOL_IP), (HOST_B_IF, PEER_B_IP))
        results = []
        for kind in floods:
            options = SERVICE_OPTIONS if kind in ("dhcp", "rs") else ()
            for peer in [Peer(lab, name, None, tool, served, options) for name in names]:
                print(f"{peer.name}: guest A floods {kind} at {rate}/s, guest B pings ...",
                      flush=True)
                results.append(flood_case(lab, guest_b, peer, kind, rate, seconds))
        return results


def two_guests_table(results):
    rows = [("peer", "flood", "flood sent/s", "guest A received", "guest B replies",
             "RTT avg ms", "RTT max ms", "peer CPU")]
    for r in results:
        b = r["guest_b"]
        rows.append((
            r["peer"], r["flood"], f"{r['flood_achieved_pps']} of {r['flood_rate']}",
            f"{r['guest_a_received']} of {r['flood_sent']}",
            f"{b['received']}/{b['sent']}", "-" if b["avg_ms"] is None else str(b["avg_ms"]),
            "-" if b["max_ms"] is None else str(b["max_ms"]),
            "-" if r["peer_cpu_percent"] is None else f"{r['peer_cpu_percent']}%"))
    return text_table(rows)



def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="where to write the figures (default: benchmark.json, "
                        "with --two-guests benchmark-two-guests.json)")
    parser.add_argument("--step", type=float, default=2.0, help="seconds per ladder step")
    parser.add_argument("--rounds", type=int, default=4, help="round-trip rounds")
    parser.add_argument("--pings", type=int, default=50, help="pings per peer per round")
    parser.add_argument("--quick", action="store_true", help="1 s steps, 2 rounds of 25")
    parser.add_argument("--rtt-only", action="store_true", help="round trips alone")
    parser.add_argument("--peers", metavar="A,B,...",
                        help=f"the peers to measure (default: all of {','.join(PEERS)}; "
                        f"with --two-guests: {','.join(TWO_GUEST_PEERS)})")
    parser.add_argument("--tool", default=TOOL, metavar="PATH",
                        help="the arp_icmp_vlan0.py to measure (default: this repository's)")
    parser.add_argument("--two-guests", action="store_true",
                        help="instead: does guest A's flood (fragments, then echo requests) "
                        "starve guest B's pings through the same peer?")
    parser.add_argument("--floods", type=names_from(FLOODS, "flood"), default=list(FLOODS),
                        metavar="A,B,...", help=f"with --two-guests: which floods (default: "
                        f"all of {','.join(FLOODS)})")
    parser.add_argument("--flood-rate", type=above_zero(int), default=4000, metavar="N",
                        help="--two-guests: frames a second guest A sends (default 4000)")
    parser.add_argument("--flood-seconds", type=above_zero(float), default=15.0, metavar="S",
                        help="--two-guests: how long each flood lasts (default 15)")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--frames", choices=FLOODS, default="echo", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--per-call", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer-mac", help=argparse.SUPPRESS)
    parser.add_argument("--interface", default=GUEST_IF, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    tool = os.path.abspath(args.tool)
    if args.generate:
        return generate(args)
    if args.serve:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        return serve(args.serve, tool)
    if args.per_call:
        return print(json.dumps(per_call_costs(HOST_IF, tool)))
    require({})
    if not os.path.isfile(tool):
        sys.exit(f"benchmark.py: error: --tool {args.tool}: no such file")
    known = TWO_GUEST_PEERS if args.two_guests else PEERS
    names = args.peers.split(",") if args.peers else list(known)
    unknown = set(names) - set(known)
    if unknown:
        sys.exit(f"benchmark.py: error: unknown peer(s) {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(known)}")
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, "
          f"Python {info['python']}, Scapy {info['scapy']}", flush=True)
    started = time.monotonic()
    if args.two_guests:
        results = run_two_guests(names, tool, args.flood_rate, args.flood_seconds, args.floods)
        print(command_line())
        print(f"date: {time.strftime('%Y-%m-%d')}, {time.monotonic() - started:.0f} s")
        print(two_guests_table(results))
        figures = {"machine": info, "tool": tool, "flood_rate": args.flood_rate,
                   "flood_seconds": args.flood_seconds, "ping_interval_s": PING_INTERVAL,
                   "results": results}
        return write_figures(figures, args.json or "benchmark-two-guests.json")
    step, rounds, pings = (1.0, 2, 25) if args.quick else (args.step, args.rounds, args.pings)
    results, costs = run(names, step, rounds, pings, args.rtt_only, tool)
    print(command_line())
    print(f"date: {time.strftime('%Y-%m-%d')}, {time.monotonic() - started:.0f} s")
    print(table(results) if not args.rtt_only else "\n".join(
        f"{r['peer']}: {r['ping']}" for r in results))
    print(f"per call: sendp(frame, socket=s) {costs['sendp_socket_us']} us, s.send(frame) "
          f"{costs['socket_send_us']} us, sendp(frame, iface=...) {costs['sendp_iface_us']} us; "
          f"Scapy's echo reply (ICMPEcho_am: dissect, make_reply, build) "
          f"{costs['scapy_echo_reply_us']} us, the tool's core {costs['core_echo_reply_us']} us; "
          f"an echo's three checksums in a cold process: Scapy's "
          f"{costs['checksums_cold_scapy_us']} us, the tool's {costs['checksums_cold_tool_us']} us")
    write_figures({"machine": info, "step_s": step, "rounds": rounds, "pings": pings,
                   "results": results, "per_call": costs}, args.json or "benchmark.json")


def write_figures(figures, path):
    with open(path, "w") as out:
        json.dump(figures, out, indent=1)
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
