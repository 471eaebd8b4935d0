"""``latest_positions`` (PostgreSQL; SQLite keeps none, ``db.latest``): it
moves with every fix batch, only forward in device time, and nothing in it
outlives the fix it came from (retention, withdrawal)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db import repositories as repo
from db.consent import CASE_LEAD_S
from db.retention import purge
from db.store import open_store
from db.tables import Alert, Child, Device, Fix, LatestPosition
from models.retention import RetentionPolicy

NOW = 1_800_000_000.0
DAY = 86400.0
POLICY = RetentionPolicy(fix_s=7 * DAY, usage_s=183 * DAY, access_s=730 * DAY,
                         case_hold_s=90 * DAY)
Store = tuple[Engine, sessionmaker[Session]]
pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    engine, sessions = open_store(store_url)
    yield engine, sessions
    engine.dispose()


def _cols(times: list[float], lat: list[float] | None = None,
          battery: list[int] | None = None) -> dict[str, np.ndarray]:
    n = len(times)
    return {"t": np.array(times, dtype=float),
            "lat": np.array(lat if lat is not None else [37.5] * n, dtype=float),
            "lon": np.full(n, 127.0), "speed": np.zeros(n, np.float32),
            "bearing": np.zeros(n, np.float32), "accuracy": np.full(n, 8, np.float32),
            "battery": np.array(battery if battery is not None else [80] * n, np.int8),
            "flags": np.zeros(n, np.uint8)}


def _store(engine: Engine, devices: list[str], times: list[float], **kw: list) -> None:
    with engine.begin() as conn:
        repo.insert_fixes(conn, devices, _cols(times, **kw))


def _latest(sessions: sessionmaker[Session]) -> dict[str, tuple[float, int]]:
    """device -> (t, battery) of its row."""
    with sessions() as s:
        return {d: (t, b) for d, t, b in s.execute(
            select(LatestPosition.device_id, LatestPosition.t, LatestPosition.battery))}


def test_latest_positions_leave_room_for_updates_on_their_page(store: Store) -> None:
    """Migration 0011: with half of each page free, moving a row on is a
    heap-only update (no new index entry)."""
    engine, _ = store
    with engine.connect() as conn:
        options = conn.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'latest_positions'")).scalar()
    assert options == ["fillfactor=50"]


def test_the_newest_fix_wins_whatever_order_it_comes_in(store: Store) -> None:
    engine, sessions = store
    _store(engine, ["a", "b", "a"], [NOW - 20, NOW - 15, NOW - 10], battery=[70, 60, 71])
    assert _latest(sessions) == {"a": (NOW - 10, 71), "b": (NOW - 15, 60)}
    # a late batch (a journal replayed, a device resending): nothing moves back
    _store(engine, ["a", "b"], [NOW - 30, NOW - 15], battery=[10, 11])
    assert _latest(sessions) == {"a": (NOW - 10, 71), "b": (NOW - 15, 60)}
    # an SOS with no position is stored but is not a position
    _store(engine, ["a"], [NOW - 5], lat=[math.nan], battery=[5])
    assert _latest(sessions)["a"] == (NOW - 10, 71)
    _store(engine, ["a", "a"], [NOW - 1, NOW - 2], battery=[90, 91])  # unsorted in a batch
    assert _latest(sessions) == {"a": (NOW - 1, 90), "b": (NOW - 15, 60)}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Fix)) == 8


def test_several_batches_in_one_transaction_are_each_stored_once(store: Store) -> None:
    """The recorder writes whatever it drained in one transaction."""
    engine, sessions = store
    with engine.begin() as conn:
        for k in range(3):
            repo.insert_fixes(conn, ["a", "b"], _cols([NOW + k, NOW + k + 0.5]))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Fix)) == 6
    assert _latest(sessions) == {"a": (NOW + 2, 80), "b": (NOW + 2.5, 80)}


def test_a_batch_rolled_back_leaves_nothing_and_the_next_one_is_stored(store: Store) -> None:
    engine, sessions = store
    with pytest.raises(RuntimeError), engine.begin() as conn:
        repo.insert_fixes(conn, ["a"], _cols([NOW]))
        raise RuntimeError("the store refused the rest")
    assert _latest(sessions) == {}
    _store(engine, ["a"], [NOW + 1])
    _store(engine, ["a"], [NOW + 2])
    assert _latest(sessions) == {"a": (NOW + 2, 80)}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Fix)) == 2


def _child(s: Session, token: str, device_id: str) -> Child:
    child = Child(token=token, name=token)
    s.add(child)
    s.flush()
    s.add(Device(id=device_id, kind="watch", child_id=child.id, registered_at=NOW - 30 * DAY))
    g = db_consent.add_guardian(s, f"guardian of {token}", "010-0000-0000", "", NOW - 30 * DAY)
    db_consent.link(s, token, g.id, "mother")
    db_consent.give(s, token, g.id, ["location", "emergency"], "under14", "t", NOW - 30 * DAY)
    return child


def test_a_withdrawn_childs_latest_position_goes_with_its_fixes(store: Store) -> None:
    engine, sessions = store
    with sessions() as s:
        _child(s, "C-GONE", "w-gone")
        kept = _child(s, "C-CASE", "w-case")
        _child(s, "C-STAYS", "w-stays")
        s.add(Alert(kind="sos", priority=1, state="new", child_id=kept.id, device_id="w-case",
                    lat=37.5, lon=127.0, place="", opened_at=NOW - 600))
        s.commit()
    for device in ("w-gone", "w-case", "w-stays"):
        _store(engine, [device] * 3, [NOW - DAY, NOW - 300, NOW + 60])  # a clock ahead, too
    with sessions() as s:
        db_consent.withdraw(s, "C-GONE", "t", NOW)
        db_consent.withdraw(s, "C-CASE", "t", NOW)
        s.commit()
    # the open case keeps [opened - lead, now]: the newest fix it kept is the position
    assert NOW - 600 - CASE_LEAD_S < NOW - 300
    assert _latest(sessions) == {"w-case": (NOW - 300, 80), "w-stays": (NOW + 60, 80)}


def test_retention_takes_latest_positions_with_their_fixes(store: Store) -> None:
    """A device silent past ``fix_s`` loses its row; a held case keeps its
    device's; a withdrawn device whose newest fix went falls back to the
    newest fix its open case keeps."""
    engine, sessions = store
    with sessions() as s:
        held = _child(s, "C-HELD", "w-held")
        withdrawn = _child(s, "C-WD", "w-wd")
        _child(s, "C-SILENT", "w-silent")
        _child(s, "C-LIVE", "w-live")
        s.add(Alert(kind="sos", priority=1, state="resolved", child_id=held.id,
                    device_id="w-held", lat=37.5, lon=127.0, place="",
                    opened_at=NOW - 20 * DAY, resolved_at=NOW - 19 * DAY,
                    updated_at=NOW - 19 * DAY))
        s.add(Alert(kind="sos", priority=1, state="new", child_id=withdrawn.id,
                    device_id="w-wd", lat=37.5, lon=127.0, place="", opened_at=NOW - 3600))
        s.commit()
    _store(engine, ["w-held"] * 3, [NOW - 20 * DAY, NOW - 19.5 * DAY, NOW - 18 * DAY])
    _store(engine, ["w-silent"] * 2, [NOW - 9 * DAY, NOW - 8 * DAY])
    _store(engine, ["w-live"] * 2, [NOW - 9 * DAY, NOW - 60])
    _store(engine, ["w-wd"] * 2, [NOW - 1800, NOW - 60])
    with sessions() as s:
        db_consent.withdraw(s, "C-WD", "t", NOW - 120)  # the case kept [.., now - 120]
        s.commit()
    assert _latest(sessions)["w-wd"] == (NOW - 1800, 80)
    assert _latest(sessions)["w-held"] == (NOW - 18 * DAY, 80)  # after its case closed
    _store(engine, ["w-wd"], [NOW - 30])  # raced in after the withdrawal
    with sessions() as s:
        purge(s, NOW, POLICY)
    assert _latest(sessions) == {"w-held": (NOW - 19.5 * DAY, 80), "w-live": (NOW - 60, 80),
                                 "w-wd": (NOW - 30, 80)}
    with sessions() as s:
        purge(s, NOW + 100 * DAY, POLICY)  # the hold is over; the open case stays open
    assert _latest(sessions) == {"w-wd": (NOW - 30, 80)}
