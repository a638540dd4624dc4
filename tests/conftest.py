# SPDX-License-Identifier: GPL-2.0-only
"""Shared test set-up: import the tool from the repository root, turn skips
of the root-only tests into failures where CI asks for that, the examples
the property tests try, and the namespace tests' `lab` fixture."""

import os
import shutil
import signal
import sys

import pytest
from hypothesis import HealthCheck, settings

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS))  # the tool
sys.path.insert(0, os.path.join(TESTS, "lib"))  # the helpers: frames, checks, netlab...

from netlab import Lab, run  # noqa: E402

# .ci/run sets this: there, a root-only test that cannot run is a failure.
STRICT = os.environ.get("ARP_ICMP_VLAN0_NO_SKIP") == "1"

# Every property test (hypothesis): ARP_ICMP_VLAN0_FUZZ_EXAMPLES examples
# each (default 400), with no deadline (the oracle dissects with Scapy).
settings.register_profile(
    "arp_icmp_vlan0", max_examples=int(os.environ.get("ARP_ICMP_VLAN0_FUZZ_EXAMPLES", "400")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("arp_icmp_vlan0")


def need(condition, reason):
    """Skip (or, with ARP_ICMP_VLAN0_NO_SKIP=1, fail) unless `condition`."""
    if not condition:
        if STRICT:
            pytest.fail(f"cannot run (ARP_ICMP_VLAN0_NO_SKIP=1): {reason}")
        pytest.skip(reason)


def need_root_and(*tools):
    need(os.geteuid() == 0, "needs root (network namespaces, packet sockets)")
    missing = [tool for tool in tools if not shutil.which(tool)]
    need(not missing, f"needs {', '.join(missing)} (README.rst, 'Running the tests', lists what to install)")


LAB_TOOLS = ("ip", "ping", "tcpdump")


@pytest.fixture
def lab(request):
    """A netlab.Lab for the test, deleted afterwards. A module (or test)
    says what it needs with @pytest.mark.lab(*tools, tun=False, **Lab's
    keywords: prefix, ipv6, guest6); without the mark: ip, ping and tcpdump,
    IPv4 alone. Skipped unless root and the tools are there (arping: only
    iputils' counts tagged answers)."""
    marker = request.node.get_closest_marker("lab")
    tools, options = (marker.args or LAB_TOOLS, dict(marker.kwargs)) if marker else (LAB_TOOLS, {})
    need_root_and(*tools)
    if options.pop("tun", False):
        need(os.path.exists("/dev/net/tun"), "needs /dev/net/tun")
    if "arping" in tools:
        arping_version = run("arping", "-V", check=False)
        if "iputils" not in arping_version.stdout + arping_version.stderr:
            pytest.fail("arping is not iputils-arping (Debian: apt install iputils-arping)")
    with Lab(**options) as made:
        yield made
        made.judge_recordings()  # every -w recording, judged again with -r: the same verdicts


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots qemu guests (tests/vm), about 10 s each")
    config.addinivalue_line("markers", "lab(*tools, tun=False, prefix=, ipv6=, guest6=): what "
                            "the `lab` fixture needs and makes (conftest.py)")
    # Let SIGTERM unwind like Ctrl-C so fixtures delete their namespaces.
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
