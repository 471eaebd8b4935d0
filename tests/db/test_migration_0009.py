"""Migration 0009 on SQLite: a store with fixes and cursors (at 0008) moves
them, every row and id, into the fixes file, and back on downgrade; a
fixes file left by a deleted store is replaced, not merged; the engine's
no-wait writes no longer wait for the recorder's fix writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from db import cursors
from db.store import (
    FIXES_SCHEMA,
    MIGRATIONS,
    fixes_file,
    is_busy,
    make_engine,
    no_wait_sessions,
    session_factory,
    sqlite_url,
    upgrade,
)
from db.tables import Cursor

FIX = ("INSERT INTO fixes (id, device_id, t, lat, lon, speed, bearing, accuracy, battery, "
       "flags) VALUES (:id, :d, :t, 37.5, 127.0, 0, 0, 5, 80, 0)")


def _tables(engine: Engine, schema: str) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"))}


def _fixes(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            text("SELECT id, device_id FROM fixes ORDER BY id"))]


def _downgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, revision)


def test_fixes_and_cursors_move_to_their_file_and_back(data_dir: Path) -> None:
    url = sqlite_url(data_dir)
    upgrade(url, "0008")
    engine = make_engine(url)
    with engine.begin() as conn:
        for i in (1, 5, 9):  # ids with gaps, as retention leaves them
            conn.execute(text(FIX), {"id": i, "d": f"dev-{i}", "t": 1e9 + i})
        cursors.save(conn, "recorder", "epoch-a", 42)
    assert {"fixes", "cursors"} <= _tables(engine, "main")
    engine.dispose()

    upgrade(url)
    engine = make_engine(url)
    assert not {"fixes", "cursors"} & _tables(engine, "main")
    assert {"fixes", "cursors"} <= _tables(engine, FIXES_SCHEMA)
    assert _fixes(engine) == [(1, "dev-1"), (5, "dev-5"), (9, "dev-9")]
    with engine.connect() as conn:
        assert cursors.load(conn, "recorder") == ("epoch-a", 42)
        plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT * FROM fixes "
                                 "WHERE device_id = 'dev-5' AND t > 0")).all()
    assert "ix_fixes_device_t" in str(plan)  # the index came along
    with engine.begin() as conn:  # new ids go on after the moved ones
        conn.execute(text(FIX.replace(":id, ", "NULL, ")), {"d": "dev-new", "t": 2e9})
    assert _fixes(engine)[-1] == (10, "dev-new")
    engine.dispose()

    _downgrade(url, "0008")
    engine = make_engine(url)
    assert {"fixes", "cursors"} <= _tables(engine, "main")
    assert not {"fixes", "cursors"} & _tables(engine, FIXES_SCHEMA)
    assert [d for _, d in _fixes(engine)] == ["dev-1", "dev-5", "dev-9", "dev-new"]
    engine.dispose()


def test_an_upgrade_stopped_after_the_copy_copies_again(data_dir: Path) -> None:
    """0009 commits its copy before it drops the old tables: stopped in
    between, the main file still has every fix and the revision has not
    moved, so the next upgrade copies over the half-made fixes file."""
    url = sqlite_url(data_dir)
    upgrade(url, "0008")
    engine = make_engine(url)
    with engine.begin() as conn:
        for i in (1, 2, 3):
            conn.execute(text(FIX), {"id": i, "d": f"dev-{i}", "t": 1e9 + i})
        # what a stopped upgrade leaves: its copy, and (worse) a row since
        conn.execute(text(f"CREATE TABLE {FIXES_SCHEMA}.fixes AS SELECT * FROM main.fixes"))
        conn.execute(text(f"DELETE FROM {FIXES_SCHEMA}.fixes WHERE id = 3"))
    engine.dispose()

    upgrade(url)
    engine = make_engine(url)
    assert not {"fixes", "cursors"} & _tables(engine, "main")
    assert _fixes(engine) == [(1, "dev-1"), (2, "dev-2"), (3, "dev-3")]
    engine.dispose()


def test_a_fixes_file_left_by_a_deleted_store_is_replaced(data_dir: Path) -> None:
    url = sqlite_url(data_dir)
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(FIX), {"id": 1, "d": "someone-elses", "t": 1e9})
    engine.dispose()
    main = Path(url.removeprefix("sqlite:///"))
    for leftover in main.parent.glob(main.name + "*"):
        leftover.unlink()  # the store goes; its fixes file stays behind
    assert fixes_file(url) is not None and fixes_file(url).exists()

    upgrade(url)
    engine = make_engine(url)
    assert _fixes(engine) == []
    engine.dispose()


def test_a_fix_write_does_not_hold_the_lock_an_alert_needs(data_dir: Path) -> None:
    """Another process writes fixes and holds the fixes file's lock (as the
    recorder does): the engine's no-wait session stores in the main file at
    once; a lock on the main file still makes it wait (``is_busy``)."""
    url = sqlite_url(data_dir)
    upgrade(url)
    fixes = fixes_file(url)
    assert fixes is not None
    recorder = sqlite3.connect(fixes, isolation_level=None)
    sessions = no_wait_sessions(url, session_factory(make_engine(url)))
    try:
        recorder.execute("BEGIN IMMEDIATE")
        recorder.execute("INSERT INTO fixes (device_id, t, speed, bearing, battery, flags) "
                         "VALUES ('d', 1, 0, 0, 80, 0)")
        with sessions() as s:
            s.execute(text("INSERT INTO events (topic, origin, seq, ts, body) "
                           "VALUES ('alert.opened', 'engine', 1, 1.0, x'00')"))
            s.commit()  # not busy: the fixes file's lock is not the main file's
        recorder.execute("COMMIT")
        main = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        main.execute("BEGIN IMMEDIATE")
        try:
            with sessions() as s:
                s.add(Cursor(name="x", epoch="e", seq=1, updated_at=1.0))  # the fixes file
                s.commit()
                with pytest.raises(OperationalError) as busy:
                    s.execute(text("INSERT INTO events (topic, origin, seq, ts, body) "
                                   "VALUES ('alert.opened', 'engine', 2, 2.0, x'00')"))
                assert is_busy(busy.value)
        finally:
            main.execute("ROLLBACK")
            main.close()
    finally:
        recorder.close()
