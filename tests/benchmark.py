#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Side-by-side benchmark of ICMP/ARP peers on one veth pair.

USAGE: sudo python3 tests/benchmark.py [--json FILE] [--step SECONDS] [--quick]

Builds its own pair of network namespaces ("guest" and "host", joined by a
veth, documentation addresses only, removed on every exit path) and measures,
in one run and on the same veth pair, three peers in the host namespace:

  kernel   the Linux stack itself, with the address configured (the limit)
  tool     arp_icmp_vlan0.py -q (tagged replies)
  tool-busy-poll  the same with --busy-poll
  scapy    Scapy's ARP_am + ICMPEcho_am, the usual alternative (untagged)

Per peer: ping RTT (avg, p50, p99 of 100 pings 0.2 s apart); a fixed-rate ICMP echo load
ladder and an ARP request ladder (loss per step, highest step under 0.1%
loss); CPU microseconds per reply; peak RSS; time from launch to the first
reply; and whether a burst of 1,000 back-to-back echo requests is answered
exactly once each. Prints a table with each figure's ratio to the kernel's and
writes the figures as JSON. Not part of the pytest run: it takes minutes and
its numbers depend on the machine.

The load generator is this file run inside the guest namespace
(--generate ...): it sends prebuilt frames on a packet socket at a fixed rate
and counts what arrives from the veth's own receive counter.
"""

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from netlab import GUEST_IF, GUEST_IP, HOST_IF, TOOL, TOOL_IP, Lab  # noqa: E402

LADDER = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 75_000, 100_000)
LOSS_LIMIT = 0.001
BURST = 1000
GUEST_MAC = "02:00:00:00:00:01"

SCAPY_PEER = f"""
import sys
from scapy.all import ARP_am, ICMPEcho_am, conf
conf.verb = 0
ARP_am(iface="{HOST_IF}", IP_addr="{TOOL_IP}", ARP_addr="{{mac}}").bg()
ICMPEcho_am(iface="{HOST_IF}")()
"""


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


def first_reply(sock, deadline=15):
    """Send an ARP request every 5 ms until an ARP reply arrives; when?"""
    listener = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    listener.bind((GUEST_IF, 0))
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
    sock.bind((GUEST_IF, 0))
    if args.generate == "first-reply":
        print("ready", flush=True)
        result = first_reply(sock)
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

def host_mac(lab):
    return lab.in_host("cat", f"/sys/class/net/{HOST_IF}/address").stdout.strip()


def start_peer(lab, name):
    """Start peer `name`; return (process or None, its MAC, launch time)."""
    if name == "kernel":
        lab.in_host("ip", "addr", "add", f"{TOOL_IP}/24", "dev", HOST_IF)
        return None, host_mac(lab), time.monotonic()
    if name.startswith("tool"):
        cmd = [sys.executable, TOOL, "-q", "-4", HOST_IF]
        if name == "tool-busy-poll":
            cmd.insert(-1, "--busy-poll")
        mac = "02:76:6c:61:6e:30"
    else:
        mac = host_mac(lab)
        cmd = [sys.executable, "-c", SCAPY_PEER.format(mac=mac)]
    launched = time.monotonic()
    process = lab.start(lab.host, *cmd)
    return process, mac, launched


def guest_generate(lab, mode, peer_mac="", step=2.0):
    result = lab.in_guest(sys.executable, os.path.abspath(__file__), "--generate", mode,
                          "--peer-mac", peer_mac, "--step", str(step), timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        kib = int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))
    return round(kib / 1024, 1)


def ping_rtts(lab, count):
    # 0.2 s apart, as a person pings: each request finds the peer idle.
    result = lab.in_guest("ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", TOOL_IP,
                          check=False, timeout=count)
    times = sorted(float(t) for t in re.findall(r"time=([\d.]+) ms", result.stdout))
    if not times:
        return {"received": 0}
    return {"received": len(times), "avg_ms": round(statistics.mean(times), 3),
            "p50_ms": round(times[len(times) // 2], 3),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)}


def best_rate(steps):
    good = [s["rate"] for s in steps if s["loss"] < LOSS_LIMIT]
    return max(good) if good else 0


def measure(name, step, quick):
    with Lab(prefix="avzb") as lab:
        lab.in_guest("ip", "link", "set", "dev", GUEST_IF, "address", GUEST_MAC)
        # No IPv6 chatter from the host side into the guest's receive counter.
        lab.in_host("sysctl", "-qw", f"net.ipv6.conf.{HOST_IF}.disable_ipv6=1")
        figures = {"peer": name}
        if name != "kernel":
            waiter = lab.start(lab.guest, sys.executable, os.path.abspath(__file__),
                               "--generate", "first-reply")
            waiter.wait_for("ready")
        process, mac, launched = start_peer(lab, name)
        if process:
            waiter.wait(timeout=30)
            answered_at = json.loads(waiter.output.strip().splitlines()[-1])
            figures["first_reply_s"] = (round(answered_at - launched, 3)
                                        if answered_at else None)
        figures["ping"] = ping_rtts(lab, 25 if quick else 100)
        figures["burst"] = guest_generate(lab, "burst", mac)
        cpu_before = cpu_seconds(process.popen.pid) if process else 0
        icmp = guest_generate(lab, "icmp", mac, step)
        replies = sum(s["received"] for s in icmp)
        if process:
            figures["cpu_us_per_reply"] = round(
                (cpu_seconds(process.popen.pid) - cpu_before) * 1e6 / max(replies, 1), 1)
        figures["icmp_ladder"] = icmp
        figures["icmp_max_pps"] = best_rate(icmp)
        arp = guest_generate(lab, "arp", mac, step)
        figures["arp_ladder"] = arp
        figures["arp_max_pps"] = best_rate(arp)
        if process:
            figures["peak_rss_mib"] = peak_rss_mib(process.popen.pid)
            process.stop(signal.SIGTERM)
        return figures


def ratio(value, kernel):
    if value is None or not kernel:
        return ""
    return f" ({value / kernel:.2f}x)"


def table(results):
    kernel = results[0]
    rows = [("peer", "RTT avg ms", "RTT p50", "RTT p99", "ICMP pps <0.1% loss",
             "ARP pps <0.1% loss", "CPU us/reply", "peak RSS MiB", "1st reply s",
             "burst 1000")]
    for r in results:
        ping = r["ping"]
        rows.append((
            r["peer"],
            f"{ping.get('avg_ms', '-')}{ratio(ping.get('avg_ms'), kernel['ping'].get('avg_ms'))}",
            str(ping.get("p50_ms", "-")), str(ping.get("p99_ms", "-")),
            f"{r['icmp_max_pps']}{ratio(r['icmp_max_pps'], kernel['icmp_max_pps'])}",
            f"{r['arp_max_pps']}{ratio(r['arp_max_pps'], kernel['arp_max_pps'])}",
            str(r.get("cpu_us_per_reply", "-")), str(r.get("peak_rss_mib", "-")),
            str(r.get("first_reply_s", "-")),
            f"{r['burst']['exactly_once']}/{r['burst']['sent']} once"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths))
                     for row in rows)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="benchmark.json", help="where to write the figures")
    parser.add_argument("--step", type=float, default=2.0, help="seconds per ladder step")
    parser.add_argument("--quick", action="store_true", help="1 s steps, 50 pings")
    parser.add_argument("--peers", default="kernel,tool,tool-busy-poll,scapy")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--peer-mac", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        return generate(args)
    if os.geteuid() != 0:
        sys.exit("benchmark.py: error: needs root (network namespaces): "
                 "sudo python3 tests/benchmark.py")
    step = 1.0 if args.quick else args.step
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, "
          f"Python {info['python']}, Scapy {info['scapy']}", flush=True)
    results = []
    for name in args.peers.split(","):
        print(f"measuring {name} ...", flush=True)
        results.append(measure(name, step, args.quick))
    print(table(results))
    with open(args.json, "w") as out:
        json.dump({"machine": info, "step_s": step, "results": results}, out, indent=1)
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
