"""Consoles in a training session: a real session (``console.training``)
playing a short scenario at 16x on its own bus, engine and store, and real
console windows joined to it (offscreen), as ``childsafe console --training``
joins.

A trainee's window says TRAINING, runs its clocks on the replayed time,
shows no black CCTV tiles, and tells the engine which cameras it opened;
a trainer's window drives the replay from its bar and draws every child's
trail. Everything is on ipc under the test's data dir.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from console import keys
from console.app import ConsoleWindow
from console.config import Config
from console.training.install import for_console
from console.training.session import Plan, TrainingSession
from db import accounts
from db.store import open_store
from models.messages import HistoryEntry
from models.scenario import load_scenario
from tests.console.conftest import TEST_PASSWORD, make_config

SCENARIO = """
title = "Test: an SOS at the gate"
description = "One SOS, early."
site = "Sindorim Elementary"
duration_s = 900

[population]
children = 80
seed = 5
zones = ["Sindorim Elementary"]

[[incident]]
id = "gate-sos"
at_s = 8
kind = "sos"
child = 2

[[incident]]
id = "heads-off"
at_s = 30
kind = "leave_zone"
child = 12

[[expect]]
incident = "gate-sos"
ack_within_s = 30
cameras_within_s = 60
"""


@pytest.fixture
def session(data_dir: Path, tmp_path: Path) -> Iterator[TrainingSession]:
    """A live installation's store and keys (no live process is needed),
    and a training session of SCENARIO playing at 16x in a thread."""
    live = make_config(data_dir, children=10)
    keys.init(live.data_dir)
    engine, sessions = open_store(live.db_url)
    with sessions() as s:
        accounts.add_user(s, "operator1", ["operator"], TEST_PASSWORD)
        accounts.add_user(s, "trainer1", ["trainer"], TEST_PASSWORD)
        s.commit()
    engine.dispose()
    path = tmp_path / "test-gate-sos.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    sess = TrainingSession(live, Plan(scenario=load_scenario(path)))
    player: threading.Thread | None = None
    try:
        sess.start()
        player = threading.Thread(target=sess.run, kwargs={"speed": 16.0}, daemon=True)
        player.start()
        yield sess
    finally:
        sess.stop_event.set()
        if player is not None:
            player.join(20)
        sess.close()


def console_for(qtbot: QtBot, cfg: Config, user: str) -> ConsoleWindow:
    window = ConsoleWindow(cfg)
    qtbot.addWidget(window)
    window.resize(1600, 960)
    window.show()
    window.start((user, TEST_PASSWORD))
    qtbot.waitUntil(lambda: window.session.user == user, timeout=10_000)
    return window


def history(sess: TrainingSession, alert_id: int) -> list[HistoryEntry]:
    return sess.alerts()[1].get(alert_id, [])


def test_a_live_console_looks_as_it_always_did(data_dir: Path, qtbot: QtBot) -> None:
    window = ConsoleWindow(make_config(data_dir))
    qtbot.addWidget(window)
    assert window.banner is None and window.replay_bar is None and window.replay is None
    assert window.property("training") == "false"
    assert not window.windowTitle().startswith("TRAINING")
    assert window.cctv.no_video_text == ""
    window.close()


def test_a_trainee_console_says_training_and_records_the_cameras_it_opens(
        session: TrainingSession, qtbot: QtBot) -> None:
    sess = session
    window = console_for(qtbot, for_console(sess.live), "operator1")
    assert window.property("training") == "true"
    assert window.windowTitle().startswith("TRAINING · ")
    assert window.banner is not None and window.banner.isVisible()
    assert "TRAINING" in window.banner.full_text()
    assert window.replay_bar is not None and not window.replay_bar.isVisible()  # no trainer
    # the banner and every countdown run on the replayed clock
    qtbot.waitUntil(lambda: "replayed clock" in window.banner.session.text(), timeout=10_000)
    qtbot.waitUntil(lambda: abs(window.alerts.model.now - sess.player.t) < 40, timeout=5000)

    qtbot.waitUntil(lambda: any(a.kind == "sos" for a in window.alerts.alerts()),
                    timeout=20_000)
    sos = next(a for a in window.alerts.alerts() if a.kind == "sos")
    # the console filled the grid by itself: nothing black, nothing recorded
    qtbot.waitUntil(lambda: window.cctv.alert_id == sos.id, timeout=5000)
    tiles = window.cctv.visible_tiles()
    shown = [c for c in window.cctv.cameras_shown() if c is not None]
    assert shown, "the SOS's cameras are ranked and named"
    for tile in tiles:
        assert tile.no_video_text and tile.player() is None and tile.no_video.isVisible()
        assert not tile.video.isVisible()
        assert "no video in training" in tile.no_video.text()
        if tile.feed is not None:
            assert tile.feed.name in tile.no_video.text()
    qtbot.wait(500)
    assert not any(h.action == "cameras" for h in history(sess, sos.id))

    # the operator locates the alert: the engine writes who opened which cameras
    window.locate(sos)
    qtbot.waitUntil(lambda: any(h.action == "cameras" for h in history(sess, sos.id)),
                    timeout=10_000)
    line = next(h for h in history(sess, sos.id) if h.action == "cameras")
    assert line.actor == "operator1"
    opened = sorted(c for c in window.cctv.cameras_shown() if c is not None)
    assert line.detail == ", ".join(str(c) for c in opened)
    assert sess.source.t0 <= line.at <= sess.source.t1
    window.close()


def test_a_trainer_drives_the_replay_from_the_bar_and_sees_every_trail(
        session: TrainingSession, qtbot: QtBot) -> None:
    sess = session
    window = console_for(qtbot, for_console(sess.live), "trainer1")
    bar, replay = window.replay_bar, window.replay
    assert bar is not None and replay is not None
    assert bar.isVisible() and window.banner is not None
    qtbot.waitUntil(lambda: replay.status is not None and replay.status.playing,
                    timeout=10_000)
    status = replay.status
    assert status is not None
    assert [m.label for m in status.marks] == ["gate-sos", "heads-off"]
    assert bar.timeline.marks == status.marks and bar.speed.currentData() == 16.0
    qtbot.waitUntil(lambda: "Test: an SOS at the gate" in window.banner.full_text(),
                    timeout=5000)
    side = window.side
    assert side.isTabVisible(side.indexOf(window.work_split))  # the trainees' queue

    qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)  # playing: pauses
    qtbot.waitUntil(lambda: not sess.player.playing, timeout=5000)
    qtbot.waitUntil(lambda: "Play" in bar.play_button.text(), timeout=5000)
    assert bar.step_button.isEnabled()
    paused_at = sess.player.t
    qtbot.mouseClick(bar.step_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sess.player.t > paused_at, timeout=5000)
    qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sess.player.playing, timeout=5000)
    assert sess.player.speed == 16.0  # play keeps the session's speed

    # every child's trail, drawn as one curve
    qtbot.waitUntil(lambda: window.map.trails_points() > 100, timeout=15_000)
    assert len(replay.trails) >= 2

    # a click near the start of the timeline seeks back: the session restarts
    # its engine, and the trails so far (of the run before) go
    left_after: list[int] = []
    rewound = replay.rewound

    def spy() -> None:
        rewound()
        left_after.append(len(replay.trails) + window.map.trails_points())

    replay.rewound = spy  # type: ignore[method-assign]
    before = sess.player.t
    line = bar.timeline
    qtbot.mouseClick(line, Qt.MouseButton.LeftButton,
                     pos=QPoint(round(line.x_of(line.t0 + 20)), line.height() // 2))
    qtbot.waitUntil(lambda: bool(left_after), timeout=15_000)
    assert left_after[0] == 0
    assert sess.player.t < before
    window.close()
