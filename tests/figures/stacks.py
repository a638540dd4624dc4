#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Which network stacks other than Linux's accept the tool's tagged replies.

USAGE: sudo python3 tests/figures/stacks.py [--stacks lwip,lwip-vlan,pytcp] [--jobs N]
           [--rounds N] [--lwip-source DIR] [--json FILE]

Each stack runs as the guest on a TAP in a namespace of its own (avzs-HEX,
deleted on every exit path; all at the same time, --jobs), with
198.51.100.1/24; the tool serves the same TAP for 198.51.100.2 (--ip), with
replies tagged vlan 0 (the default), tagged vlan 5 (--vlan 5) and
--untagged. Per stack and framing, each run with a fresh guest:

(a) does the stack accept the tool's replies: the guest pings the tool
    (6 times, 0.5 s apart) and prints its own count, "ARP resolved, K/6
    echo" (a run with the tool answering throughout); and the tool's own
    verdict in another run (--until-verdict --timeout 20 --json, which ends
    at the verdict, so that run's guest count is not the one shown). The
    two must agree: "accepts" says yes, no, DISAGREE or unclear.
(b) does the stack answer the tool's requests: the tool's --probe
    198.51.100.1 --until-verdict --timeout 20 where the tool has that
    option, and in every case this script's own probe from the tool's side
    (a packet socket on the TAP): three ARP requests and three echo requests
    with the framing's tag, then the same untagged as the control.

The stacks:
- lwip: lwIP 2.1.3 as Debian's liblwip-dev builds it (the Unix port's TAP
  netif, tapif; ETHARP_SUPPORT_VLAN left at 0), driven by a small C
  harness that this script writes to tests/figures/.cache/stacks and builds
  there (apt install liblwip-dev pkg-config gcc).
- lwip-vlan: the same, with lwIP's src/netif/ethernet.c (the only file that
  reads ETHARP_SUPPORT_VLAN) compiled into the harness with
  ETHARP_SUPPORT_VLAN=1 and ETHARP_VLAN_CHECK=0: VID 0 is taken, any other
  VID dropped. Needs lwIP 2.1.3's sources (--lwip-source; default
  tests/figures/.cache/stacks/lwip, e.g. `git archive STABLE-2_1_3_RELEASE
  src` of lwIP's repository unpacked there), which no Debian binary package
  ships: without them the row says not run.
- pytcp: PyTCP 2.7.6 from PyPI, unpatched, in a venv in the cache made
  with this script's Python (the newest release that installs on 3.11: the
  later ones need 3.12 or 3.14; the harness uses its 2.7 API). Its harness counts the ICMPv4 packets that
  PyTCP received (only the tool sends it any); PyTCP drops a packet whose
  next hop is not in its ARP cache yet, so its first ping is lost: 5/6 is
  its whole count.
A stack that cannot be had here is listed as not run, with why. Takes under
a minute (the first run also builds and installs); not part of the pytest
run.
"""

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))  # netlab, which adds the tool's folder

from netlab import (DEFAULT_MAC, GUEST_IP, TOOL, TOOL_IP, Process, at_least,  # noqa: E402
                    entered, json_path, names_from, report, require, run)

CACHE = os.path.join(HERE, ".cache", "stacks")
TAP = "tap0"
PINGS, INTERVAL_MS = 6, 500
LIFETIME = 120  # seconds: a harness left behind ends by itself
VERDICT_TIMEOUT = 20
FRAMINGS = (("vlan 0", [], 0), ("vlan 5", ["--vlan", "5"], 5), ("--untagged", ["--untagged"], None))
PYTCP = "pytcp==2.7.6"
LWIP_PACKAGES = "liblwip-dev pkg-config gcc"
STACKS = ("lwip", "lwip-vlan", "pytcp")
PROBE_TEXT = {0: "answers", 3: "drops tagged, answers untagged", 4: "no answer"}

HARNESS_C = r"""/* lwIP guest for tests/figures/stacks.py, which writes this file: edit it there.
 * usage: harness COUNT INTERVAL_MS SECONDS   (env PRECONFIGURED_TAPIF=<tap>)
 * 198.51.100.1/24 on lwIP's Unix-port TAP netif; lwIP answers ARP and ping
 * itself. On SIGUSR1 it pings 198.51.100.2 COUNT times through a raw ICMP
 * PCB and prints "RESULT arp_resolved=yes|no echo_replies=K/COUNT"; it ends
 * on SIGTERM or SIGINT, or after SECONDS. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwip/etharp.h"
#include "lwip/icmp.h"
#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip4.h"
#include "lwip/raw.h"
#include "lwip/tcpip.h"
#include "netif/ethernet.h"
#include "netif/tapif.h"

#define ECHO_ID 0xa7e5
#define MAX_PINGS 256

static struct netif tap;
static ip4_addr_t tool4;
static unsigned char answered[MAX_PINGS];
static int replies;  /* distinct sequence numbers answered; written in lwIP's thread */

/* Raw PCBs get the IPv4 header too; return 0: lwIP goes on with the packet. */
static u8_t on_icmp(void *arg, struct raw_pcb *pcb, struct pbuf *p, const ip_addr_t *from)
{
  u8_t first;
  struct icmp_echo_hdr echo;
  u16_t header, seq;
  (void)arg; (void)pcb;
  if (!IP_IS_V4(from) || !ip4_addr_cmp(ip_2_ip4(from), &tool4) ||
      pbuf_copy_partial(p, &first, 1, 0) != 1)
    return 0;
  header = (u16_t)((first & 0x0f) * 4);
  if (pbuf_copy_partial(p, &echo, sizeof echo, header) != sizeof echo)
    return 0;
  seq = lwip_ntohs(echo.seqno);
  if (ICMPH_TYPE(&echo) == ICMP_ER && lwip_ntohs(echo.id) == ECHO_ID && seq < MAX_PINGS &&
      !answered[seq]) {
    answered[seq] = 1;
    replies++;
  }
  return 0;
}

static void ping(struct raw_pcb *pcb, u16_t seq)
{
  const u16_t size = sizeof(struct icmp_echo_hdr) + 32;
  struct pbuf *p = pbuf_alloc(PBUF_IP, size, PBUF_RAM);
  struct icmp_echo_hdr *echo;
  ip_addr_t to;
  if (p == NULL)
    return;
  echo = (struct icmp_echo_hdr *)p->payload;
  ICMPH_TYPE_SET(echo, ICMP_ECHO);
  ICMPH_CODE_SET(echo, 0);
  echo->id = lwip_htons(ECHO_ID);
  echo->seqno = lwip_htons(seq);
  memset((char *)p->payload + sizeof *echo, 'a' + seq % 26, size - sizeof *echo);
  echo->chksum = 0;
  echo->chksum = inet_chksum(echo, size);
  ip_addr_copy_from_ip4(to, tool4);
  raw_sendto(pcb, p, &to);
  pbuf_free(p);
}

/* netif input: lwIP's own ethernet_input (the library's, or the one compiled
 * into this program for the ETHARP_SUPPORT_VLAN build), in lwIP's thread. */
static err_t tap_input(struct pbuf *p, struct netif *inp)
{
  return tcpip_inpkt(p, inp, ethernet_input);
}

/* The next of `set` within `ms` milliseconds, or 0. */
static int next_signal(const sigset_t *set, long ms)
{
  struct timespec wait = {ms / 1000, (ms % 1000) * 1000000L};
  int sig = sigtimedwait(set, NULL, &wait);
  return sig > 0 ? sig : 0;
}

static long ms_since(const struct timespec *start)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

int main(int argc, char **argv)
{
  int count, interval, i, sig = 0, resolved;
  long seconds;
  sigset_t set;
  struct timespec start;
  ip4_addr_t address, mask, gateway, *found_ip;
  struct eth_addr *found_mac;
  struct raw_pcb *pcb;

  if (argc != 4 || (count = atoi(argv[1])) < 0 || count > MAX_PINGS ||
      (interval = atoi(argv[2])) < 1 || (seconds = atol(argv[3])) < 1) {
    fprintf(stderr, "usage: %s COUNT(0-%d) INTERVAL_MS SECONDS\n", argv[0], MAX_PINGS);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  clock_gettime(CLOCK_MONOTONIC, &start);
  /* Blocked before lwIP's threads start, so they inherit it: only
   * sigtimedwait() below takes these signals. */
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);

  tcpip_init(NULL, NULL);
  IP4_ADDR(&address, 198, 51, 100, 1);
  IP4_ADDR(&mask, 255, 255, 255, 0);
  IP4_ADDR(&gateway, 0, 0, 0, 0);
  IP4_ADDR(&tool4, 198, 51, 100, 2);
  LOCK_TCPIP_CORE();
  if (netif_add(&tap, &address, &mask, &gateway, NULL, tapif_init, tap_input) == NULL) {
    UNLOCK_TCPIP_CORE();
    fprintf(stderr, "netif_add failed\n");
    return 1;
  }
  netif_set_default(&tap);
  netif_set_up(&tap);
  pcb = raw_new(IP_PROTO_ICMP);
  raw_recv(pcb, on_icmp, NULL);
  UNLOCK_TCPIP_CORE();
  printf("READY lwip=%s ETHARP_SUPPORT_VLAN=%d mac=%02x:%02x:%02x:%02x:%02x:%02x\n",
         LWIP_VERSION_STRING, ETHARP_SUPPORT_VLAN, tap.hwaddr[0], tap.hwaddr[1],
         tap.hwaddr[2], tap.hwaddr[3], tap.hwaddr[4], tap.hwaddr[5]);

  while (ms_since(&start) < seconds * 1000L && (sig = next_signal(&set, 100)) != SIGUSR1 &&
         sig != SIGTERM && sig != SIGINT)
    ;
  if (sig == SIGUSR1) {
    for (i = 0; i < count; i++) {
      LOCK_TCPIP_CORE();
      ping(pcb, (u16_t)i);
      UNLOCK_TCPIP_CORE();
      if ((sig = next_signal(&set, interval)) == SIGTERM || sig == SIGINT)
        break;
    }
    if (sig != SIGTERM && sig != SIGINT)
      sig = next_signal(&set, 1000);  /* the last reply's time */
    LOCK_TCPIP_CORE();
    resolved = etharp_find_addr(&tap, &tool4, &found_mac, (const ip4_addr_t **)&found_ip) >= 0;
    printf("RESULT arp_resolved=%s echo_replies=%d/%d\n", resolved ? "yes" : "no", replies,
           count);
    UNLOCK_TCPIP_CORE();
    while (sig != SIGTERM && sig != SIGINT && ms_since(&start) < seconds * 1000L)
      sig = next_signal(&set, 100);
  }
  printf("END\n");
  return 0;
}
"""

HARNESS_PYTCP = r'''"""PyTCP guest for tests/figures/stacks.py, which writes this file: edit it there.
usage: python -O harness.py COUNT INTERVAL_MS SECONDS TAP
198.51.100.1/24 (IPv4 alone) on TAP; PyTCP answers ARP and ping itself. On
SIGUSR1 it pings 198.51.100.2 COUNT times and prints "RESULT
arp_resolved=yes|no echo_replies=K/COUNT", K being PyTCP's own count of the
ICMPv4 packets it received; it ends on SIGTERM or SIGINT, or after SECONDS."""
import signal
import sys
import threading
import time
from importlib.metadata import version

from pytcp import TcpIpStack, config
from pytcp.lib import stack
from pytcp.lib.ip4_address import Ip4Address
from pytcp.protocols.icmp4.ps import ICMP4_ECHO_REQUEST

count, interval, seconds, tap = int(sys.argv[1]), int(sys.argv[2]) / 1000, int(sys.argv[3]), \
    sys.argv[4]
started = time.monotonic()
go, end = threading.Event(), threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: go.set())
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: (end.set(), go.set()))
guest, tool = Ip4Address("198.51.100.1"), Ip4Address("198.51.100.2")
pytcp = TcpIpStack(interface=tap, ip4_address="198.51.100.1/24")
config.IP6_SUPPORT = False  # IPv4 alone: no IPv6 address to claim first (seconds)
pytcp.start()
print(f"READY pytcp={version('pytcp')} mac={stack.packet_handler.mac_unicast}", flush=True)


def left():
    return max(0.0, seconds - (time.monotonic() - started))


if go.wait(left()) and not end.is_set():
    for seq in range(count):
        stack.packet_handler.send_icmp4_packet(
            local_ip_address=guest, remote_ip_address=tool, type=ICMP4_ECHO_REQUEST,
            ec_id=0xA7E5, ec_seq=seq, ec_data=bytes(32))
        if end.wait(interval):
            break
    end.wait(1.0)  # the last reply's time
    received = stack.packet_handler.packet_stats_rx.icmp4__pre_parse
    resolved = "yes" if tool in stack.arp_cache._arp_cache else "no"
    print(f"RESULT arp_resolved={resolved} echo_replies={received}/{count}", flush=True)
    end.wait(left())
pytcp.stop()
print("END", flush=True)
'''


class NotRun(Exception):
    """A stack that cannot be had on this machine: why, short (the table's
    cell), and the details (the JSON file's)."""

    def __init__(self, why, details=""):
        super().__init__(why)
        self.why, self.details = why, details


# -- the stacks: each prepared once, then started per run

def cached(name, text):
    """`text` as CACHE/name (rewritten only if it changed); its path."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, name)
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as out:
            out.write(text)
    return path


def lwip_version(init_h):
    """'2.1.3' from lwIP's lwip/init.h."""
    with open(init_h) as file:
        text = file.read()
    parts = [re.search(rf"#define LWIP_VERSION_{part}\s+(\d+)", text)
             for part in ("MAJOR", "MINOR", "REVISION")]
    return ".".join(part.group(1) for part in parts) if all(parts) else None


def build_lwip(vlan, source):
    """Build the lwIP harness: Debian's library as it is, or (vlan) with
    lwIP's ethernet.c from `source` compiled in, ETHARP_SUPPORT_VLAN=1 and
    ETHARP_VLAN_CHECK=0. Returns (harness command, its environment, the
    stack's name, build facts)."""
    missing = [tool for tool in ("cc", "pkg-config") if not shutil.which(tool)]
    if missing or subprocess.run(["pkg-config", "--exists", "lwip"]).returncode != 0:
        raise NotRun(f"not run (apt install {LWIP_PACKAGES})")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "lwip"], capture_output=True,
                           text=True, check=True).stdout.split()
    include = next(flag[2:] for flag in flags if flag.startswith("-I"))
    library = lwip_version(os.path.join(include, "lwip", "init.h"))
    package = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "liblwip-dev"],
                             capture_output=True, text=True).stdout.strip() or "?"
    sources, defines, output = [cached("harness.c", HARNESS_C)], [], "harness-lwip"
    name = f"lwIP {library} (Debian {package})"
    if vlan:
        ethernet_c = os.path.join(source, "src", "netif", "ethernet.c")
        if not os.path.exists(ethernet_c):
            raise NotRun(f"not run: no lwIP {library} sources (--lwip-source)",
                         f"no {ethernet_c}; no Debian binary package has lwIP's sources")
        found = lwip_version(os.path.join(source, "src", "include", "lwip", "init.h"))
        if found != library:
            raise NotRun(f"not run: sources of lwIP {found}, library {library}",
                         f"the sources in {source} are lwIP {found}, the library {library}")
        sources.append(ethernet_c)
        defines = ["-DETHARP_SUPPORT_VLAN=1", "-DETHARP_VLAN_CHECK=0"]
        output = "harness-lwip-vlan"
        name = f"lwIP {library}, ETHARP_SUPPORT_VLAN=1, ETHARP_VLAN_CHECK=0"
    binary = os.path.join(CACHE, output)
    command = ["cc", "-O2", "-Wall", *defines, *sources, "-o", binary, *flags, "-lpthread"]
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode != 0:
        raise NotRun("not run: the harness does not build", built.stderr.strip()[-2000:])
    return ([binary, str(PINGS), str(INTERVAL_MS), str(LIFETIME)],
            {"PRECONFIGURED_TAPIF": TAP}, name, {"build": " ".join(command)})


def install_pytcp():
    """PyTCP in a venv in the cache, made with this Python; as build_lwip."""
    venv = os.path.join(CACHE, "pytcp-venv")
    python = os.path.join(venv, "bin", "python")
    wanted = PYTCP.split("==")[1]

    def installed():
        result = subprocess.run([python, "-c", "from importlib.metadata import version; "
                                 "print(version('pytcp'))"], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    if not os.path.exists(python) or installed() != wanted:
        shutil.rmtree(venv, ignore_errors=True)
        made = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True,
                              text=True)
        if made.returncode != 0:
            raise NotRun("not run: no venv (apt install python3-venv)",
                         f"{sys.executable} -m venv: {made.stderr.strip()[-2000:]}")
        try:
            pip = subprocess.run([python, "-m", "pip", "install", "-q",
                                  "--disable-pip-version-check", PYTCP],
                                 capture_output=True, text=True, timeout=300)
            why = (pip.stderr.strip().splitlines() or ["?"])[-1]
        except subprocess.TimeoutExpired:
            pip, why = None, "no answer from the index in 300 s"
        if pip is None or pip.returncode != 0 or installed() != wanted:
            shutil.rmtree(venv, ignore_errors=True)
            raise NotRun(f"not run: pip install {PYTCP} failed on {sys.version.split()[0]}",
                         why)
    harness = cached("harness_pytcp.py", HARNESS_PYTCP)
    python_version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                    capture_output=True, text=True).stdout.strip()
    return ([python, "-O", harness, str(PINGS), str(INTERVAL_MS), str(LIFETIME), TAP], {},
            f"PyTCP {wanted} (PyPI), Python {python_version}",
            {"venv": venv})


def prepare(stack, lwip_source):
    if stack == "pytcp":
        return install_pytcp()
    return build_lwip(stack == "lwip-vlan", lwip_source)


# -- the namespace, its TAP, and what runs in it



class Testbed:
    """One namespace (avzs-HEX) with TAP tap0, up, IPv6 off (the kernel keeps
    its chatter to itself); the processes started in it are stopped and it
    is deleted on every exit path."""

    def __init__(self):
        self.ns = f"avzs-{os.urandom(4).hex()}"
        self.processes, self.made, self.closed = [], False, False

    def __enter__(self):
        try:
            run("ip", "netns", "add", self.ns)
            self.made = True
            run("ip", "-n", self.ns, "tuntap", "add", "dev", TAP, "mode", "tap")
            run("ip", "netns", "exec", self.ns, "sysctl", "-qw",
                f"net.ipv6.conf.{TAP}.disable_ipv6=1")
            for device in ("lo", TAP):
                run("ip", "-n", self.ns, "link", "set", device, "up")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        self.closed = True  # a thread still measuring starts nothing more
        for process in list(self.processes):
            process.stop(signal.SIGKILL)
        if self.made:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            self.made = False

    def start(self, *cmd, env=None):
        """`cmd` in the namespace (`env`: variables added for it); a Process."""
        if self.closed:
            raise RuntimeError(f"{self.ns} is gone")
        settings = ["env", *(f"{key}={value}" for key, value in env.items())] if env else []
        process = Process(["ip", "netns", "exec", self.ns, *settings, *cmd])
        self.processes.append(process)
        return process

    def stop(self, process, timeout=10):
        """Stop `process` (SIGTERM, by its PID); its exit status."""
        try:
            return process.stop(signal.SIGTERM, timeout)
        finally:
            if process in self.processes:
                self.processes.remove(process)

    def packet_socket(self):
        """A packet socket on the TAP, made in the namespace (entered by
        this thread alone, and left), with PACKET_AUXDATA on: the stack's
        frames arrive as received on the TAP, its sends go to the stack."""
        with entered(self.ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((TAP, 0))
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        return sock


# -- this script's own probe: tagged requests from the tool's side

ETH_P_ALL, SOL_PACKET, PACKET_AUXDATA, PACKET_OUTGOING = 3, 263, 8, 4
TP_STATUS_VLAN_VALID = 0x10
PROBE_ID, PROBES, GAP, LINGER = 0x7062, 3, 0.2, 0.6


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def ip_checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst, ethertype, vlan, payload):
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    frame = dst + mac_bytes(DEFAULT_MAC) + tag + struct.pack("!H", ethertype) + payload
    return frame.ljust(60 + len(tag), b"\0")


def arp_request(vlan):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac_bytes(DEFAULT_MAC),
                      socket.inet_aton(TOOL_IP), bytes(6), socket.inet_aton(GUEST_IP))
    return ethernet(b"\xff" * 6, 0x0806, vlan, arp)


def echo_request(mac, vlan, seq):
    icmp = struct.pack("!BBHHH", 8, 0, 0, PROBE_ID, seq) + bytes(32)
    icmp = icmp[:2] + struct.pack("!H", ip_checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                         socket.inet_aton(TOOL_IP), socket.inet_aton(GUEST_IP))
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return ethernet(mac_bytes(mac), 0x0800, vlan, header + icmp)


def answer_in(frame, ancillary, mac):
    """('arp' | 'echo', tagged) for the stack's answer to a probe; else None.
    A tag is in the frame or, taken off by the kernel, in PACKET_AUXDATA."""
    if frame[6:12] != mac_bytes(mac) or frame[:6] != mac_bytes(DEFAULT_MAC):
        return None
    tagged, ethertype, offset = False, struct.unpack("!H", frame[12:14])[0], 14
    if ethertype == 0x8100:
        tagged, ethertype, offset = True, struct.unpack("!H", frame[16:18])[0], 18
    for level, kind, data in ancillary:
        if (level, kind) == (SOL_PACKET, PACKET_AUXDATA) and len(data) >= 20:
            tagged |= bool(struct.unpack("=IIIHHHH", data[:20])[0] & TP_STATUS_VLAN_VALID)
    body = frame[offset:]
    if ethertype == 0x0806 and len(body) >= 28 and body[6:8] == b"\0\2" \
            and body[14:18] == socket.inet_aton(GUEST_IP):
        return "arp", tagged
    if ethertype == 0x0800 and len(body) >= 28 and body[9] == 1:
        icmp = body[(body[0] & 0x0F) * 4:]
        if len(icmp) >= 8 and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == PROBE_ID:
            return "echo", tagged
    return None


def probe(sock, mac, vlan):
    """PROBES ARP requests for the stack's address, then PROBES echo
    requests to its MAC, GAP s apart, with a `vlan` tag (None: untagged).
    The answers counted, and whether they came tagged."""
    frames = [arp_request(vlan) for _ in range(PROBES)]
    frames += [echo_request(mac, vlan, seq) for seq in range(PROBES)]
    counts, tagged = {"arp": 0, "echo": 0}, set()
    space = socket.CMSG_SPACE(20)
    while select.select([sock], [], [], 0)[0]:
        sock.recv(65536)
    deadline = time.monotonic()
    for frame in frames + [None]:
        if frame is not None:
            sock.send(frame)
        deadline += GAP if frame is not None else LINGER
        while (wait := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], wait)[0]:
                break
            data, ancillary, _, address = sock.recvmsg(65536, space)
            if address[2] == PACKET_OUTGOING:
                continue
            found = answer_in(data, ancillary, mac)
            if found:
                counts[found[0]] += 1
                tagged.add(found[1])
    return {**counts, "sent": PROBES, "tagged": sorted(tagged)}


def probe_text(tagged, control):
    """The column's cell from the probe with the framing's tag (None for
    --untagged) and the untagged control."""
    def whole(result):
        return result["arp"] >= PROBES and result["echo"] >= PROBES

    def counts(result):
        how = {(): "", (False,): ""}.get(tuple(result["tagged"]), ", replies tagged")
        return f"ARP {result['arp']}/{PROBES}, echo {result['echo']}/{PROBES}{how}"

    first = tagged or control
    if whole(first):
        return f"answers: {counts(first)}"
    if tagged is not None and whole(control):
        return f"drops tagged; untagged: {counts(control)}"
    if first["arp"] or first["echo"]:
        return f"partly: {counts(first)}; untagged: {counts(control)}"
    return f"no answer; untagged: {counts(control)}"


# -- one stack, one framing

def start_harness(bed, harness):
    """The guest, started and ready: (its Process, its MAC)."""
    command, env = harness
    guest = bed.start(*command, env=env)
    return guest, re.search(r" mac=(\S+)", _line(guest, "READY", timeout=30)).group(1)


def _line(process, start, timeout=10):
    """The first whole output line of `process` that starts with `start`."""
    deadline = time.monotonic() + timeout
    while True:
        for line in process.output.splitlines(keepends=True):
            if line.startswith(start) and line.endswith("\n"):
                return line.strip()
        if time.monotonic() > deadline or process.popen.poll() is not None:
            raise RuntimeError(f"no line {start!r} in:\n{process.output}")
        time.sleep(0.02)


def harness_result(line):
    """'RESULT arp_resolved=yes echo_replies=5/6' -> (accepts?, text)."""
    found = re.search(r"arp_resolved=(\w+) echo_replies=(\d+)/(\d+)", line)
    resolved, replies, count = found.group(1) == "yes", int(found.group(2)), found.group(3)
    accepts = (True if resolved and replies else False if not resolved and not replies
               else None)
    return accepts, f"ARP {'resolved' if resolved else 'unresolved'}, {replies}/{count} echo"


def tool_command(scratch, name, framing, *options):
    path = os.path.join(scratch, f"{name}.json")
    return path, [sys.executable, TOOL, "-q", "--ip", TOOL_IP, *framing, *options,
                  "--json", path, TAP]


class ToolFailed(Exception):
    """The tool did not run as it should: the message says how."""


def tool_summary(path, tool):
    """The tool's --json summary, once it has ended."""
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        last = (tool.output.strip().splitlines() or ["no output"])[-1]
        raise ToolFailed(f"the tool wrote no --json summary (exit {tool.popen.returncode}): "
                         f"{last}") from None


def run_verdict(bed, harness, framing, scratch):
    """(a), the tool's side: its exit status and verdict on the guest."""
    guest, mac = start_harness(bed, harness)
    path, command = tool_command(scratch, "verdict", framing, "--until-verdict",
                                 "--timeout", str(VERDICT_TIMEOUT))
    tool = bed.start(*command)
    try:
        tool.wait_for("Hit Ctrl-C", timeout=30)
        guest.popen.send_signal(signal.SIGUSR1)
        status = tool.wait(VERDICT_TIMEOUT + 15)
    finally:
        bed.stop(tool)
        bed.stop(guest)  # it stops pinging and says its count so far
    guest_line = _line(guest, "RESULT", timeout=1)
    summary = tool_summary(path, tool)
    mine = [g for g in summary["guests"] if g["mac"] == mac and g["family"] == 4]
    verdict = mine[0]["verdict"] if mine else None
    return {"exit_status": status, "verdict": verdict, "line": mine[0]["line"] if mine else None,
            "evidence": mine[0]["evidence"] if mine else [], "guest_result": guest_line,
            "guest_ready": _line(guest, "READY"),
            "tool_output": tool.output.strip().splitlines()}


def run_count(bed, harness, framing, scratch):
    """(a), the guest's side: its own count, the tool answering throughout."""
    guest, _ = start_harness(bed, harness)
    path, command = tool_command(scratch, "count", framing, "--timeout", str(LIFETIME))
    tool = bed.start(*command)
    try:
        tool.wait_for("Hit Ctrl-C", timeout=30)
        guest.popen.send_signal(signal.SIGUSR1)
        line = _line(guest, "RESULT", timeout=PINGS * INTERVAL_MS / 1000 + 10)
    finally:
        bed.stop(tool)
        bed.stop(guest)
    replies = tool_summary(path, tool)["total"]
    return {"guest_result": line, "tool_replies": replies}


def run_probe(bed, harness, vlan):
    """(b), this script's probe: tagged (the framing's), then untagged."""
    guest, mac = start_harness(bed, harness)
    try:
        with contextlib.closing(bed.packet_socket()) as sock:
            tagged = probe(sock, mac, vlan) if vlan is not None else None
            control = probe(sock, mac, None)
    finally:
        bed.stop(guest)
    return {"tagged": tagged, "untagged": control, "text": probe_text(tagged, control)}


def run_tool_probe(bed, harness, framing, scratch):
    """(b), the tool's --probe."""
    guest, _ = start_harness(bed, harness)
    _, command = tool_command(scratch, "probe", framing, "--probe", GUEST_IP, "--until-verdict",
                              "--timeout", str(VERDICT_TIMEOUT))
    tool = bed.start(*command)
    try:
        status = tool.wait(VERDICT_TIMEOUT + 15)
    finally:
        bed.stop(tool)
        bed.stop(guest)
    text = PROBE_TEXT.get(status) or (f"exit {status}: "
                                      f"{(tool.output.strip().splitlines() or ['?'])[-1]}")
    return {"exit_status": status, "text": f"{text} (exit {status})",
            "tool_output": tool.output.strip().splitlines()}


def measure(bed, harness, framing, vlan, tool_probes):
    with tempfile.TemporaryDirectory(prefix=f"{bed.ns}-") as scratch:
        phases = {"verdict": lambda: run_verdict(bed, harness, framing, scratch),
                  "count": lambda: run_count(bed, harness, framing, scratch),
                  "probe": lambda: run_probe(bed, harness, vlan)}
        if tool_probes:
            phases["tool_probe"] = lambda: run_tool_probe(bed, harness, framing, scratch)
        result = {}
        for phase, measure_it in phases.items():
            started = time.monotonic()
            result[phase] = measure_it()
            result[phase]["seconds"] = round(time.monotonic() - started, 1)
    guest_accepts, counted = harness_result(result["count"]["guest_result"])
    verdict, status = result["verdict"]["verdict"], result["verdict"]["exit_status"]
    tool_accepts = {"accepts": True, "drops": False}.get(verdict)
    result["guest_count"] = counted
    result["tool_verdict"] = f"{verdict or 'no verdict'} (exit {status})"
    if guest_accepts is None or tool_accepts is None:
        result["accepts"] = "unclear"
    elif guest_accepts != tool_accepts:
        result["accepts"] = "DISAGREE"
    else:
        result["accepts"] = "yes" if guest_accepts else "no"
    return result


def measure_framing(bed, jobs, stack, prepared, framing_name, framing, vlan, rounds,
                    tool_probes, rows, failures):
    """One stack with one framing, in a namespace of its own (a thread of its
    own, `jobs` of them at a time); its row into `rows`."""
    command, env, name, facts = prepared
    try:
        with jobs:
            measured = [measure(bed, (command, env), framing, vlan, tool_probes)
                        for _ in range(rounds)]
        rows[stack, framing_name] = {"stack": stack, "name": name, **facts,
                                     "framing": framing_name, "options": framing,
                                     "rounds": measured}
        print(json.dumps({"stack": stack, "framing": framing_name} |
                         {key: [r[key] for r in measured]
                          for key in ("guest_count", "tool_verdict", "accepts")}), flush=True)
    except Exception as exc:  # said once, by main(), after the clean-up
        if not bed.closed:
            failures.append(f"{stack}, {framing_name}: {' '.join(str(exc).split())[:300]}")


def has_probe_option():
    """Whether the tool has --probe; exit if the tool does not run at all."""
    shown = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True)
    if shown.returncode != 0:
        last = (shown.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {TOOL} --help exited "
                 f"{shown.returncode}: {last}")
    return bool(re.search(r"^\s+--probe\b", shown.stdout, re.MULTILINE))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=names_from(STACKS, "stack"), default=list(STACKS),
                        metavar="NAMES",
                        help=f"comma-separated stacks to run (default {','.join(STACKS)})")
    parser.add_argument("--lwip-source", metavar="DIR", default=os.path.join(CACHE, "lwip"),
                        help="lwIP's sources, of the library's version (2.1.3 on Debian 12), "
                             "for the lwip-vlan build: DIR/src/netif/ethernet.c (default "
                             "tests/figures/.cache/stacks/lwip)")
    parser.add_argument("--rounds", type=at_least(1), default=1, metavar="N",
                        help="measure each stack and framing N times (default 1); a cell "
                             "shows every round's answer when they differ")
    parser.add_argument("--jobs", type=at_least(1), default=len(STACKS) * len(FRAMINGS),
                        metavar="N",
                        help="measure N stack and framing pairs at a time, each in its own "
                             f"namespace (default {len(STACKS) * len(FRAMINGS)}: all)")
    parser.add_argument("--json", type=json_path, metavar="FILE", default="stacks.json",
                        help="where to write the results (default stacks.json)")
    args = parser.parse_args()
    require({"ip": "iproute2", "sysctl": "procps"})  # a stack missing: not run
    from arp_icmp_vlan0 import SCAPY_MISSING  # the tool's import check
    if SCAPY_MISSING:
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: the tool needs Scapy for "
                 f"{sys.executable} (apt install python3-scapy)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # finally: clean up
    tool_probes = has_probe_option()
    prepared = {}  # one at a time: the builds share the cache
    for stack in args.stacks:
        try:
            prepared[stack] = prepare(stack, args.lwip_source)
        except NotRun as why:
            prepared[stack] = why
    rows_of, failures, jobs = {}, [], threading.BoundedSemaphore(args.jobs)
    with contextlib.ExitStack() as beds:
        threads = []
        for stack in args.stacks:
            if isinstance(prepared[stack], NotRun):
                rows_of[stack, None] = {"stack": stack, "name": stack,
                                        "not_run": prepared[stack].why,
                                        "details": prepared[stack].details}
                print(json.dumps(rows_of[stack, None]), flush=True)
                continue
            for framing_name, framing, vlan in FRAMINGS:
                bed = beds.enter_context(Testbed())
                threads.append(threading.Thread(
                    target=measure_framing, daemon=True,
                    args=(bed, jobs, stack, prepared[stack], framing_name, framing, vlan,
                          args.rounds, tool_probes, rows_of, failures)))
                threads[-1].start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # the main thread takes Ctrl-C and SIGTERM
    if failures:
        sys.exit("\n".join(f"{os.path.basename(sys.argv[0])}: error: {line}"
                           for line in dict.fromkeys(failures)))
    results = [rows_of[stack, framing] for stack in args.stacks
               for framing in [None, *(f[0] for f in FRAMINGS)] if (stack, framing) in rows_of]
    header = ["stack", "framing", "(a) guest's count", "(a) tool's verdict", "(a) accepts",
              "(b) script's probe"]
    if tool_probes:
        header.append("(b) tool's --probe")
    rows, shown = [header], None
    for row in results:
        name = row["name"] if row["name"] != shown else ""
        shown = row["name"]
        if "not_run" in row:
            rows.append([name, row["not_run"]] + [""] * (len(header) - 2))
            continue
        cells = [[r["guest_count"] for r in row["rounds"]],
                 [r["tool_verdict"] for r in row["rounds"]],
                 [r["accepts"] for r in row["rounds"]],
                 [r["probe"]["text"] for r in row["rounds"]]]
        if tool_probes:
            cells.append([r["tool_probe"]["text"] for r in row["rounds"]])
        rows.append([name, row["framing"]] + [" | ".join(dict.fromkeys(cell)) for cell in cells])
    report(rows, {"tool_has_probe": tool_probes, "stacks": results}, args.json)
    print(f"(a) the guest pings {TOOL_IP} {PINGS} times; accepts: its count and the tool's "
          f"verdict agree. (b) does it answer {PROBES} ARP and {PROBES} echo requests tagged "
          "as the replies (then untagged); its replies are untagged unless said.")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the namespaces are gone by now
        sys.exit(130)
