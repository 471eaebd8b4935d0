"""The store on SQLite and PostgreSQL: migrations, seed, alerts, fixes."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from sqlalchemy import func, inspect, select, text

from db import alerts as db_alerts
from db import repositories as repo
from db.repositories import RosterEntry
from db.retention import purge
from db.seed import seed_demo, split_children
from db.store import FIXES_SCHEMA, fixes_file, make_engine, open_store, upgrade
from db.tables import Alert, AlertAction, Event, Fix
from models.messages import AlertView, HistoryEntry
from models.retention import RetentionPolicy


def test_migration_creates_every_table_and_is_idempotent(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)
    engine = make_engine(store_url)
    names = set(inspect(engine).get_table_names())
    if store_url.startswith("sqlite"):  # the fixes and their cursors: a file of their own
        fixdb = set(inspect(engine).get_table_names(schema=FIXES_SCHEMA))
        assert fixdb == {"fixes", "cursors"} and not fixdb & names
        names |= fixdb
        assert fixes_file(store_url) is not None and fixes_file(store_url).exists()
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text(f"PRAGMA {FIXES_SCHEMA}.journal_mode")).scalar() == "wal"
    assert {"zones", "children", "devices", "fixes", "alerts", "alert_actions", "events",
            "users", "user_sessions", "access_log", "alembic_version", "cursors"} <= names
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


def _view(child: RosterEntry, **kw: object) -> AlertView:
    fields: dict[str, object] = dict(
        id=0, kind="sos", priority=1, state="new", child_token=child.token, child_slot=0,
        device_id=child.device_id, lat=37.5, lon=127.0, place="성동구 성수동1가",
        zone="Seoul Forest Park", opened_at=100.0, ack_due=130.0, close_due=700.0)
    fields.update(kw)
    return AlertView(**fields)  # type: ignore[arg-type]


def test_an_alert_and_its_history_round_trip(store_url: str) -> None:
    """What the engine writes (the whole view and a history line per change)
    is what it reads back after a restart, on SQLite and PostgreSQL."""
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 10)
        child = repo.roster(s)[0]
        alert_id = db_alerts.insert(s, _view(child), child.child_id,
                                    HistoryEntry("open", "engine", 100.0, detail="sos",
                                                lat=37.5, lon=127.0))
        s.commit()
    worked = _view(child, id=alert_id, state="on_hold", owner="operator1", version=3,
                   count=2, hold_reason="guardian calling", hold_until=900.0,
                   steps=["cctv", "call_device"], last_note="n" * 2000, acked_by="operator1",
                   acked_at=105.0, lat=float("nan"), lon=float("nan"), battery=12,
                   battery_trend=-3.5, breaches=1)
    with sessions() as s:
        db_alerts.save(s, worked, HistoryEntry("hold", "operator1", 110.0, note="why",
                                              detail="guardian calling"))
        s.commit()
    with sessions() as s:
        (row,) = db_alerts.unresolved(s)
        back = db_alerts.view_of(row, 0, child.token)
        assert back.steps == ["cctv", "call_device"] and back.last_note == "n" * 2000
        assert math.isnan(back.lat) and row.lat is None
        assert msgspec.structs.replace(back, lat=0.0, lon=0.0) == msgspec.structs.replace(
            worked, lat=0.0, lon=0.0)
        history = db_alerts.history(s, alert_id)
        assert [(h.action, h.actor, h.note) for h in history] == [
            ("open", "engine", ""), ("hold", "operator1", "why")]
        assert history[0].lat == 37.5 and history[1].lat is None
        assert s.scalar(select(func.count()).select_from(AlertAction)) == 2
        with pytest.raises(LookupError):
            db_alerts.save(s, _view(child, id=999), HistoryEntry("ack", "x", 1.0))
    resolved = msgspec.structs.replace(worked, state="resolved", outcome="child_safe")
    with sessions() as s:
        db_alerts.save(s, resolved, HistoryEntry("resolve", "operator1", 120.0, note="home"))
        s.commit()
        assert db_alerts.unresolved(s) == []
        assert [a.id for a, _ in db_alerts.since(s, 0.0, 10)] == [alert_id]
    engine.dispose()


def test_fix_batches_and_retention(store_url: str) -> None:
    engine, sessions = open_store(store_url)
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
    policy = RetentionPolicy(fix_s=7 * 86400.0, usage_s=183 * 86400.0,
                             access_s=730 * 86400.0, case_hold_s=90 * 86400.0)
    with sessions() as s:  # the clock at 7 days after t=5000: older fixes go
        assert purge(s, 5000.0 + policy.fix_s, policy).fixes == 500
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
    schema = FIXES_SCHEMA if store_url.startswith("sqlite") else None
    assert "reader_id" in {c["name"] for c in inspect(engine).get_columns("fixes", schema)}
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
        line = HistoryEntry("open", "engine", 1.0)
        plain = db_alerts.insert(s, _view(child, lat=float("nan"), lon=float("nan"),
                                          position_is_last_known=True), child.child_id, line)
        tagged = db_alerts.insert(s, _view(child, last_reader="R001-1", last_reader_at=1.5,
                                           position_from_reader=True), child.child_id, line)
        s.commit()
    with sessions() as s:
        a, b = (s.get(Alert, i) for i in (plain, tagged))
        assert a is not None and b is not None
        assert (a.last_reader, a.last_reader_at, a.position_from_reader) == (None, None, False)
        assert (b.last_reader, b.last_reader_at, b.position_from_reader) == ("R001-1", 1.5, True)
    engine.dispose()


def test_every_seeded_child_has_a_guardian_and_consent_in_force(store_url: str) -> None:
    """The demo locates its children, so each must have a guardian's consent
    to every service (an elementary pupil: under 14); seeding again adds
    nothing, and guardians added later get fresh ids (PostgreSQL's sequence
    is kept ahead of the seeded ones)."""
    from db import consent as db_consent
    from db.tables import Child, Consent, Guardian, Guardianship
    from models.consent import SERVICES

    engine, sessions = open_store(store_url)
    with sessions() as s:
        assert seed_demo(s, 300) == 300
        assert seed_demo(s, 300) == 0
        assert db_consent.children_without_consent(s) == []
        book = db_consent.book(s)
        children = list(s.scalars(select(Child)))
        assert len(book) == len(children) == 300
        assert all(book.allows(c.id, svc) for c in children for svc in SERVICES)
        consents = list(s.scalars(select(Consent)))
        assert len(consents) == 300
        assert {(c.age_band, c.recorded_by, c.services, c.withdrawn_at) for c in consents} == {
            ("under14", "seed", "routine,location,emergency", None)}
        links = {g.child_id: g.guardian_id for g in s.scalars(select(Guardianship))}
        assert all(links[c.child_id] == c.guardian_id for c in consents)
        names = {c.id: c.name for c in children}
        guardians = {g.id: g for g in s.scalars(select(Guardian))}
        assert len(guardians) == 300
        for child_id, guardian_id in links.items():
            g = guardians[guardian_id]
            assert g.name == f"{names[child_id]} 보호자"
            assert g.email == "" and g.phone.startswith("010-0")
        assert len({g.phone for g in guardians.values()}) == 300
        later = db_consent.add_guardian(s, "새 보호자", "010-0999-0001", "", 1.0)
        s.commit()
        assert later.id > max(guardians)
    engine.dispose()
