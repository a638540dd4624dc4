# SPDX-License-Identifier: GPL-2.0-only
"""A real PPP client against --pppoe: pppd with its rp-pppoe plugin in a
qemu guest (Debian's kernel and its PPP modules; the host's pppd in the
initramfs), from PADI to its LCP Configure-Request. The e1000 takes the
tagged PADO and PADS, its session's first frame says so, and the tool
answers it with a PADT (no PPP here): "accepts PPPoE PADOs and PADS",
status 0, and the guest's console (pppd's own log) agrees. virtio-net-pci
drops VLAN-0-tagged frames: PADIs go on, "drops", status 3, and no session
on the console."""

import json
import os
import re

import pytest

from conftest import need
from guest import PPPD, PPPD_PLUGIN, run_guest, start_tool
from test_vm import namespace  # noqa: F401 (the fixture: a TAP in a throwaway namespace)

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("nic, status", [("e1000", 0), ("virtio-net-pci", 3)],
                         ids=["e1000", "virtio-net-drops-vlan0"])
def test_pppd_from_padi_to_lcp(namespace, tmp_path, nic, status):  # noqa: F811
    need(os.path.exists(PPPD) and os.path.exists(PPPD_PLUGIN),
         "needs pppd and its rp-pppoe plugin (apt install ppp)")
    summary = tmp_path / "summary.json"
    tool = start_tool(namespace, "tapvm", "--pppoe", "--until-verdict", "--timeout", "90",
                      "--json", str(summary))
    try:
        console = run_guest(namespace, "tapvm", nic, do="pppoe", timeout=120)
        assert tool.wait(timeout=100) == status, f"tool:\n{tool.output}\nguest:\n{console}"
    finally:
        tool.stop()
    said = f"tool:\n{tool.output}\nguest:\n{console}"
    assert "AVZ-PPP exit=" in console, said
    [client] = json.loads(summary.read_text())["pppoe"]["clients"]
    if status == 0:
        # pppd's own log: the session the tool gave, then LCP ended by the PADT
        # (or its Configure-Requests unanswered).
        session = re.search(r"PPP session is (\d+)", console)
        assert session and f"(session {session.group(1)}) accepts PPPoE PADOs and PADS " \
            "tagged vlan 0, p 0" in tool.output, said
        assert client["verdict"] == "accepts" and "sent a session frame" in client["line"], said
    else:
        assert "PPP session is" not in console, said
        assert client["verdict"] == "drops", said
        assert "it drops PPPoE PADOs tagged vlan 0, p 0" in tool.output, said
