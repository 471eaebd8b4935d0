"""An SOS never waits for SQLite's write lock (issue 14).

Under load the recorder holds the store's one write lock most of the time.
The alert desk used to wait for it inside the engine's loop, and every
alarm behind that one waited too. These tests hold the lock from another
connection, as the recorder does, and drive a real ``AlertDesk`` on a real
SQLite store: nothing blocks, nothing is published before it is stored
unless it waited too long, and everything is stored, in order, once the
lock goes.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import select

from console.engine import desk as desk_module
from console.engine.desk import AlertDesk
from console.engine.state import EngineState, load_state
from db.alerts import history
from db.seed import seed_demo
from db.store import (
    CHECKPOINT_PAGES,
    RARE_CHECKPOINT_PAGES,
    no_wait_sessions,
    open_store,
    sqlite_url,
)
from db.tables import Alert
from models.alerts import Policy, Trigger
from models.messages import AlertOpened, AlertUpdated, Message

SEOUL = (37.5665, 126.9780)


class Desk:
    """An alert desk on its own store, with what it published."""

    def __init__(self, data_dir: Path) -> None:
        self.url = sqlite_url(data_dir)
        self.path = self.url.removeprefix("sqlite:///")
        _, self.sessions = open_store(self.url, busy_timeout_s=0.5)
        with self.sessions() as s:
            seed_demo(s, children=4)
            s.commit()
        self.state: EngineState = load_state(self.sessions)
        self.sent: list[Message] = []
        seq = itertools.count(1)
        self.desk = AlertDesk(
            self.sessions, Policy(), self.state.tracker, self.state.alerts,
            self.state.child_ids, self.state.zone_names, self.state.device_kinds,
            self.sent.append, try_sessions=no_wait_sessions(self.url, self.sessions),
            stamp=lambda m: msgspec.structs.replace(m, seq=next(seq), ts=time.time(),
                                                    origin="engine"))
        self.devices = sorted(self.state.tracker.device_slots.items(), key=lambda d: d[1])

    def sos(self, n: int, at: float) -> Trigger:
        device, slot = self.devices[n]
        return Trigger("sos", slot, device, *SEOUL, False, at)


@pytest.fixture
def d(data_dir: Path) -> Desk:
    return Desk(data_dir)


@pytest.fixture
def lock(d: Desk) -> Iterator[sqlite3.Connection]:
    """Another process's write transaction on the main file (the notifier's,
    a command line's; the recorder's fix writes lock the fixes file)."""
    holder = sqlite3.connect(d.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def stored_alerts(d: Desk) -> list[Alert]:
    with d.sessions() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def test_alarms_behind_a_busy_lock_neither_wait_nor_show_unsaved(
        d: Desk, lock: sqlite3.Connection) -> None:
    now = time.time()
    d.desk.trigger(d.sos(0, now))
    d.desk.trigger(d.sos(1, now))
    # Had it waited for the lock, the desk would have given up after its
    # busy timeout and published the first one unsaved by now.
    assert d.sent == [] and len(d.desk.pending) == 2
    assert d.desk.store_error == "" and d.desk.store_failures == 0

    lock.execute("ROLLBACK")
    time.sleep(desk_module.BUSY_RETRY_S)
    assert d.desk.waiting()
    d.desk.flush()
    assert [type(m) for m in d.sent] == [AlertOpened, AlertOpened]
    opened = [m.alert for m in d.sent]  # type: ignore[attr-defined]
    assert [a.device_id for a in opened] == [d.devices[0][0], d.devices[1][0]]
    assert all(a.saved for a in opened) and opened[0].id < opened[1].id
    assert [a.id for a in stored_alerts(d)] == [a.id for a in opened]
    assert d.desk.unsaved() == 0 and not d.desk.waiting()


def test_a_lock_held_too_long_shows_the_alert_unsaved_then_saved(
        d: Desk, lock: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desk_module, "ANNOUNCE_WAIT_S", 0.0)
    monkeypatch.setattr(desk_module, "LOCKED_AFTER_S", 0.0)
    monkeypatch.setattr(desk_module, "BUSY_RETRY_S", 0.0)
    d.desk.trigger(d.sos(2, time.time()))
    (shown,) = d.sent
    assert isinstance(shown, AlertOpened) and shown.alert.saved is False
    assert "locked" in d.desk.store_error and d.desk.store_failures == 1
    for _ in range(3):  # still locked: counted once for the whole spell
        d.desk.flush()
    assert d.desk.store_failures == 1 and len(d.sent) == 1

    lock.execute("ROLLBACK")
    d.desk.flush()
    saved = d.sent[-1]
    assert isinstance(saved, AlertUpdated) and saved.action == "saved"
    assert saved.alert.saved and saved.alert.id == shown.alert.id
    assert d.desk.store_error == "" and d.desk.unsaved() == 0
    assert [a.id for a in stored_alerts(d)] == [shown.alert.id]


def test_a_repeat_folds_into_an_alert_still_waiting_for_the_lock(
        d: Desk, lock: sqlite3.Connection) -> None:
    now = time.time()
    d.desk.trigger(d.sos(3, now))
    d.desk.trigger(d.sos(3, now + 5.0))  # the child pressed again
    d.desk.trigger(d.sos(3, now + 5.0))  # the device resent that press
    assert d.sent == [] and len(d.desk.pending) == 1 and d.desk.duplicates == 1

    lock.execute("ROLLBACK")
    time.sleep(desk_module.BUSY_RETRY_S)
    d.desk.flush()
    (opened,) = d.sent
    assert isinstance(opened, AlertOpened) and opened.alert.saved
    assert opened.alert.count == 2 and opened.alert.last_trigger_at == now + 5.0
    with d.sessions() as s:
        assert [h.action for h in history(s, opened.alert.id)] == ["open", "repeat"]


def test_the_engines_own_changes_wait_in_the_outbox_without_blocking(
        d: Desk, lock: sqlite3.Connection) -> None:
    """A fold into a stored alert is published at once and stored later."""
    lock.execute("ROLLBACK")
    now = time.time()
    d.desk.trigger(d.sos(0, now))
    (opened,) = d.sent
    lock.execute("BEGIN IMMEDIATE")
    d.desk.trigger(d.sos(0, now + 3.0))
    assert isinstance(d.sent[-1], AlertUpdated) and d.sent[-1].alert.count == 2
    assert len(d.desk.outbox) == 1 and d.desk.store_error == ""

    lock.execute("ROLLBACK")
    time.sleep(desk_module.BUSY_RETRY_S)
    d.desk.flush()
    assert d.desk.outbox == []
    (row,) = stored_alerts(d)
    assert row.id == opened.alert.id and row.count == 2


def test_the_engines_no_wait_sessions_fail_at_once_and_never_checkpoint(
        d: Desk, lock: sqlite3.Connection) -> None:
    """A busy try fails at its first write, at once: a read goes through (WAL
    readers never wait), and only the file written is locked (BEGIN
    IMMEDIATE would lock the fixes file too); and the WAL is the recorder's
    to checkpoint, not a commit of the engine's (unless nobody has for 40 MB)."""
    from sqlalchemy import text

    from db.store import is_busy

    with pytest.raises(Exception) as caught, d.desk.try_sessions() as s:
        assert s.execute(text("SELECT count(*) FROM alerts")).scalar() == 0
        s.execute(text("DELETE FROM alerts"))
    assert is_busy(caught.value)
    lock.execute("ROLLBACK")
    with d.desk.try_sessions() as s:
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == RARE_CHECKPOINT_PAGES
    with d.sessions() as s:  # other processes' sessions keep SQLite's default
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == CHECKPOINT_PAGES


def test_an_operators_command_tried_without_waiting_changes_nothing_until_stored(
        d: Desk, lock: sqlite3.Connection) -> None:
    from console.engine.desk import StoreBusy
    from models.alerts import Actor
    from models.messages import AckAlert

    lock.execute("ROLLBACK")
    d.desk.trigger(d.sos(1, time.time()))
    (opened,) = d.sent
    alert = opened.alert  # type: ignore[attr-defined]
    ack = AckAlert(token="t", alert_id=alert.id, alert_version=alert.version)
    operator = Actor("operator1", frozenset({"operator"}))
    lock.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusy):
        d.desk.apply(ack, operator, frozenset, waiting_since=time.monotonic())
    assert len(d.sent) == 1 and d.desk.alerts[alert.id] == alert
    assert d.desk.retry_at == 0.0 and d.desk.store_error == ""  # the desk's own: untouched

    lock.execute("ROLLBACK")
    acked = d.desk.apply(ack, operator, frozenset, waiting_since=time.monotonic())
    assert acked.state == "acknowledged" and d.desk.alerts[alert.id] == acked
    assert isinstance(d.sent[-1], AlertUpdated) and d.sent[-1].alert == acked
    (row,) = stored_alerts(d)
    assert row.state == "acknowledged" and row.acked_by == "operator1"
