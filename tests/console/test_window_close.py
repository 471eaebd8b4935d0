"""Closing the console window is how most operators end the demo: it must
stop every backend process in order, exactly as Ctrl+C does."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from console import cli
from console.app import ConsoleWindow
from console.supervisor import BACKEND, Supervisor
from db.seed import seed_demo
from db.store import open_store
from tests.console.conftest import make_config
from tests.services import descendants


def test_closing_the_window_stops_the_backend(data_dir: Path, qtbot: QtBot,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(data_dir, children=20)
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, cfg.children)
    engine.dispose()
    started: list[Supervisor] = []
    real_start = Supervisor.start

    def remember(self: Supervisor) -> None:
        started.append(self)
        real_start(self)

    seen: dict[str, object] = {}

    def close_when_live() -> None:
        # this run's window (one an earlier failed test left open is not it)
        windows = [w for w in QApplication.topLevelWidgets()
                   if isinstance(w, ConsoleWindow) and w.config is cfg]
        if windows and windows[0].status.bus.text() == "LIVE":
            sup = started[0]
            seen["pids"] = [c.proc.pid for c in sup.children if c.proc]
            seen["running"] = dict(sup.status())
            windows[0].close()  # what the window's close button does
        else:
            QTimer.singleShot(100, close_when_live)

    # another top-level window stays open (a detached video wall, a window an
    # earlier test left): closing the console's own window still ends it
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(Supervisor, "start", remember)
    QTimer.singleShot(100, close_when_live)
    try:
        code = cli._run_backend(cfg, BACKEND, headless=False)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 0
    assert seen["running"] == dict.fromkeys(BACKEND, "running")
    alive = descendants()
    assert not set(seen["pids"]) & set(alive)  # type: ignore[arg-type]
    assert not any(p.exists() for p in cfg.ipc_paths())
