"""The store on SQLite and PostgreSQL: migrations, seed, alerts, fixes."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, inspect, select, text

from db import repositories as repo
from db.seed import seed_demo, split_children
from db.store import make_engine, open_store, upgrade
from db.tables import Alert, AlertAction, Event, Fix


def test_migration_creates_every_table_and_is_idempotent(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)
    engine = make_engine(store_url)
    names = set(inspect(engine).get_table_names())
    assert {"zones", "children", "devices", "fixes", "alerts", "alert_actions", "events",
            "alembic_version"} <= names
    if store_url.startswith("sqlite"):
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_demo_seed_is_deterministic_and_runs_once(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        assert seed_demo(s) == 2600
        assert seed_demo(s) == 0
        roster = repo.roster(s)
        zones = repo.zones(s)
    assert [z.name for z in zones] == ["Seoul Forest Park", "Sindorim Elementary",
                                       "Sinhak Elementary"]
    per_zone = {z.id: 0 for z in zones}
    for r in roster:
        per_zone[r.zone_id] += 1  # type: ignore[index]
    assert list(per_zone.values()) == [1800, 400, 400]
    assert len({r.token for r in roster}) == 2600
    assert roster[0].token.startswith("C-")
    engine.dispose()


def test_split_children_keeps_the_pilot_proportions() -> None:
    from db.seed import demo_zones

    assert split_children(26, demo_zones()) == [18, 4, 4]
    assert sum(split_children(1001, demo_zones())) == 1001
    with pytest.raises(ValueError):
        split_children(-1, demo_zones())


def test_alert_open_and_acknowledge_history(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 10)
        child = repo.roster(s)[0]
        alert = repo.open_alert(s, kind="sos", priority=1, child_id=child.child_id,
                                device_id=child.device_id, lat=37.5, lon=127.0,
                                place="성동구 성수동1가", zone="Seoul Forest Park",
                                position_is_last_known=False, opened_at=100.0)
        s.commit()
        alert_id = alert.id
    with sessions() as s:
        acked = repo.acknowledge(s, alert_id, "operator1", at=105.0)
        s.commit()
        assert (acked.state, acked.acked_by, acked.acked_at) == ("acknowledged", "operator1",
                                                                 105.0)
    with sessions() as s:
        with pytest.raises(repo.CommandRejected, match="not open"):
            repo.acknowledge(s, alert_id, "operator2")
        with pytest.raises(repo.CommandRejected, match="no alert"):
            repo.acknowledge(s, 999, "operator2")
        assert repo.alert_history(s, alert_id) == [("open", "engine"), ("ack", "operator1")]
        assert s.scalar(select(func.count()).select_from(AlertAction)) == 2
        assert [a.id for a in repo.unresolved_alerts(s)] == [alert_id]
    engine.dispose()


def test_fix_batches_and_retention(store_url: str) -> None:
    engine, _ = open_store(store_url)
    n = 1000
    cols = {
        "t": np.arange(n, dtype=float) * 10, "lat": np.full(n, 37.5), "lon": np.full(n, 127.0),
        "speed": np.zeros(n, np.float32), "bearing": np.zeros(n, np.float32),
        "accuracy": np.full(n, 5, np.float32), "battery": np.full(n, 90, np.int8),
        "flags": np.zeros(n, np.uint8),
    }
    with engine.begin() as conn:
        assert repo.insert_fixes(conn, [f"d{i % 7}" for i in range(n)], cols) == n
        repo.append_events(conn, [("alert.opened", "engine", 1, 1.0, b"\x80")])
    with engine.begin() as conn:
        assert repo.expire_fixes(conn, cutoff=5000.0) == 500
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Fix)) == 500
        assert conn.scalar(select(func.min(Fix.t))) == 5000.0
        assert conn.scalar(select(Event.body)) == b"\x80"
    engine.dispose()


def _fix_cols(n: int) -> dict[str, np.ndarray]:
    return {
        "t": np.arange(n, dtype=float) + 1.79e9, "lat": np.full(n, 37.5),
        "lon": np.full(n, 127.0), "speed": np.zeros(n, np.float32),
        "bearing": np.zeros(n, np.float32), "accuracy": np.full(n, 40, np.float32),
        "battery": np.full(n, -1, np.int8), "flags": np.zeros(n, np.uint8),
    }


def test_fixes_keep_the_tag_reader_that_saw_them(store_url: str) -> None:
    """Through the driver path of each store (SQLite's executemany, PostgreSQL's
    COPY): a tag batch names its readers, other batches leave reader_id NULL."""
    engine, _ = open_store(store_url)
    assert "reader_id" in {c["name"] for c in inspect(engine).get_columns("fixes")}
    with engine.begin() as conn:
        assert repo.insert_fixes(conn, ["E1", "E2", "E1"], _fix_cols(3),
                                 ["R001-1", "", "R001-2"]) == 3
        assert repo.insert_fixes(conn, ["861"], _fix_cols(1)) == 1
        assert repo.insert_fixes(conn, ["862"], _fix_cols(1), []) == 1
    with engine.connect() as conn:
        rows = conn.execute(select(Fix.device_id, Fix.reader_id).order_by(Fix.id)).all()
    assert [tuple(r) for r in rows] == [("E1", "R001-1"), ("E2", None), ("E1", "R001-2"),
                                        ("861", None), ("862", None)]
    with engine.begin() as conn, pytest.raises(ValueError):
        repo.insert_fixes(conn, ["E1", "E2"], _fix_cols(2), ["R001-1"])  # zip(strict=True)
    engine.dispose()


def test_an_alert_keeps_the_breadcrumb_it_opened_with(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 3)
        child = repo.roster(s)[0]
        plain = repo.open_alert(s, kind="sos", priority=1, child_id=child.child_id,
                                device_id=child.device_id, lat=None, lon=None, place="위치 미상",
                                zone="", position_is_last_known=True, opened_at=1.0)
        tagged = repo.open_alert(s, kind="sos", priority=1, child_id=child.child_id,
                                 device_id=child.device_id, lat=37.5, lon=127.0, place="p",
                                 zone="", position_is_last_known=True, opened_at=2.0,
                                 last_reader="R001-1", last_reader_at=1.5,
                                 position_from_reader=True)
        s.commit()
        ids = plain.id, tagged.id
    with sessions() as s:
        a, b = (s.get(Alert, i) for i in ids)
        assert a is not None and b is not None
        assert (a.last_reader, a.last_reader_at, a.position_from_reader) == (None, None, False)
        assert (b.last_reader, b.last_reader_at, b.position_from_reader) == ("R001-1", 1.5, True)
    engine.dispose()
