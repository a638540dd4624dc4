# SPDX-License-Identifier: GPL-2.0-only
"""The qemu that boots a guest: the system's (Debian 12's 7.2) or a newer
one of Debian's, run from a cache without being installed.

A newer qemu is Debian's qemu-system-x86 of a release (10.0 from trixie, 11.1
from sid), installed once into a minimal Debian tree under
tests/vm/.cache/qemu/RELEASE (debootstrap --variant=minbase, then apt-get in
a chroot of it): the system's packages and apt sources are never touched.
The chroot's /proc, /sys and /dev are mounted in a private mount namespace
(unshare --mount --propagation private) that ends with the install, so no
mount is left behind anywhere; a policy-rc.d in the tree keeps any package
from starting a service.

It runs without a chroot, through the tree's own dynamic loader and libraries
(so inside the test's network namespace with `ip netns exec`, like the
system's), with the tree's firmware (-L) and qemu modules (QEMU_MODULE_DIR)
ahead of the system's.
"""

import os
import re
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
MIRROR = "http://deb.debian.org/debian"
SYSTEM_QEMU = "7.2"
# qemu version (major.minor) -> the Debian release whose qemu-system-x86 it
# is; None: the system's own qemu-system-x86_64 (Debian 12).
QEMUS = {"7.2": None, "10.0": "trixie", "11.1": "sid"}
# What making a newer qemu's tree needs -> the Debian package that has it.
TREE_TOOLS = {"debootstrap": "debootstrap", "unshare": "util-linux", "chroot": "coreutils"}
TRIPLET = "x86_64-linux-gnu"


def tree(name):
    """Where qemu `name`'s Debian tree is (made or not)."""
    return os.path.join(CACHE, "qemu", QEMUS[name])


def missing_tools(names):
    """What making the trees of qemus `names` needs and this machine lacks
    (none once they are in the cache)."""
    if all(QEMUS[name] is None or os.path.isdir(tree(name)) for name in names):
        return []
    return [tool for tool in TREE_TOOLS if not shutil.which(tool)]


def _make_tree(release, root):
    """debootstrap, then apt-get install qemu-system-x86 in a chroot, all in
    a private mount namespace; into root.partial, renamed to root when done."""
    partial = root + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    # A frozen mirror serves sid's Release past its Valid-Until date; the
    # signature is still checked.
    apt = "apt-get -o Acquire::Check-Valid-Until=false"
    script = f"""set -e
debootstrap --variant=minbase {release} "$1" {MIRROR}
printf '#!/bin/sh\\nexit 101\\n' > "$1/usr/sbin/policy-rc.d"
chmod 755 "$1/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$1/etc/resolv.conf"
mount -t proc proc "$1/proc"
mount -t sysfs sysfs "$1/sys"
mount --bind /dev "$1/dev"
chroot "$1" {apt} update
chroot "$1" env DEBIAN_FRONTEND=noninteractive {apt} install -y --no-install-recommends \\
    qemu-system-x86
chroot "$1" apt-get clean
"""
    result = subprocess.run(["unshare", "--mount", "--propagation", "private",
                             "sh", "-c", script, "sh", partial],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode:
        raise RuntimeError(f"making the qemu tree for {release} failed "
                           f"({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    os.rename(partial, root)


def command(name=SYSTEM_QEMU):
    """The command line that runs qemu `name` (before its own options);
    a newer one's tree is made first if it is not in the cache."""
    release = QEMUS[name]
    if release is None:
        return ["qemu-system-x86_64"]
    root = tree(name)
    if not os.path.isdir(root):
        _make_tree(release, root)
    libraries = ":".join(os.path.join(root, folder, TRIPLET) for folder in ("usr/lib", "lib"))
    return ["env", f"QEMU_MODULE_DIR={os.path.join(root, 'usr/lib', TRIPLET, 'qemu')}",
            os.path.join(root, "lib64", "ld-linux-x86-64.so.2"), "--library-path", libraries,
            os.path.join(root, "usr", "bin", "qemu-system-x86_64"),
            # The tree's firmware first: /usr/share/qemu's links point into
            # /usr/share/seabios, which would be the system's.
            "-L", os.path.join(root, "usr", "share", "seabios"),
            "-L", os.path.join(root, "usr", "share", "qemu")]


_versions = {}


def version(name=SYSTEM_QEMU):
    """qemu `name`'s --version line, e.g. 'QEMU emulator version 10.0.7
    (Debian 1:10.0.7+ds-0+deb13u1)'; checked to be of `name`."""
    if name not in _versions:
        result = subprocess.run(command(name) + ["--version"], capture_output=True, text=True,
                                timeout=60)
        line = (result.stdout.splitlines() or [result.stderr.strip()])[0]
        found = re.match(r"QEMU emulator version (\d+\.\d+)", line)
        if not found or found.group(1) != name:
            raise RuntimeError(f"qemu {name} is not what runs: {line!r} "
                               f"({' '.join(command(name))} --version)")
        _versions[name] = line
    return _versions[name]
