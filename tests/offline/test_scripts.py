# SPDX-License-Identifier: GPL-2.0-only
"""The helper scripts' command lines, offline: --help describes every
option; a bad value is argparse's one-line error (status 2) and a missing
tool one line naming its Debian package (status 1), never a traceback; the
fuzz run needs Scapy alone (it takes the tests' frames and oracle from
tests/lib/frames.py, which needs no pytest).

The scripts run with a PATH of python3 alone (or of stand-ins never run, as
non-root), so that even a check gone wrong stops at the missing tools, before
anything that needs root."""

import os
import re
import subprocess
import sys
import tempfile

import pytest


TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"matrix.py": "vm/matrix.py", "scale.py": "figures/scale.py",
           "soak.py": "figures/soak.py", "clients.py": "figures/clients.py",
           "fuzz.py": "figures/fuzz.py", "paths.py": "figures/paths.py",
           "stacks.py": "figures/stacks.py", "dhcp_clients.py": "figures/dhcp_clients.py",
           "bounds.py": "figures/bounds.py", "access_clients.py": "figures/access_clients.py"}
# Run as a script, with pytest and hypothesis made unimportable.
WITHOUT_PYTEST = ("import runpy, sys; sys.modules.update(pytest=None, hypothesis=None); "
                  "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
# Run as a script that sees itself as an ordinary user: as root it would go on
# to make namespaces, and no other user can be relied on to read the checkout
# (under /root, say), nor a user namespace to be had (a chroot refuses one).
AS_A_USER = ("import os, runpy, sys; os.geteuid = lambda: 1000; "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory):
    """A PATH directory with python3 and nothing else."""
    folder = tmp_path_factory.mktemp("path")
    (folder / "python3").symlink_to(sys.executable)
    return str(folder)


def run_script(name, *args, path, prefix=()):
    """The script run with PATH=`path`; `prefix`: the interpreter's options
    before it."""
    return subprocess.run([sys.executable, *prefix, os.path.join(TESTS, SCRIPTS[name]), *args],
                          capture_output=True, text=True, timeout=60,
                          cwd=path,  # a writable folder for the default --json
                          env={**os.environ, "PATH": path, "COLUMNS": "100"})


def undescribed(help_text):
    """The option lines of argparse's help that have no description, either
    after two spaces on the line or on the next line, indented."""
    lines = help_text.splitlines() + [""]
    return [line.strip() for line, after in zip(lines, lines[1:])
            if line.startswith("  -") and "  " not in line.strip()
            and not re.match(r" {3,}[^ -]", after)]


def test_undescribed_finds_an_option_without_help():
    assert undescribed("options:\n  -h, --help   show this\n  --json JSON\n"
                       "  --a-long-option-name A\n                 what it does\n"
                       "  --last\n") == ["--json JSON", "--last"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_describes_every_option(name, bare_path):
    result = run_script(name, "--help", path=bare_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name} ")
    assert re.search(r"^  --\w", result.stdout, re.MULTILINE), result.stdout  # beyond -h
    assert undescribed(result.stdout) == [], result.stdout


@pytest.mark.parametrize("name, args, words", [
    ("matrix.py", ["--kernels", "jessie"], ["--kernels", "'jessie'",
                                            "bullseye, bookworm, trixie, sid"]),
    ("matrix.py", ["--qemu", "7.3"], ["--qemu", "'7.3'", "7.2, 10.0, 11.1"]),
    ("matrix.py", ["--nics", "e1000,e1001"], ["--nics", "'e1001'", "virtio-net-pci"]),
    ("matrix.py", ["--jobs", "0"], ["--jobs", "at least 1"]),
    ("scale.py", ["--guests", "abc"], ["--guests", "'abc'"]),
    ("scale.py", ["--pings", "0"], ["--pings", "at least 1"]),  # ping -c 0 never ends
    ("soak.py", ["--requests", "5"], ["--requests", "at least 10"]),  # ten chunks
    ("clients.py", ["--json", "/nonexistent/c.json"], ["--json", "/nonexistent"]),
    ("fuzz.py", ["--frames", "-1"], ["--frames", "at least 1"]),
    ("paths.py", ["--paths", "direct,nosuch"], ["--paths", "'nosuch'", "macvtap-virtio"]),
    ("paths.py", ["--timeout", "0"], ["--timeout", "above 0"]),
    ("stacks.py", ["--stacks", "bsd"], ["--stacks", "'bsd'"]),
    ("access_clients.py", ["--cases", "vlan7"], ["--cases", "'vlan7'", "vlan0p6"]),
])
def test_a_bad_value_is_one_line_and_status_2(name, args, words, bare_path):
    result = run_script(name, *args, path=bare_path)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # under argparse's usage lines
    assert last.startswith(f"{name}: error: argument {args[0]}: "), last
    for word in words:
        assert word in last


@pytest.mark.parametrize("name, words", [
    ("matrix.py", ["needs qemu-system-x86_64", "apt install qemu-system-x86"]),
    ("scale.py", ["needs ip, ping, nsenter, busybox",
                  "(apt install iproute2 iputils-ping util-linux busybox)"]),
    ("soak.py", ["needs ip, sysctl", "(apt install iproute2 procps)"]),
    ("clients.py", ["needs ip", "(apt install iproute2)"]),
    ("paths.py", ["needs ip, ping, tcpdump, nft",
                  "(apt install iproute2 iputils-ping tcpdump nftables)"]),
    ("stacks.py", ["needs ip, sysctl", "(apt install iproute2 procps)"]),
    ("dhcp_clients.py", ["needs ip, nft", "(apt install iproute2 nftables)"]),
    ("access_clients.py", ["needs ip, nft", "(apt install iproute2 nftables)"]),
])
def test_a_missing_tool_is_one_line_naming_its_package(name, words, bare_path):
    # The tools are checked before root, so this holds with and without it.
    result = run_script(name, path=bare_path)
    assert (result.returncode, result.stdout) == (1, ""), result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"{name}: error: ")
    for word in words:
        assert word in result.stderr


@pytest.mark.parametrize("name", ["matrix.py", "scale.py", "soak.py", "clients.py", "paths.py",
                                  "stacks.py", "dhcp_clients.py", "access_clients.py"])
def test_without_root_one_line_says_so(name):
    if name == "matrix.py" and not os.path.exists("/bin/busybox"):
        pytest.skip("matrix.py asks for /bin/busybox first")
    with tempfile.TemporaryDirectory() as folder:  # the default --json goes there
        # Stand-ins for the tools, found on PATH and never run.
        for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "ip", "ping", "sysctl",
                     "tcpdump", "nft", "nsenter", "busybox"):
            os.symlink("/bin/false", os.path.join(folder, tool))
        result = run_script(name, path=folder, prefix=("-c", AS_A_USER))
    assert (result.returncode, result.stdout) == (1, ""), result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"{name}: error: needs root")


def test_the_fuzz_run_needs_scapy_alone(bare_path):
    result = run_script("fuzz.py", "--frames", "300", path=bare_path,
                        prefix=("-c", WITHOUT_PYTEST))
    assert result.returncode == 0, result
    assert result.stdout.startswith("300 frames in "), result.stdout
    assert result.stdout.rstrip().endswith(" 0 failures"), result.stdout
