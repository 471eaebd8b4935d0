"""Migration 0008 on SQLite and PostgreSQL: from an empty store, and from a
store that already has fixes (at 0007), whose every fix (id included)
survives it and its downgrade; latest_positions starts out as
``insert_fixes`` would have kept it."""

from __future__ import annotations

import math
import time

import numpy as np
from sqlalchemy import Engine, func, inspect, select, text

from db import partitions
from db import repositories as repo
from db.store import make_engine, upgrade
from db.tables import Fix, LatestPosition

DAY = 86400.0
NOW = time.time()
Row = tuple[int, str, float, float | None]


def _rows(engine: Engine) -> list[Row]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(  # type: ignore[misc]
            text("SELECT id, device_id, t, lat FROM fixes")))


def _one_more(engine: Engine, t: float) -> None:
    with engine.begin() as conn:
        repo.insert_fixes(conn, ["d-new"], {
            "t": np.array([t]), "lat": np.array([37.0]), "lon": np.array([127.0]),
            "speed": np.zeros(1), "bearing": np.zeros(1), "accuracy": np.ones(1),
            "battery": np.ones(1, np.int8), "flags": np.zeros(1, np.uint8)})


def test_an_empty_store_is_partitioned_on_postgresql_only(store_url: str) -> None:
    upgrade(store_url)
    engine = make_engine(store_url)
    try:
        # PostgreSQL only (db.latest says why)
        assert ("latest_positions" in inspect(engine).get_table_names()) == (
            engine.dialect.name == "postgresql")
        with engine.connect() as conn:
            days = partitions.days(conn)
            if engine.dialect.name == "postgresql":
                assert partitions.partitioned(conn)
                key = inspect(conn).get_pk_constraint("fixes")["constrained_columns"]
                assert key == ["id", "t"]
                today = math.floor(NOW / DAY)
                assert [d.lo for d in days] == [(today + k) * DAY for k in range(3)]
                assert conn.scalar(text("SELECT to_regclass('fixes_default')")) is not None
            else:
                assert days == [] and not partitions.partitioned(conn)
    finally:
        engine.dispose()


def test_an_upgrade_from_0007_keeps_every_fix_and_on_postgresql_fills_latest_positions(
        store_url: str) -> None:
    upgrade(store_url, "0007")
    engine = make_engine(store_url)
    rng = np.random.default_rng(7)
    t = np.concatenate([NOW - rng.random(3000) * 3 * DAY,  # the last three days
                        [1e6, NOW + 30 * DAY, NOW - 500 * DAY]])  # clocks far off
    lat = np.where(np.arange(len(t)) % 10 == 0, math.nan, 37.5 + rng.random(len(t)) * 0.1)
    with engine.begin() as conn:  # as 0007 stored fixes: a plain executemany
        conn.execute(text(
            "INSERT INTO fixes (device_id, t, lat, lon, speed, bearing, accuracy, battery, "
            "flags, reader_id) VALUES (:device_id, :t, :lat, :lon, 0, 0, 5, 80, 0, NULL)"),
            [dict(device_id=f"d{i % 50}", t=float(tt), lat=None if math.isnan(la) else float(la),
                  lon=None if math.isnan(la) else 127.0)
             for i, (tt, la) in enumerate(zip(t, lat, strict=True))])
    before = _rows(engine)
    engine.dispose()

    upgrade(store_url)
    engine = make_engine(store_url)
    try:
        assert _rows(engine) == before
        pg = engine.dialect.name == "postgresql"
        expected: dict[str, tuple[float, float]] = {}
        for _, d, tt, la in before:
            if la is not None and (d not in expected or tt > expected[d][0]):
                expected[d] = (tt, la)
        if pg:
            with engine.connect() as conn:
                got = {d: (tt, la) for d, tt, la in conn.execute(
                    select(LatestPosition.device_id, LatestPosition.t, LatestPosition.lat))}
                assert len(partitions.days(conn)) >= 4  # a day for each of the last three
                assert conn.scalar(text("SELECT count(*) FROM fixes_default")) == 3
            assert got == expected
        _one_more(engine, NOW + 1)  # the recorder goes on from there, ids after the old
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Fix)) == len(before) + 1
            assert conn.scalar(select(func.max(Fix.id))) > max(r[0] for r in before)
            if pg:
                assert conn.scalar(select(LatestPosition.t).where(
                    LatestPosition.device_id == "d-new")) == NOW + 1
        after = _rows(engine)
    finally:
        engine.dispose()

    _downgrade(store_url)
    engine = make_engine(store_url)
    try:
        assert _rows(engine) == after
        assert "latest_positions" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert not partitions.partitioned(conn)
    finally:
        engine.dispose()
    upgrade(store_url)  # and up again, for the fixture's clean-up to find head


def _downgrade(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from db.store import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.downgrade(cfg, "0007")
