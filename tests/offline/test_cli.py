# SPDX-License-Identifier: GPL-2.0-only
"""Command line, offline: parsing, --help, exit codes and one-line errors."""

import ipaddress
import os
import subprocess
import sys

import pytest

import arp_icmp_vlan0
from conftest import need
from arp_icmp_vlan0 import (DEFAULT_MAC, Framing, _describe, build_parser, framing_from,
                            parse_args, scope_from)

TOOL = arp_icmp_vlan0.__file__


def run_tool(*args, prefix=(), python=(sys.executable,)):
    return subprocess.run([*prefix, *python, TOOL, *args], capture_output=True,
                          text=True, timeout=30)


def assert_one_line_error(result, status, *words):
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last
    for word in words:
        assert word in last


def test_defaults():
    args = parse_args(["tap0"])
    assert args.interfaces == ["tap0"]
    assert (args.mac, args.targets) == (DEFAULT_MAC, [])
    assert framing_from(args) == Framing(vlans=(0,), prio=0, dei=False, tpid=0x8100, pad=True)
    assert (args.count, args.timeout, args.write, args.verbose) == (0, None, None, 0)
    assert not args.self_test


def test_every_option():
    args = parse_args(["--mac", "02:AA:bb:cc:dd:ee", "--ip", "198.51.100.2",
                       "--ip", "203.0.113.0/24", "--vlan", "4094", "--prio", "7",
                       "-c", "3", "--timeout", "1.5", "-w", "x.pcap", "-v",
                       "tap0", "tap1"])
    assert args.interfaces == ["tap0", "tap1"]
    assert args.mac == "02:aa:bb:cc:dd:ee"
    assert args.targets == [ipaddress.IPv4Interface("198.51.100.2/32"),
                            ipaddress.IPv4Interface("203.0.113.0/24")]
    assert scope_from(args).targets == (ipaddress.IPv4Network("198.51.100.2/32"),
                                        ipaddress.IPv4Network("203.0.113.0/24"))
    assert scope_from(args).own == ()  # 203.0.113.0 is the prefix's, not a host's
    assert framing_from(args) == Framing(vlans=(4094,), prio=7)
    assert (args.count, args.timeout) == (3, 1.5)
    assert (args.write, args.verbose) == ("x.pcap", 1)
    assert args.families == {4, 6} and not args.answer_multicast_ping
    assert parse_args(["-q", "tap0"]).verbose == -1
    args = parse_args(["-6", "--ip", "2001:db8::/64", "--answer-multicast-ping", "tap0"])
    assert args.families == {6} and args.answer_multicast_ping
    assert args.targets == [ipaddress.IPv6Interface("2001:db8::/64")]
    assert parse_args(["-4", "tap0"]).families == {4}


def test_a_prefix_keeps_the_tools_own_address():
    # --ip 198.51.100.2/24: the tool is 198.51.100.2 (the probes' source, the
    # DHCP server) and answers for the rest of the /24 as before.
    scope = scope_from(parse_args(["--ip", "198.51.100.2/24", "--ip", "2001:db8::/64", "tap0"]))
    assert scope.targets == (ipaddress.IPv4Network("198.51.100.0/24"),
                             ipaddress.IPv6Network("2001:db8::/64"))
    assert scope.own == (ipaddress.IPv4Address("198.51.100.2").packed,)
    assert scope.own_address(4) == ipaddress.IPv4Address("198.51.100.2").packed
    assert scope.own_address(6) is None
    assert scope.answers_for(ipaddress.IPv4Address("198.51.100.9").packed)
    assert "for 198.51.100.2/24, 2001:db8::/64 as" in _describe(scope, Framing())
    single = scope_from(parse_args(["--ip", "2001:db8::2", "tap0"]))
    assert single.own_address(6) == ipaddress.IPv6Address("2001:db8::2").packed


@pytest.mark.parametrize("argv, framing", [
    (["--vlan", "100", "--vlan", "0", "--tpid", "0x88a8"],
     Framing(vlans=(100, 0), tpid=0x88A8)),
    (["--vlan", "7", "--prio", "5", "--dei"], Framing(vlans=(7,), prio=5, dei=True)),
    (["--tpid", "9100"], Framing(tpid=0x9100)),
    (["--untagged"], Framing(vlans=())),
    (["--untagged", "--no-pad"], Framing(vlans=(), pad=False)),
    (["--no-pad"], Framing(pad=False)),
])
def test_framing_options(argv, framing):
    assert framing_from(parse_args([*argv, "tap0"])) == framing


@pytest.mark.parametrize("argv, words", [
    ([], ["INTERFACE is required"]),
    (["--mac", "02:00:00:00:00", "tap0"], ["--mac", "invalid MAC"]),
    (["--mac", "01:00:5e:00:00:01", "tap0"], ["--mac", "not a unicast MAC"]),
    (["--ip", "198.51.100.300", "tap0"], ["--ip", "198.51.100.300"]),
    (["-4", "--ip", "2001:db8::1", "tap0"], ["no --ip address is IPv4"]),
    (["-6", "--ip", "198.51.100.2", "tap0"], ["no --ip address is IPv6"]),
    (["-4", "-6", "tap0"], ["not allowed with"]),
    (["--vlan", "4095", "tap0"], ["--vlan", "0 to 4094"]),
    (["--vlan", "-1", "tap0"], ["--vlan"]),
    (["--prio", "8", "tap0"], ["--prio", "0 to 7"]),
    (["--prio", "x", "tap0"], ["--prio"]),
    (["--tpid", "0x8000", "tap0"], ["--tpid", "0x88a8"]),
    (["--untagged", "--vlan", "5", "tap0"], ["--untagged takes no"]),
    (["--untagged", "--prio", "0", "tap0"], ["--untagged takes no"]),
    (["-c", "0", "tap0"], ["--count"]),
    (["--timeout", "0", "tap0"], ["--timeout", "above 0"]),
    (["--timeout", "1e999", "tap0"], ["--timeout", "up to 1000000000"]),
    (["--timeout", "99999999999", "tap0"], ["--timeout", "up to 1000000000"]),
    (["--timeout", "nan", "tap0"], ["--timeout"]),
    (["-c", "0", "tap0"], ["--count", "from 1 to 9223372036854775807"]),
    (["--ip", "224.0.0.1", "tap0"], ["--ip", "a multicast address"]),
    (["--ip", "ff02::1", "tap0"], ["--ip", "a multicast address"]),
    (["--ip", "0.0.0.0", "tap0"], ["--ip", "the unspecified address"]),
    (["--ip", "::", "tap0"], ["--ip", "the unspecified address"]),
    (["--ip", "127.0.0.1", "tap0"], ["--ip", "a loopback address"]),
    (["--ip", "::1", "tap0"], ["--ip", "a loopback address"]),
    (["--ip", "255.255.255.255", "tap0"], ["--ip", "the broadcast address"]),
    (["--mac", "00:00:00:00:00:00", "tap0"], ["--mac", "all-zero"]),
    (["-w", "x.out", "--json", "./x.out", "tap0"], ["-w and --json name the same file"]),
    (["-q", "-v", "tap0"], ["not allowed with"]),
    (["tap0", "tap0"], ["named twice"]),
    (["--self-test", "tap0"], ["--self-test takes no INTERFACE"]),
    (["--json-interval", "5", "tap0"], ["--json-interval goes with --json or --metrics"]),
    (["--json-interval", "0.05", "--json", "x.json", "tap0"], ["--json-interval", "from 0.1"]),
    (["--json-interval", "x", "--metrics", "x.prom", "tap0"], ["--json-interval"]),
    (["--metrics", "x.json", "--json", "./x.json", "tap0"], ["--metrics names the same file"]),
    (["-r", "x.pcap", "--metrics", "x.prom"], ["not with --metrics"]),
    (["-r", "x.pcap", "--json", "x.json", "--json-interval", "1"], ["not with --json-interval"]),
])
def test_usage_errors_exit_2_with_one_line(argv, words):
    assert_one_line_error(run_tool(*argv), 2, *words)


def test_help_ends_with_examples():
    result = run_tool("--help")
    assert result.returncode == 0
    assert "--vlan VID" in result.stdout and "--self-test" in result.stdout
    examples = result.stdout.split("examples:")[1]
    assert "sudo ./arp_icmp_vlan0.py tap0" in examples
    assert "tcpdump -n -e -i tap0" in examples


def test_the_header_usage_is_argparses():
    header = arp_icmp_vlan0.__doc__.split("USAGE: ", 1)[1].split("\n\n", 1)[0]
    usage = build_parser().format_usage().split(" ", 1)[1]  # after "usage:"
    assert header.split() == usage.split()


def test_version():
    result = run_tool("-V")
    assert result.returncode == 0
    assert result.stdout.strip() == f"arp_icmp_vlan0.py {arp_icmp_vlan0.__version__}"


def test_unknown_interface_is_named():
    assert_one_line_error(run_tool("no-such-if0"), 1, "no-such-if0", "no such interface")


def test_missing_scapy_says_how_to_install():
    # -I -S: no site-packages, so no Scapy, as on a machine without it.
    result = run_tool("lo", python=(sys.executable, "-I", "-S"))
    assert_one_line_error(result, 1, "Scapy is not installed", "pip install scapy")


def test_missing_root_says_so_and_suggests_sudo():
    if os.geteuid() == 0:
        # Root without CAP_NET_RAW, as an unprivileged user would be.
        prefix = ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw")
    else:
        prefix = ()
    result = run_tool("lo", prefix=prefix)
    assert_one_line_error(result, 1, "root or CAP_NET_RAW", "sudo")


def test_self_test_refuses_a_vlan_the_guest_cannot_receive():
    if os.geteuid() != 0:
        pytest.skip("the root check comes first without root")
    assert_one_line_error(run_tool("--self-test", "--vlan", "7"), 1, "--vlan 0")


def test_interfaces_that_carry_no_guest_are_refused_with_one_line():
    need(os.geteuid() == 0, "needs root (the packet-socket check comes first)")
    assert_one_line_error(run_tool("lo"), 1, "lo: the loopback interface")


def test_an_unknown_user_is_refused_before_any_file_is_touched(tmp_path):
    need(os.geteuid() == 0, "needs root (the user is only looked up to drop to it)")
    old = tmp_path / "old.pcap"
    old.write_bytes(b"last run")
    result = run_tool("--user", "no-such-user-x", "-w", str(old), "--json",
                      str(tmp_path / "new.json"), "lo")
    assert_one_line_error(result, 1, "no user named 'no-such-user-x'")
    assert old.read_bytes() == b"last run" and not (tmp_path / "new.json").exists()


def test_the_dedicated_user_is_the_default_where_it_exists(monkeypatch):
    def getpwnam(name):
        if name == arp_icmp_vlan0.DEDICATED_USER and exists:
            return object()
        raise KeyError(name)
    monkeypatch.setattr(arp_icmp_vlan0.pwd, "getpwnam", getpwnam)
    exists = True
    assert parse_args(["tap0"]).user == "arp_icmp_vlan0"
    exists = False
    assert parse_args(["tap0"]).user == "nobody"
    assert parse_args(["--user", "alice", "tap0"]).user == "alice"


@pytest.mark.parametrize("argv, families, line", [
    (["--ip", "198.51.100.2"], {4}, "ARP and ICMP echo for 198.51.100.2"),
    (["--ip", "2001:db8::2"], {6}, "NDP and ICMPv6 echo for 2001:db8::2"),
    (["--ip", "198.51.100.2", "--ip", "2001:db8::/64"], {4, 6},
     "ARP, ICMP echo, NDP and ICMPv6 echo for 198.51.100.2, 2001:db8::/64"),
    ([], {4, 6}, "ARP, ICMP echo, NDP and ICMPv6 echo for any address"),
])
def test_the_start_up_line_names_only_the_families_served(argv, families, line):
    scope = arp_icmp_vlan0.scope_from(parse_args([*argv, "tap0"]))
    assert scope.families == families
    assert arp_icmp_vlan0._describe(scope, Framing()).startswith(line)
