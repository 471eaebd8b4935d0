"""Admin commands against a running backend: registry and gateway stats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from console.app import ConsoleWindow
from tests.console.conftest import SEOUL_FOREST, Backend, wait_for

ROOT = Path(__file__).resolve().parents[2]


def childsafe(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args, "--data-dir",
                           str(backend.config.data_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_an_unregistered_device_is_listed_then_registered_and_accepted(backend: Backend) -> None:
    assert backend.fix("WATCH-777", *SEOUL_FOREST)[0] == 403
    # The gateway saves refused ids when it next syncs its registry (every 5 s).
    wait_for(lambda: "WATCH-777" in childsafe(backend, "devices", "list",
                                              "--unregistered").stdout, 15, "the refused id")
    token = backend.roster[0].token
    out = childsafe(backend, "devices", "add", "WATCH-777", "--kind", "watch", "--child", token)
    assert out.returncode == 0, out.stderr
    listed = childsafe(backend, "devices", "list").stdout.splitlines()
    assert f"WATCH-777\twatch\t{token}" in listed
    wait_for(lambda: backend.fix("WATCH-777", *SEOUL_FOREST)[0] == 200, 15,
             "the gateway to accept the new device")
    bad = childsafe(backend, "devices", "add", "X-1", "--kind", "watch", "--child", "C-NOPE")
    assert bad.returncode == 2 and "no enrolled child with token C-NOPE" in bad.stderr
    assert childsafe(backend, "devices", "remove", "WATCH-777").returncode == 0


def test_gateway_stats_command_and_panel(backend: Backend, qtbot: QtBot) -> None:
    backend.fix(backend.roster[0].device_id, *SEOUL_FOREST)
    backend.fix(backend.roster[0].device_id, 0, 0)
    out = childsafe(backend, "gateway", "stats")
    assert out.returncode == 0, out.stderr
    assert "osmand: coordinate_null_island" in out.stdout
    rows = {line.split()[0]: line.split()[1:3] for line in out.stdout.splitlines()[1:6]}
    assert rows == {"watch": ["0", "0"], "osmand": ["1", "1"], "tag": ["0", "0"],
                    "carrier": ["0", "0"], "location": ["0", "0"]}  # silent paths too

    window = ConsoleWindow(backend.config)
    qtbot.addWidget(window)
    window.start()
    window.side.setCurrentWidget(window.gateway)
    qtbot.waitUntil(lambda: window.gateway.reasons.rowCount() == 1, timeout=5000)
    cells = [window.gateway.reasons.item(0, c).text() for c in range(3)]
    assert cells == ["osmand", "coordinate_null_island", "1"]
    panel = window.gateway.protocols
    assert [panel.item(r, 0).text() for r in range(panel.rowCount())] == [
        "watch", "osmand", "tag", "carrier", "location"]
    assert panel.item(1, 1).text() == "1"
    # A refused id reaches the panel's list within one registry sync (5 s).
    backend.fix("STRANGER-1", *SEOUL_FOREST)
    table = window.gateway.unregistered_table
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=12_000)
    assert [table.item(0, c).text() for c in range(3)] == ["STRANGER-1", "osmand", "1"]
    window.close()
