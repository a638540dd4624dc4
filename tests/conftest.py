# SPDX-License-Identifier: GPL-2.0-only
"""Shared test set-up: import the tool from the repository root, and turn
skips of the root-only tests into failures where CI asks for that."""

import os
import shutil
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# .ci/run sets this: there, a root-only test that cannot run is a failure.
STRICT = os.environ.get("ARP_ICMP_VLAN0_NO_SKIP") == "1"


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


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots qemu guests (tests/vm), about 10 s each")
    # Let SIGTERM unwind like Ctrl-C so fixtures delete their namespaces.
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
