# SPDX-License-Identifier: GPL-2.0-only
"""--metrics' text, offline: it parses with prometheus_client's own parser
whatever the interfaces are called, and says what the summary says."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

import arp_icmp_vlan0
from arp_icmp_vlan0 import Stats, metrics_text
from conftest import need

REPLIES = SimpleNamespace(json_keys=("guests", "guests_not_tracked"), service="replies",
                          held=())
DHCP = SimpleNamespace(json_keys=("dhcp",), service="dhcp", held=("leases",))


def parse(text):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        need(False, "needs prometheus_client (tests/requirements.txt)")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def summary_of(names, replies=3):
    interfaces = {}
    for name in names:
        stats = Stats.for_kinds(["arp", "icmp echo"])
        stats.seen, stats.replies["icmp echo"] = replies + 1, replies
        interfaces[name] = stats.to_json()
    total = Stats.for_kinds(["arp", "icmp echo"])
    total.replies["icmp echo"] = replies * len(names)
    return {
        "version": arp_icmp_vlan0.__version__, "mac": "02:76:6c:61:6e:30",
        "duration_s": 1.5, "interfaces_served": len(names), "interfaces": interfaces,
        "total": total.to_json(), "exit_status": None,
        "guests": [{"interface": name, "verdict": verdict} for name in names
                   for verdict in ("accepts", None)],
        "guests_not_tracked": 0,
        "dhcp": {"clients": [{"interface": name, "verdict": "drops"} for name in names],
                 "leases": [{"interface": name, "state": "offered"} for name in names]},
    }


# Linux takes any byte in a name but NUL, "/", ":" and whitespace.
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/:"),
                min_size=1, max_size=15)


@given(st.lists(NAMES, min_size=1, max_size=4, unique=True))
def test_any_interface_name_comes_back_from_the_parser(names):
    samples = parse(metrics_text(summary_of(names), [REPLIES, DHCP], 'vlan 0, "p" 0', 1e9))
    for name in names:
        assert samples[("arp_icmp_vlan0_interface_replies_total",
                        (("interface", name), ("kind", "icmp echo")))] == 3
        assert samples[("arp_icmp_vlan0_guests", (("interface", name), ("service", "replies"),
                                                  ("verdict", "pending")))] == 1
        assert samples[("arp_icmp_vlan0_guests", (("interface", name), ("service", "dhcp"),
                                                  ("verdict", "drops")))] == 1
        assert samples[("arp_icmp_vlan0_held", (("interface", name), ("service", "dhcp"),
                                                ("what", "leases")))] == 1
    info = [labels for (name, labels) in samples if name == "arp_icmp_vlan0_info"]
    assert dict(info[0])["framing"] == 'vlan 0, "p" 0'


def test_the_host_counts_and_the_state_of_the_run():
    summary = summary_of(["vnet0", "vnet1"])
    samples = parse(metrics_text(summary, [REPLIES, DHCP], "vlan 0, p 0", 1733500000.25))
    assert samples[("arp_icmp_vlan0_replies_total", (("kind", "icmp echo"),))] == 6
    assert samples[("arp_icmp_vlan0_running", ())] == 1
    assert ("arp_icmp_vlan0_exit_status", ()) not in samples
    assert samples[("arp_icmp_vlan0_written_timestamp_seconds", ())] == 1733500000.25
    assert samples[("arp_icmp_vlan0_interfaces_served", ())] == 2
    summary["exit_status"] = 3
    samples = parse(metrics_text(summary, [REPLIES, DHCP], "vlan 0, p 0", 0))
    assert samples[("arp_icmp_vlan0_running", ())] == 0
    assert samples[("arp_icmp_vlan0_exit_status", ())] == 3
