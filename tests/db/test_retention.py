"""The retention schedule on SQLite and PostgreSQL, with the clock moved:
what goes, what stays with its case, and that a repeat removes nothing."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db import repositories as repo
from db import usage_log
from db.holdings import WHOLE
from db.retention import purge, withdrawn_spans
from db.store import open_store
from db.tables import (
    AccessRecord,
    Alert,
    Camera,
    Child,
    Consent,
    Device,
    Event,
    Evidence,
    Fix,
    UsageRecord,
)
from models.retention import PurgeReport, RetentionPolicy
from models.usage import UsageFilter
from tests.db.fixes import store_fixes

DAY = 86400.0
HOUR = 3600.0
NOW = 1_790_000_000.0
POLICY = dict(fix_s=7 * DAY, usage_s=183 * DAY, access_s=730 * DAY, case_hold_s=90 * DAY)

# device -> the ranges its cases keep (the test's own statement of the rules)
WINDOWS: dict[str, list[tuple[float, float]]] = {
    "d-open": [(NOW - 10 * DAY - 1800, math.inf)],  # open for 10 days
    "d-held": [(NOW - 12 * DAY - 1800, NOW - 10 * DAY)],  # resolved 10 days ago
    "d-held-phone": [(NOW - 12 * DAY - 1800, NOW - 10 * DAY)],  # the same child's phone
    "d-gone-case": [],  # resolved 100 days ago: past the 90-day hold
    "d-withdrawn": [(NOW - 2 * DAY - 1800, math.inf)],  # withdrawn, but a case is open
}
WITHDRAWN = {"d-withdrawn", "d-withdrawn-2"}


@pytest.fixture
def store(store_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine, sessions = open_store(store_url)
    yield engine, sessions
    engine.dispose()


def _hourly(days: float, until: float = NOW) -> np.ndarray:
    """One fix an hour for ``days`` up to ``until``, oldest first."""
    return until - np.arange(int(days * 24), -1, -1) * HOUR


def _alert(s: Session, child_id: int, device_id: str, opened: float,
           resolved: float | None) -> Alert:
    alert = Alert(kind="sos", priority=1, state="new" if resolved is None else "resolved",
                  child_id=child_id, device_id=device_id, lat=37.5, lon=127.0, place="",
                  opened_at=opened, resolved_at=resolved or 0.0,
                  updated_at=resolved or opened)
    s.add(alert)
    s.flush()
    return alert


def _scene(engine: Engine, sessions: sessionmaker[Session], evidence_dir: Path,
           outside: Path) -> None:
    """Seven children: routine, open case, held case (its child has a phone
    too), case past its hold, withdrawn with an open case, withdrawn (two
    devices), consent renewed."""
    with sessions() as s:
        kids = [Child(token=f"C-{i:07d}", name=f"child {i}") for i in range(7)]
        s.add_all(kids)
        s.flush()
        devices = ["d-routine", "d-open", "d-held", "d-gone-case", "d-withdrawn",
                   "d-withdrawn-2", "d-renewed"]
        for kid, device_id in zip(kids, devices, strict=True):
            s.add(Device(id=device_id, kind="watch", child_id=kid.id,
                         registered_at=NOW - 400 * DAY))
        s.add(Device(id="d-withdrawn-2b", kind="phone", child_id=kids[5].id, registered_at=0.0))
        s.add(Device(id="d-held-phone", kind="phone", child_id=kids[2].id, registered_at=0.0))
        _alert(s, kids[1].id, "d-open", NOW - 10 * DAY, None)
        held = _alert(s, kids[2].id, "d-held", NOW - 12 * DAY, NOW - 10 * DAY)
        gone = _alert(s, kids[3].id, "d-gone-case", NOW - 101 * DAY, NOW - 100 * DAY)
        _alert(s, kids[4].id, "d-withdrawn", NOW - 2 * DAY, None)
        for kid, withdrawn in ((kids[4], [NOW - DAY]), (kids[5], [NOW - DAY, NOW - 3 * DAY]),
                               (kids[6], [NOW - 50 * DAY, None])):
            for w in withdrawn:
                s.add(Consent(child_id=kid.id, services="location", age_band="under14",
                              given_at=NOW - 300 * DAY, withdrawn_at=w))
        camera = Camera(name="gate", lat=37.5, lon=127.0)
        s.add(camera)
        s.flush()
        kept_file = evidence_dir / f"alert-{held.id}" / "cam1-a.ts"
        gone_files = [evidence_dir / f"alert-{gone.id}" / "cam1-a.ts",
                      evidence_dir / f"alert-{gone.id}" / "cam1-b.ts"]
        for f in (kept_file, *gone_files, outside):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"\x47" * 188)
        for alert, path in ((held, kept_file), (gone, gone_files[0]), (gone, gone_files[1]),
                            (gone, evidence_dir / "alert-x" / "never-saved.ts"),
                            (gone, outside)):
            s.add(Evidence(alert_id=alert.id, camera_id=camera.id, kind="clip", path=str(path),
                           created_at=alert.opened_at, t_start=alert.opened_at,
                           t_end=alert.opened_at + 60, actor="operator1"))
        for days, who in ((731, "old"), (729, "recent")):
            s.add(AccessRecord(at=NOW - days * DAY, user=who, action="sign_in", ok=True))
        for at in (NOW - 190 * DAY, NOW - 10 * DAY):
            usage_log.append(s, at=at, actor="operator1", subject="C-0000001",
                             action="trail", alert_id=None)
        s.commit()
    repo_events = [("notice.x", "engine", i, NOW - d * DAY, b"\x80")
                   for i, d in enumerate((200, 184, 182, 0))]
    with engine.begin() as conn:
        repo.append_events(conn, repo_events)
    # chronological, as the recorder stores them: the oldest first
    store_fixes(engine, "d-gone-case", _hourly(3, NOW - 99 * DAY))
    for device_id in ("d-routine", "d-open", "d-held", "d-held-phone", "d-withdrawn-2b",
                      "d-renewed"):
        store_fixes(engine, device_id, _hourly(20))
    for device_id in ("d-withdrawn", "d-withdrawn-2"):
        store_fixes(engine, device_id, _hourly(5))


def _expected_kept(device_id: str, t: float) -> bool:
    if any(a <= t <= b for a, b in WINDOWS.get(device_id, [])):
        return True
    if device_id in WITHDRAWN or device_id == "d-withdrawn-2b":
        return False
    return t >= NOW - 7 * DAY


def _fixes_by_device(sessions: sessionmaker[Session]) -> list[tuple[str, float]]:
    with sessions() as s:
        return [(d, t) for d, t in s.execute(select(Fix.device_id, Fix.t)
                                             .order_by(Fix.device_id, Fix.t))]


@pytest.mark.parametrize("chunk", [50, 20_000])
def test_a_purge_with_a_moved_clock(store: tuple[Engine, sessionmaker[Session]],
                                    data_dir: Path, chunk: int) -> None:
    engine, sessions = store
    evidence_dir = data_dir / "evidence"
    outside = data_dir / "elsewhere" / "precious.db"
    _scene(engine, sessions, evidence_dir, outside)
    before = _fixes_by_device(sessions)
    policy = RetentionPolicy(**POLICY, evidence_dir=evidence_dir)  # type: ignore[arg-type]

    with sessions() as s:
        report = purge(s, NOW, policy, chunk=chunk)

    after = _fixes_by_device(sessions)
    expected = [(d, t) for d, t in before if _expected_kept(d, t)]
    assert after == expected
    kept = {d for d, _ in after}
    assert kept == {"d-routine", "d-open", "d-held", "d-held-phone", "d-withdrawn", "d-renewed"}
    assert min(t for d, t in after if d == "d-routine") == NOW - 7 * DAY
    assert min(t for d, t in after if d == "d-open") == NOW - 10 * DAY  # window starts 10d+30m
    assert next(t for d, t in after if d == "d-withdrawn") == NOW - 2 * DAY
    assert report == PurgeReport(fixes=len(before) - len(after), events=2, access=1, usage=1,
                                 evidence=4, evidence_files=2, files_left=1)

    with sessions() as s:
        assert sorted(s.scalars(select(Event.ts))) == [NOW - 182 * DAY, NOW]
        assert s.scalars(select(AccessRecord.user)).all() == ["recent"]
        evidence = s.scalars(select(Evidence.path)).all()
        records = usage_log.query(s, UsageFilter())
        assert usage_log.verify(s).ok
    assert len(evidence) == 1 and Path(evidence[0]).is_file()
    assert outside.is_file()  # a path in the store is not a licence to delete anything
    assert sorted(p.name for p in evidence_dir.iterdir()) == [Path(evidence[0]).parent.name]
    purge_records = [r for r in records if r.action == "purge"]
    assert len(purge_records) == 1 and records[0] is purge_records[0]
    assert (records[0].actor, records[0].subject, records[0].at) == ("retention", "", NOW)
    assert records[0].detail == report.detail()
    assert records[0].detail.startswith(f"fixes {report.fixes}, events 2, access 1, usage 1, "
                                        "evidence 4 (2 files)")

    with sessions() as s:  # the repeat: nothing left to remove, nothing written
        assert purge(s, NOW, policy, chunk=chunk) == PurgeReport()
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 2
    assert _fixes_by_device(sessions) == after


def test_a_held_case_lets_its_data_go_once_the_hold_is_over(
        store: tuple[Engine, sessionmaker[Session]], data_dir: Path) -> None:
    engine, sessions = store
    _scene(engine, sessions, data_dir / "evidence", data_dir / "x" / "y.ts")
    policy = RetentionPolicy(**POLICY, evidence_dir=data_dir / "evidence")  # type: ignore[arg-type]
    with sessions() as s:
        purge(s, NOW, policy)
    later = NOW + 81 * DAY  # d-held's case closed 91 days before this
    with sessions() as s:
        report = purge(s, later, policy)
    after = {d for d, _ in _fixes_by_device(sessions)}
    assert after == {"d-open", "d-withdrawn"}  # only the open cases' windows remain
    assert report.evidence == 1 and report.evidence_files == 1
    assert not (data_dir / "evidence").exists() or not any((data_dir / "evidence").iterdir())


def test_withdrawal_means_every_consent_withdrawn(
        store: tuple[Engine, sessionmaker[Session]], data_dir: Path) -> None:
    engine, sessions = store
    _scene(engine, sessions, data_dir / "evidence", data_dir / "x" / "y.ts")
    with sessions() as s:
        assert withdrawn_spans(s) == {d: [WHOLE] for d in ("d-withdrawn", "d-withdrawn-2",
                                                           "d-withdrawn-2b")}


def test_fixes_stored_out_of_time_order_go_too(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    """The id sweep stops at the first range with nothing old; what lies
    beyond it (a device whose clock was wrong, a history imported device by
    device, a device no longer registered) is found device by device."""
    engine, sessions = store
    store_fixes(engine, "d-1", _hourly(2))  # 49 fresh fixes
    store_fixes(engine, "d-1", np.array([NOW - 30 * DAY]))
    store_fixes(engine, "d-unregistered", _hourly(10))
    policy = RetentionPolicy(**POLICY)  # type: ignore[arg-type]
    with sessions() as s:
        assert purge(s, NOW, policy, chunk=10).fixes == 1 + 3 * 24
        assert purge(s, NOW, policy, chunk=10).fixes == 0
    assert min(t for _, t in _fixes_by_device(sessions)) == NOW - 7 * DAY


def test_nothing_to_purge_writes_nothing(store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    with sessions() as s:
        assert purge(s, NOW, RetentionPolicy(**POLICY)) == PurgeReport()  # type: ignore[arg-type]
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 0


def test_a_tampered_usage_log_is_not_purged_but_the_rest_is(
        store: tuple[Engine, sessionmaker[Session]], data_dir: Path) -> None:
    engine, sessions = store
    _scene(engine, sessions, data_dir / "evidence", data_dir / "x" / "y.ts")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE usage_log SET actor = 'someone' WHERE seq = 1")
    with sessions() as s:
        report = purge(s, NOW, RetentionPolicy(**POLICY))  # type: ignore[arg-type]
        assert report.usage == 0 and report.events == 2
        assert report.usage_error.startswith("usage log not purged: record 1 was edited")
        last = usage_log.query(s, UsageFilter(limit=1))[0]
        assert last.action == "purge" and "usage log not purged" in last.detail
        assert usage_log.verify(s).first_broken == 1  # still there for the auditor


def test_a_path_that_escapes_the_evidence_folder_is_left(tmp_path: Path) -> None:
    from db.retention import _remove_file

    folder = tmp_path / "evidence"
    (folder / "alert-1").mkdir(parents=True)
    target = tmp_path / "secret.txt"
    target.write_text("keep me")
    link = folder / "alert-1" / "link.ts"
    os.symlink(target, link)
    assert _remove_file(str(folder / "alert-1" / ".." / ".." / "secret.txt"), folder) == "outside"
    assert _remove_file(str(link), folder) == "outside"
    assert _remove_file(str(folder), folder) == "outside"
    assert _remove_file("", folder) == "outside"
    assert _remove_file(str(target), None) == "outside"
    assert target.read_text() == "keep me"
    (folder / "alert-1" / "a.ts").write_bytes(b"x")
    assert _remove_file("alert-1/a.ts", folder) == "removed"  # relative to the folder
    assert _remove_file("alert-1/a.ts", folder) == "missing"


def test_a_withdrawn_childs_closed_case_is_not_held_and_another_childs_device_is_spared(
        store_url: str) -> None:
    """After a withdrawal only an open case keeps data (§24): a case closed
    yesterday is not held for its 90 days. A device the withdrawn child's
    alert named, now registered to another child, keeps that child's fixes."""
    from sqlalchemy import func, select

    from db import consent
    from db.store import open_store
    from db.tables import Alert, Child, Device, Fix
    from models.retention import RetentionPolicy

    now = 1_800_000_000.0
    day = 86400.0
    engine, sessions = open_store(store_url)
    try:
        with sessions() as s:
            a = Child(token="C-WITHDRAWN", name="a")
            b = Child(token="C-OTHER", name="b")
            s.add_all([a, b])
            s.flush()
            s.add_all([Device(id="W-A", kind="watch", child_id=a.id, registered_at=now - 30 * day),
                       Device(id="W-PASSED", kind="watch", child_id=b.id,
                              registered_at=now - 2 * day)])
            g = consent.add_guardian(s, "guardian a", "010-1111-2222", "", now - 30 * day)
            consent.link(s, "C-WITHDRAWN", g.id, "mother")
            consent.give(s, "C-WITHDRAWN", g.id, ["emergency"], "under14", "test", now - 30 * day)
            # a case resolved yesterday, on the child's own watch and on one since passed on
            for i, device in enumerate(("W-A", "W-PASSED")):
                s.add(Alert(id=100 + i, kind="sos", priority=1, state="resolved", child_id=a.id,
                            device_id=device, lat=37.5, lon=127.0, place="",
                            opened_at=now - 2 * day,
                            resolved_at=now - day))
            for device in ("W-A", "W-PASSED"):
                for k in range(5):
                    s.add(Fix(device_id=device, t=now - 2 * day + k * 60, lat=37.5, lon=127.0,
                              speed=0, bearing=0, accuracy=5, battery=80, flags=0))
            s.commit()
            consent.withdraw(s, "C-WITHDRAWN", "test", now - 2 * day + 600)
            s.commit()
            # fixes that arrived after the withdrawal, inside the (closed) case window
            s.add(Fix(device_id="W-A", t=now - 2 * day + 700, lat=37.5, lon=127.0, speed=0,
                      bearing=0, accuracy=5, battery=80, flags=0))
            s.commit()
        policy = RetentionPolicy(fix_s=7 * day, usage_s=183 * day, access_s=730 * day,
                                 case_hold_s=90 * day)
        with sessions() as s:
            from db.retention import purge

            purge(s, now, policy)
            left = dict(s.execute(select(Fix.device_id, func.count())
                                  .group_by(Fix.device_id)).tuples().all())
        assert "W-A" not in left  # the closed case holds nothing of a withdrawn child
        assert left.get("W-PASSED") == 5  # now another child's device: untouched
    finally:
        engine.dispose()
