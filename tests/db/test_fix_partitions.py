"""Fixes by day on PostgreSQL (one table on SQLite, where the same calls are
harmless no-ops): days made ahead and found again after a restart, a fix
no day covers kept in the default, and retention dropping old days but
never a held case's fix."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db import partitions
from db.retention import purge
from db.store import open_store
from db.tables import Alert, Child, Device, Fix, LatestPosition
from models.retention import RetentionPolicy
from tests.db.fixes import store_fixes

DAY = 86400.0
HOUR = 3600.0
DAY0 = math.floor(time.time() / DAY) * DAY  # today, UTC midnight: what the recorder makes
NOW = DAY0 + 12 * HOUR
POLICY = RetentionPolicy(fix_s=7 * DAY, usage_s=183 * DAY, access_s=730 * DAY,
                         case_hold_s=90 * DAY)
Store = tuple[Engine, sessionmaker[Session]]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    engine, sessions = open_store(store_url)
    yield engine, sessions
    engine.dispose()


def _pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _in(conn: Connection, table: str) -> int:
    return int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


def _fixes(sessions: sessionmaker[Session]) -> list[tuple[str, float]]:
    with sessions() as s:
        return [(d, t) for d, t in s.execute(select(Fix.device_id, Fix.t)
                                             .order_by(Fix.device_id, Fix.t))]


def test_days_are_made_ahead_and_a_restart_finds_them_there(store: Store) -> None:
    """The migration made today and the two days after; the recorder, a day
    later, makes the one more it needs; restarted, and at its retention
    run, it finds them all there."""
    engine, sessions = store
    with engine.connect() as conn:
        first = partitions.days(conn)
    with engine.begin() as conn:
        made = partitions.ensure(conn, NOW + DAY)
    with engine.begin() as conn:
        assert partitions.ensure(conn, NOW + DAY) == []
    with sessions() as s:
        purge(s, NOW + DAY, POLICY)
    with engine.connect() as conn:
        days = partitions.days(conn)
    if not _pg(engine):
        assert first == made == days == []
        return
    today = int(DAY0 // DAY)
    assert [d.name for d in first] == [partitions.name_of(today + k) for k in range(3)]
    assert made == [partitions.name_of(today + 3)]
    assert [(d.name, d.lo, d.hi) for d in days] == [
        (partitions.name_of(today + k), DAY0 + k * DAY, DAY0 + (k + 1) * DAY) for k in range(4)]
    assert days[0].name == time.strftime("fixes_p%Y%m%d", time.gmtime(NOW))


def test_a_restarted_recorder_finds_its_days_there(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Its start makes the days ahead it needs, once: a restart finds them
    and says nothing (a failure would be a warning, never a crash)."""
    from console.services.recorder import Recorder

    engine, _ = store
    recorder = SimpleNamespace(engine=engine, rt=SimpleNamespace(log=logging.getLogger("rec")))
    with engine.connect() as conn:
        before = partitions.days(conn)
    with caplog.at_level(logging.INFO, logger="rec"):
        for _ in range(2):
            Recorder.days_ahead(recorder)  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert partitions.days(conn) == before
    assert caplog.records == []  # the migration had made today's: nothing made, nothing failed


def test_a_fix_no_day_covers_waits_in_the_default_and_moves_to_its_day(store: Store) -> None:
    engine, sessions = store
    with engine.begin() as conn:
        partitions.ensure(conn, NOW)
    odd = np.array([1e6, DAY0 + 5 * DAY + 60, 4.1e9])  # 1970, five days ahead, 2099
    store_fixes(engine, "d-odd", odd)
    store_fixes(engine, "d-odd", np.array([NOW]))
    assert [t for _, t in _fixes(sessions)] == sorted([*odd, NOW])
    if not _pg(engine):
        return
    with sessions() as s:  # a clock far ahead is the newest fix, as before
        assert s.get(LatestPosition, "d-odd").t == 4.1e9  # type: ignore[union-attr]
    with engine.connect() as conn:
        assert _in(conn, partitions.DEFAULT) == 3
        assert _in(conn, partitions.name_of(int(DAY0 // DAY))) == 1
    with engine.begin() as conn:  # the recorder, five days on
        made = partitions.ensure(conn, NOW + 5 * DAY, since=NOW + 3 * DAY)
    fifth = partitions.name_of(int(DAY0 // DAY) + 5)
    assert fifth in made
    with engine.connect() as conn:
        assert _in(conn, partitions.DEFAULT) == 2
        assert _in(conn, fifth) == 1
    assert [t for _, t in _fixes(sessions)] == sorted([*odd, NOW])


def _held_case(sessions: sessionmaker[Session]) -> None:
    """Child "h" (watch d-held, phone d-held-phone) had a case whose window,
    [opened - 30 min, closed], runs exactly from midnight 10 days ago to
    midnight 9 days ago: its first and last fixes lie on partition bounds."""
    with sessions() as s:
        kids = [Child(token=f"C-{i}", name=f"child {i}") for i in range(2)]
        s.add_all(kids)
        s.flush()
        for device_id, kid in (("d-held", kids[0]), ("d-held-phone", kids[0]),
                               ("d-routine", kids[1])):
            s.add(Device(id=device_id, kind="watch", child_id=kid.id, registered_at=0.0))
        s.add(Alert(kind="sos", priority=1, state="resolved", child_id=kids[0].id,
                    device_id="d-held", lat=37.5, lon=127.0, place="",
                    opened_at=DAY0 - 10 * DAY + 1800, resolved_at=DAY0 - 9 * DAY,
                    updated_at=DAY0 - 9 * DAY))
        s.commit()


def test_retention_drops_old_days_but_never_a_held_cases_fix(store: Store) -> None:
    engine, sessions = store
    _held_case(sessions)
    with engine.begin() as conn:
        partitions.ensure(conn, NOW, since=DAY0 - 12 * DAY)
    hourly = DAY0 - 12 * DAY + np.arange(12 * 24 + 13) * HOUR  # up to NOW
    for device_id in ("d-routine", "d-held"):
        store_fixes(engine, device_id, hourly)
    store_fixes(engine, "d-held-phone", np.array([DAY0 - 9 * DAY, DAY0 - 9 * DAY + 1]))
    before = _fixes(sessions)
    window = (DAY0 - 10 * DAY, DAY0 - 9 * DAY)

    with sessions() as s:
        report = purge(s, NOW, POLICY)

    def kept(device_id: str, t: float) -> bool:
        held = device_id.startswith("d-held") and window[0] <= t <= window[1]
        return held or t >= NOW - POLICY.fix_s

    after = _fixes(sessions)
    assert after == [(d, t) for d, t in before if kept(d, t)]
    assert ("d-held", DAY0 - 10 * DAY) in after and ("d-held-phone", DAY0 - 9 * DAY) in after
    assert report.fixes == len(before) - len(after)
    if _pg(engine):
        with sessions() as s:
            assert s.get(LatestPosition, "d-held").t == NOW  # type: ignore[union-attr]
        with engine.connect() as conn:
            left = {d.name for d in partitions.days(conn)}
        today = int(DAY0 // DAY)
        gone = {partitions.name_of(today - k) for k in (12, 11, 8)}
        stay = {partitions.name_of(today - k) for k in (10, 9, 7)}
        assert not gone & left and stay <= left
    with sessions() as s:  # the repeat removes nothing more
        assert purge(s, NOW, POLICY).fixes == 0
    assert _fixes(sessions) == after
    with sessions() as s:  # the hold over, the held days go too
        purge(s, DAY0 + 82 * DAY, POLICY)
        assert s.scalar(select(func.count()).select_from(Fix)) == 0
        if _pg(engine):
            assert s.scalar(select(func.count()).select_from(LatestPosition)) == 0


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # SQLite drops no day
def test_a_day_with_a_fix_that_raced_in_is_not_dropped(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check that a day holds nothing held is made again under the lock
    the drop takes: a held device's late fix committed between the two
    looks keeps its day."""
    engine, sessions = store
    _held_case(sessions)
    with engine.begin() as conn:
        partitions.ensure(conn, NOW, since=DAY0 - 10 * DAY)
    store_fixes(engine, "d-routine", np.array([DAY0 - 10 * DAY + HOUR]))
    looks: list[str] = []
    real = partitions.holds_any

    def a_fix_arrives_after_the_first_look(conn: Connection, day: partitions.Day,
                                           ids: list[str]) -> bool:
        found = real(conn, day, ids)
        looks.append(day.name)
        if len(looks) == 1:
            store_fixes(engine, "d-held", np.array([DAY0 - 10 * DAY + 60]))
        return found

    monkeypatch.setattr(partitions, "holds_any", a_fix_arrives_after_the_first_look)
    with sessions() as s:
        purge(s, NOW, POLICY)
    today = int(DAY0 // DAY)
    assert looks[:2] == [partitions.name_of(today - 10)] * 2
    assert _fixes(sessions) == [("d-held", DAY0 - 10 * DAY + 60)]
    with engine.connect() as conn:
        assert partitions.name_of(today - 10) in {d.name for d in partitions.days(conn)}
