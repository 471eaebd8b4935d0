"""The whole backend, end to end over real sockets and processes."""

from __future__ import annotations

import json
import os
import select as io_select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from console.app import ConsoleWindow
from console.feed import LiveFeed
from console.supervisor import BACKEND
from db.store import open_store
from db.tables import Alert, AlertAction, Fix
from models.console_state import BusState
from models.geo import to_map
from models.messages import position_columns
from models.privacy_view import mask_device
from tests.console.conftest import (
    SEOUL_FOREST,
    TEST_PASSWORD,
    Backend,
    wait_for,
    wait_for_heartbeat,
    watch_connection,
)

ROOT = Path(__file__).resolve().parents[2]


def childsafe(*args: str) -> list[str]:
    return [sys.executable, "-m", "console", *args]


def start_tap(backend: Backend, prefix: str, count: int) -> subprocess.Popen[str]:
    tap = subprocess.Popen(
        childsafe("tap", prefix, "--count", str(count), "--data-dir",
                  str(backend.config.data_dir)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert tap.stderr is not None
    for line in tap.stderr:  # blocks until the subscription has carried a message
        if "tap: listening" in line:
            return tap
    raise AssertionError("tap never started listening")


def open_window(qtbot: QtBot, backend: Backend, user: str = "operator1") -> ConsoleWindow:
    window = ConsoleWindow(backend.config)
    qtbot.addWidget(window)
    window.start((user, TEST_PASSWORD))
    qtbot.waitUntil(lambda: window.status.bus.text() == "LIVE", timeout=10_000)
    qtbot.waitUntil(lambda: window.session.user == user, timeout=10_000)
    return window


def test_sos_request_becomes_alert_row_and_tap_line(backend: Backend, qtbot: QtBot) -> None:
    window = open_window(qtbot, backend)
    tap = start_tap(backend, "alert.", 1)
    child = backend.roster[3]
    status, _ = backend.fix(child.device_id, *SEOUL_FOREST, alarm="sos")
    assert status == 200

    out, _ = tap.communicate(timeout=10)
    line = json.loads(out.strip())
    assert line["schema"] == "alert.opened"
    assert line["alert"]["kind"] == "sos"
    assert line["alert"]["device_id"] == child.device_id

    model = window.alerts.model
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    cells = [model.index(0, c).data() for c in range(model.columnCount())]
    assert cells[1:8] == ["P1", "SOS", child.token, "성동구 성수동1가", "New", "", ""]
    assert cells[9] == mask_device(child.device_id)  # the id is the device's credential

    # Double-clicking the row centres the map on the child and rings it.
    table = window.alerts.table
    rect = table.visualRect(model.index(0, 3))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    x, y = to_map(*SEOUL_FOREST)
    (x0, x1), (y0, y1) = window.map.view_range()
    assert x0 < x < x1 and y0 < y < y1
    assert min(x1 - x0, y1 - y0) < 1000  # street zoom, not the whole city
    ring = window.map.highlighted()
    assert ring is not None and abs(ring[0] - x) < 1 and abs(ring[1] - y) < 1
    assert child.token in window.status.message.text()
    window.close()


def test_late_joiner_state_equals_engine(backend: Backend) -> None:
    devices = [r.device_id for r in backend.roster[:20]]
    early = LiveFeed(backend.config)
    early.start()
    try:
        wait_for(lambda: early.state.synced, what="early feed snapshot")
        t0 = time.time() - 100
        for i, d in enumerate(devices[:10]):
            backend.fix(d, 37.5444 + i * 1e-4, 127.0374, t=t0 + i)
        late = LiveFeed(backend.config)
        late.start()
        try:
            for i, d in enumerate(devices[5:]):
                backend.fix(d, 37.5085 + i * 1e-4, 126.8875, t=t0 + 50 + i)
            assert backend.fix(devices[0], *SEOUL_FOREST, alarm="sos")[0] == 200

            seen: list[object] = []

            def all_agree() -> bool:
                snap = backend.snapshot()
                n = len(snap.children)
                cols = position_columns(snap.positions)
                engine: dict[str, np.ndarray] = {}
                for name in ("lat", "lon"):
                    engine[name] = np.full(n, np.nan)
                    engine[name][cols["slots"]] = cols[name]
                engine["inside"] = np.zeros(n, dtype=np.uint8)
                engine["inside"][cols["slots"]] = cols["inside"]
                seen[:] = [snap.seq, len(snap.alerts), engine["lat"].tolist()] + [
                    (f.state.synced, f.state.seq, f.state.resyncs, len(f.state.alerts.rows),
                     f.state.lat.tolist()) for f in (early, late)]
                return all(
                    f.state.synced
                    and f.state.tokens == list(snap.children)
                    and [z.name for z in f.state.zones] == [z.name for z in snap.zones]
                    and all(np.array_equal(getattr(f.state, name), column, equal_nan=True)
                            for name, column in engine.items())
                    and sorted(a.id for a in f.state.alerts.rows) == [a.id for a in snap.alerts]
                    and sorted(f.state.alerts.rows, key=lambda a: a.id) == list(snap.alerts)
                    and any(a.kind == "sos" for a in snap.alerts)
                    for f in (early, late)
                )

            try:
                wait_for(all_agree, 10, "both feeds to equal the engine")
            except AssertionError:
                logs = (backend.config.log_dir / "engine.log").read_text()[-3000:]
                raise AssertionError(f"engine vs feeds: {seen}\n{logs}") from None
            assert np.isfinite(late.state.lat).sum() == 20
            assert late.state.resyncs == 0 and early.state.resyncs == 0
        finally:
            late.stop()
    finally:
        early.stop()


def test_acknowledge_travels_to_engine_store_and_every_console(
        backend: Backend, qtbot: QtBot) -> None:
    first = open_window(qtbot, backend)
    second = open_window(qtbot, backend, "operator2")
    child = backend.roster[5]
    backend.fix(child.device_id, *SEOUL_FOREST, alarm="sos")
    for window in (first, second):
        qtbot.waitUntil(lambda w=window: w.alerts.model.rowCount() == 1, timeout=5000)
        window.alerts.table.selectRow(0)
        qtbot.waitUntil(lambda w=window: w.panel.buttons["ack"].isEnabled(), timeout=5000)
    # Both operators press Acknowledge on the version they see: one wins.
    qtbot.mouseClick(first.panel.buttons["ack"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(second.panel.buttons["ack"], Qt.MouseButton.LeftButton)

    for window in (first, second):
        qtbot.waitUntil(lambda w=window: w.alerts.model.alert_at(0).state  # type: ignore[union-attr]
                        == "acknowledged", timeout=5000)
    winner = first.alerts.model.alert_at(0).acked_by  # type: ignore[union-attr]
    assert winner in ("operator1", "operator2")
    won, lost = (first, second) if winner == "operator1" else (second, first)
    qtbot.waitUntil(lambda: f"changed by {winner}" in lost.panel.refusal_text()
                    or "cannot ack" in lost.panel.refusal_text(), timeout=5000)
    assert won.panel.refusal_text() == ""

    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        actions = s.execute(select(AlertAction.action, AlertAction.actor)).all()
    assert [tuple(a) for a in actions] == [("open", "engine"), ("ack", winner)]
    # The history on the panel comes from the engine, and the winner takes it.
    qtbot.waitUntil(lambda: won.panel.history.rowCount() == 2, timeout=5000)
    qtbot.mouseClick(won.panel.buttons["take"], Qt.MouseButton.LeftButton)
    for window in (first, second):
        qtbot.waitUntil(lambda w=window: w.alerts.model.index(0, 6).data() == winner,
                        timeout=5000)
    first.close()
    second.close()


def test_bad_and_unregistered_requests_are_refused_and_counted(backend: Backend) -> None:
    tap = start_tap(backend, "sys.heartbeat", 200)
    assert backend.send(id="not-registered", lat=37.5, lon=127.0) == (403, "unregistered device")
    assert backend.send(id=backend.roster[0].device_id, lat=0, lon=0) == (
        200, "refused: coordinate_null_island")
    assert backend.send(id=backend.roster[0].device_id, lat="nan", lon=127) == (
        200, "refused: coordinate_not_finite")
    assert backend.send(lat=37.5, lon=127.0) == (400, "missing_device_id")
    # The gateway kept running and still accepts good input.
    assert backend.fix(backend.roster[0].device_id, *SEOUL_FOREST)[0] == 200
    assert tap.stdout is not None
    for line in tap.stdout:
        hb = json.loads(line)
        stats = hb["stats"]
        if hb["origin"].startswith("gateway:") and stats.get("accepted.osmand") == 1:
            assert stats["rejected.osmand:unregistered_device"] == 1
            assert stats["rejected.osmand:coordinate_null_island"] == 1
            assert stats["rejected.osmand:coordinate_not_finite"] == 1
            assert stats["rejected.osmand:missing_device_id"] == 1
            break
    else:
        pytest.fail("no gateway heartbeat with the counts")
    tap.terminate()
    tap.wait(5)


def test_supervisor_restarts_a_killed_process_and_console_recovers(backend: Backend) -> None:
    feed = LiveFeed(backend.config)
    feed.start()
    try:
        wait_for(lambda: feed.take().state is BusState.LIVE, 10, "LIVE")
        old = backend.supervisor.pid("engine")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: backend.supervisor.pid("engine") != old, 10, "engine restart")
        assert backend.supervisor.status()["engine"] == "running"
        # The new engine starts its sequence afresh; the console notices and
        # resyncs instead of applying updates out of step.
        wait_for(lambda: feed.state.resyncs >= 1 and feed.take().state is BusState.LIVE, 20,
                 "resync after the engine restart")

        def reported() -> bool:
            # A device reports again and again; the first reports may reach
            # the bus before the new engine's subscription does.
            backend.fix(backend.roster[1].device_id, *SEOUL_FOREST)
            return bool(np.isfinite(feed.state.lat[1]))

        wait_for(reported, 10, "a fix through the restarted engine")
    finally:
        feed.stop()
    pids = [c.proc.pid for c in backend.supervisor.children if c.proc]
    backend.supervisor.stop()
    for pid in [*pids, old]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_gone(pid)
    assert not any(p.exists() for p in backend.config.ipc_paths())


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def test_devices_list_prints_ids_first(backend: Backend) -> None:
    out = subprocess.run(childsafe("devices", "list", "--data-dir", str(backend.config.data_dir)),
                         cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == len(backend.roster)
    ids = {line.split()[0] for line in lines}
    assert ids == {r.device_id for r in backend.roster}
    kinds = {line.split()[1] for line in lines}
    assert kinds == {"watch", "phone", "tag"}


def test_sos_from_a_child_never_seen_still_raises_and_is_stored(backend: Backend) -> None:
    """No position at all and no accuracy: the alert opens '위치 미상', and the
    recorder stores the fix with NULLs instead of dying."""
    child = backend.roster[7]
    status, _ = backend.send(id=child.device_id, alarm="sos", timestamp=time.time())
    assert status == 200
    wait_for(lambda: any(a.kind == "sos" for a in backend.snapshot().alerts), 10, "the SOS")
    alert = next(a for a in backend.snapshot().alerts if a.kind == "sos")
    assert alert.place == "위치 미상" and alert.position_is_last_known
    assert np.isnan(alert.lat)
    # A fix without accuracy right after: both end up in the store.
    assert backend.send(id=child.device_id, lat=37.5444, lon=127.0374,
                        timestamp=time.time() + 1)[0] == 200
    engine, _ = open_store(backend.config.db_url)

    def stored() -> int:
        with engine.connect() as conn:
            return len(conn.execute(select(Fix.lat).where(Fix.device_id == child.device_id))
                       .all())

    wait_for(lambda: stored() == 2, 10, "both fixes stored")
    assert backend.supervisor.status() == dict.fromkeys(BACKEND, "running")
    engine.dispose()


def test_a_tag_read_posted_to_the_gateway_becomes_a_fix_at_the_reader(backend: Backend) -> None:
    from db import repositories as repo

    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        reader = repo.readers(s)[0]
    tag = next(r for r in backend.roster if r.kind == "tag")
    slot = [r.device_id for r in backend.roster].index(tag.device_id)
    status, reply = backend.post_json(backend.config.feeds_port, "/v1/tag-reads", {"reads": [
        {"reader_id": reader.id, "tag_id": tag.device_id, "rssi": -61, "t": time.time()},
        {"reader_id": "NO-SUCH-READER", "tag_id": tag.device_id, "rssi": -70, "t": time.time()},
    ]})
    assert status == 200
    assert reply["accepted"] == 1  # type: ignore[index]
    assert reply["rejected"][0]["reason"] == "unknown_reader"  # type: ignore[index]

    def at_reader() -> bool:
        cols = position_columns(backend.snapshot().positions)
        where = dict(zip(cols["slots"].tolist(), cols["lat"].tolist(), strict=True))
        return where.get(slot) == pytest.approx(reader.lat)

    wait_for(at_reader, 10, "the tag's fix at the reader")


def test_a_watch_sos_frame_to_the_gateway_raises_an_sos(backend: Backend) -> None:
    """A child's watch over the real 3G TCP protocol: AL with status bit 16,
    answered with AL as the watch expects."""
    from console.gateway.watch import encode

    watch = next(r for r in backend.roster if r.kind == "watch")
    when = time.gmtime()
    content = (f"AL,{time.strftime('%d%m%y,%H%M%S', when)},A,37.544400,N,127.037400,E,"
               "0.0,0.0,30.0,8,90,71,120,0,00010000,0")
    with watch_connection(backend.config.watch_port) as s:
        s.sendall(encode("3G", watch.device_id, content))
        reply = s.recv(200)
    assert reply == f"[3G*{watch.device_id}*0002*AL]".encode()
    wait_for(lambda: any(a.kind == "sos" and a.device_id == watch.device_id
                         for a in backend.snapshot().alerts), 10, "the watch's SOS")
    alert = next(a for a in backend.snapshot().alerts if a.kind == "sos")
    assert alert.place == "성동구 성수동1가" and not alert.position_is_last_known


def test_f4_acknowledges_and_the_status_bar_counts(backend: Backend, qtbot: QtBot) -> None:
    """The keyboard path an operator uses with eyes on the map: select, F4."""
    window = open_window(qtbot, backend)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    backend.fix(backend.roster[6].device_id, *SEOUL_FOREST, alarm="sos")
    model = window.alerts.model
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    window.alerts.table.selectRow(0)
    window.alerts.table.setFocus()
    qtbot.waitUntil(lambda: window.panel.buttons["ack"].isEnabled(), timeout=5000)
    qtbot.keyClick(window.alerts.table, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: model.index(0, 5).data() == "Acknowledged", timeout=5000)
    # The status bar counts what the engine reports: children, fix rate, alerts.
    assert window.status.children.text() == f"{len(backend.roster)} children"
    assert window.status.alerts.text() == "1 open alert"  # acknowledged, not yet resolved

    def reporting() -> bool:
        backend.fix(backend.roster[9].device_id, *SEOUL_FOREST)
        return window.status.rate.text() != "0 fixes/s"

    qtbot.waitUntil(reporting, timeout=10_000)
    window.close()


def test_a_locked_store_never_holds_back_an_sos(backend: Backend) -> None:
    """While another writer holds the store locked, the SOS is acknowledged
    (the gateway's journal has it), published at once marked unsaved, and
    saved (and published as saved) once the lock goes; the engine keeps its
    heartbeat meanwhile, and its row is the one consoles were shown."""
    db_file = backend.config.db_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(db_file, timeout=10, isolation_level=None)
    tap = start_tap(backend, "alert.", 2)
    assert tap.stdout is not None
    try:
        lock.execute("BEGIN EXCLUSIVE")
        assert backend.fix(backend.roster[8].device_id, *SEOUL_FOREST, alarm="sos")[0] == 200
        ready, _, _ = io_select.select([tap.stdout], [], [], 10.0)
        assert ready, "the SOS waited for the store"
        opened = json.loads(tap.stdout.readline())
        assert opened["schema"] == "alert.opened" and opened["alert"]["saved"] is False
        stats = wait_for_heartbeat(backend.config, "engine")
        assert stats["unsaved_alerts"] >= 1
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    out, _ = tap.communicate(timeout=20)
    saved = json.loads(out.strip())
    assert saved["schema"] == "alert.updated" and saved["action"] == "saved"
    assert saved["alert"]["saved"] is True and saved["alert"]["id"] == opened["alert"]["id"]
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        row = s.get(Alert, opened["alert"]["id"])
        assert row is not None and row.kind == "sos"
        assert row.device_id == backend.roster[8].device_id
