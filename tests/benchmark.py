#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Side-by-side benchmark of ARP and ICMP echo responders on one veth pair.

USAGE: sudo python3 tests/benchmark.py [--quick] [--peers a,b,...] [--json FILE]

Builds its own pair of network namespaces ("guest" and "host", joined by a
veth, documentation addresses only, removed on every exit path) and measures,
in one run and on the same veth pair, these peers in the host namespace:

  kernel        the Linux stack itself, the address configured (the limit)
  c-floor       tests/floor.c: blocking recvfrom, swap, send (the user-space
                floor), compiled with cc; skipped, with a line, without cc
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

The load generator is this file run inside the guest namespace (--generate
...): it sends prebuilt frames on a packet socket at a fixed rate and counts
what arrives from the veth's own receive counter.
"""

import argparse
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
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from netlab import (GUEST_IF, GUEST_IP, HOST_IF, TOOL, TOOL_IP, Lab,  # noqa: E402
                    command_line, text_table)

LADDER = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 75_000, 100_000)
LOSS_LIMIT = 0.001
BURST = 1000
GUEST_MAC = "02:00:00:00:00:01"
TOOL_MAC = "02:76:6c:61:6e:30"
PEERS = ("kernel", "c-floor", "python-floor", "tool-q", "tool-busy-poll", "tool", "card-send",
         "card-sendp", "scapy-am-reused", "scapy-am")


# ---------------------------------------------------------------- peers (host side)

def python_floor(iface):
    """tests/floor.c in Python: blocking recvfrom, swap, patch, send."""
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


def card_loop(iface, send_with):
    """The design card's shape around the tool's own core: Scapy's sniff()
    hands each request to a prn callback, which answers with the socket's
    send() or with sendp(reply, socket=...)."""
    from scapy.all import sendp, sniff
    import arp_icmp_vlan0 as tool
    scope, framing = tool.Scope(), tool.Framing()
    sock = tool.open_socket(iface)

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


def per_call_costs(iface):
    """Microseconds a call, on `iface`: what the card's way costs against
    what the tool does (warm, the best of five runs of many calls), and the
    three Internet checksums of an echo request and its reply (IP header,
    64-byte message, IP header) in a cold process (after 64 MiB of other
    memory went through the caches), Scapy's against the tool's."""
    import timeit
    from scapy.all import ICMPEcho_am, Ether, conf, sendp
    from scapy.utils import checksum as scapy_checksum
    import arp_icmp_vlan0 as tool
    conf.verb = 0
    sock = tool.open_socket(iface)
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
        "socket_send_us": warm(lambda: sock.ins.send(frame), 5000),
        "sendp_iface_us": warm(lambda: sendp(frame, iface=iface), 20),
        "scapy_echo_reply_us": warm(
            lambda: bytes(answering_machine.make_reply(Ether(frame))), 200),
        "core_echo_reply_us": warm(lambda: tool.reply_to(frame, scope, framing), 5000),
        "checksums_cold_scapy_us": cold(lambda: (scapy_checksum(header), scapy_checksum(message),
                                                 scapy_checksum(header))),
        "checksums_cold_tool_us": cold(lambda: (tool.checksum(header), tool.checksum(message),
                                                tool.checksum(header))),
    }


def peer_command(name, floor_binary):
    """The command that starts peer `name` in the host namespace, or None for
    the kernel."""
    me = [sys.executable, os.path.abspath(__file__)]
    return {
        "kernel": None,
        "c-floor": [floor_binary, HOST_IF, TOOL_IP],
        "python-floor": me + ["--serve", "python-floor"],
        "tool-q": [sys.executable, TOOL, "-q", "-4", HOST_IF],
        "tool": [sys.executable, TOOL, "-4", HOST_IF],
        "tool-busy-poll": [sys.executable, TOOL, "-q", "--busy-poll", "-4", HOST_IF],
        "card-send": me + ["--serve", "card-send"],
        "card-sendp": me + ["--serve", "card-sendp"],
        "scapy-am-reused": me + ["--serve", "scapy-am-reused"],
        "scapy-am": me + ["--serve", "scapy-am"],
    }[name]


def serve(name):
    if name == "python-floor":
        python_floor(HOST_IF)
    elif name.startswith("card-"):
        card_loop(HOST_IF, name[len("card-"):])
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
        before = rx_packets()
        sent, took = send_at_rate(sock, echo_frames(args.peer_mac, 4096), args.rate,
                                  args.count / args.rate)
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

    def __init__(self, lab, name, floor_binary):
        self.lab, self.name = lab, name
        self.command = peer_command(name, floor_binary)
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
            self.lab.in_host("ip", "addr", "add", f"{TOOL_IP}/24", "dev", HOST_IF)
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
            self.lab.in_host("ip", "addr", "del", f"{TOOL_IP}/24", "dev", HOST_IF)
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
    """tests/floor.c compiled into `directory`, or None without a compiler."""
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


def run(names, step, rounds, per_round, rtt_only):
    with tempfile.TemporaryDirectory() as scratch, Lab(prefix="avzb") as lab:
        floor_binary = build_floor(scratch)
        if floor_binary is None and "c-floor" in names:
            print("c-floor: skipped (no cc to compile tests/floor.c)", flush=True)
            names = [n for n in names if n != "c-floor"]
        lab.in_guest("ip", "link", "set", "dev", GUEST_IF, "address", GUEST_MAC)
        # No IPv6 chatter from the host side into the guest's receive counter.
        lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_IF}.disable_ipv6=1")
        peers = {name: Peer(lab, name, floor_binary) for name in names}
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
                                       "--per-call", timeout=300).stdout.splitlines()[-1])
        return [results[name] for name in names], costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="benchmark.json", help="where to write the figures")
    parser.add_argument("--step", type=float, default=2.0, help="seconds per ladder step")
    parser.add_argument("--rounds", type=int, default=4, help="round-trip rounds")
    parser.add_argument("--pings", type=int, default=50, help="pings per peer per round")
    parser.add_argument("--quick", action="store_true", help="1 s steps, 2 rounds of 25")
    parser.add_argument("--rtt-only", action="store_true", help="round trips alone")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--per-call", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer-mac", help=argparse.SUPPRESS)
    parser.add_argument("--interface", default=GUEST_IF, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        return generate(args)
    if args.serve:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        return serve(args.serve)
    if args.per_call:
        return print(json.dumps(per_call_costs(HOST_IF)))
    if os.geteuid() != 0:
        sys.exit("benchmark.py: error: needs root (network namespaces): "
                 "sudo python3 tests/benchmark.py")
    names = args.peers.split(",")
    unknown = set(names) - set(PEERS)
    if unknown:
        sys.exit(f"benchmark.py: error: unknown peer(s) {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(PEERS)}")
    step, rounds, pings = (1.0, 2, 25) if args.quick else (args.step, args.rounds, args.pings)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, "
          f"Python {info['python']}, Scapy {info['scapy']}", flush=True)
    started = time.monotonic()
    results, costs = run(names, step, rounds, pings, args.rtt_only)
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
    with open(args.json, "w") as out:
        json.dump({"machine": info, "step_s": step, "rounds": rounds, "pings": pings,
                   "results": results, "per_call": costs}, out, indent=1)
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
