"""Guardians' tokens and their location checks, on SQLite and PostgreSQL:
who is answered about whom, what consent allows, and that every answer is
recorded twice (location_checks and the usage log)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db import guardian_tokens, usage_log
from db import repositories as repo
from db.enrolment import remove_child
from db.location_checks import answer, given_name
from db.registry import remove_device
from db.store import open_store
from db.tables import Child, Device, Guardian, LocationCheck, UsageRecord, Zone

NOW = 1_800_000_000.0
SINDORIM = (37.5085, 126.8875)  # 구로구 신도림동
SINHAK = (37.6655, 127.0420)  # 도봉구 방학동


@dataclass(frozen=True)
class Family:
    mother: int  # guardian of C-AAAA001 (location consent) and C-AAAA002 (routine only)
    other: int  # guardian of C-BBBB001 (location consent)


@pytest.fixture
def sessions(store_url: str) -> Iterator[tuple[sessionmaker[Session], Family]]:
    engine, factory = open_store(store_url)
    with factory() as s:
        s.add(Zone(id=1, name="Sindorim Elementary", kind="school", lat=SINDORIM[0],
                   lon=SINDORIM[1], radius_m=300))
        s.flush()
        s.add_all([Child(id=1, token="C-AAAA001", name="홍길동", zone_id=1),
                   Child(id=2, token="C-AAAA002", name="홍길순", zone_id=1),
                   Child(id=3, token="C-BBBB001", name="김철수", zone_id=1)])
        s.flush()
        s.add_all([Device(id="8800000001", kind="watch", child_id=1, registered_at=NOW - 3600),
                   Device(id="E200000000AA", kind="tag", child_id=1, registered_at=NOW - 3600),
                   Device(id="8800000002", kind="watch", child_id=2, registered_at=NOW - 3600),
                   Device(id="8800000003", kind="watch", child_id=3, registered_at=NOW - 3600)])
        mother = db_consent.add_guardian(s, "홍길동 어머니", "010-0000-1111", "", NOW)
        other = db_consent.add_guardian(s, "김철수 아버지", "010-0000-2222", "", NOW)
        for token, g in (("C-AAAA001", mother), ("C-AAAA002", mother), ("C-BBBB001", other)):
            db_consent.link(s, token, g.id, "parent")
        db_consent.give(s, "C-AAAA001", mother.id, "location,emergency", "under14", "t", NOW)
        db_consent.give(s, "C-AAAA002", mother.id, "routine", "under14", "t", NOW)
        db_consent.give(s, "C-BBBB001", other.id, "location", "under14", "t", NOW)
        s.commit()
        family = Family(mother.id, other.id)
    yield factory, family
    engine.dispose()


def _fix(s: Session, device_id: str, t: float, pos: tuple[float, float] | None,
         accuracy: float | None = 12.0) -> None:
    """Stored as the recorder stores fixes (latest positions move with them)."""
    lat, lon = pos if pos is not None else (math.nan, math.nan)
    cols = {"t": np.array([t]), "lat": np.array([lat]), "lon": np.array([lon]),
            "speed": np.zeros(1), "bearing": np.zeros(1),
            "accuracy": np.array([math.nan if accuracy is None else accuracy]),
            "battery": np.array([80]), "flags": np.array([0])}
    repo.insert_fixes(s.connection(), [device_id], cols)


def _guardian(s: Session, guardian_id: int) -> Guardian:
    g = s.get(Guardian, guardian_id)
    assert g is not None
    return g


def test_a_guardian_is_answered_about_their_own_children_only(
        sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        _fix(s, "8800000003", NOW - 5, SINHAK)
        _fix(s, "8800000001", NOW - 30, SINDORIM)
        got = answer(s, _guardian(s, family.mother), NOW)
        s.commit()
        assert [(a.child, a.outcome) for a in got] == [("C-AAAA001", "answered"),
                                                       ("C-AAAA002", "no_consent")]
        theirs = answer(s, _guardian(s, family.other), NOW)
        assert [(a.child, a.place) for a in theirs] == [("C-BBBB001", "도봉구 방학동")]
        # Another's child and no child at all are answered alike: nothing.
        assert answer(s, _guardian(s, family.mother), NOW, "C-BBBB001") == []
        assert answer(s, _guardian(s, family.mother), NOW, "C-ZZZZ999") == []
        [one] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA001")
        assert one.child == "C-AAAA001"
        s.commit()
        probes = s.scalars(select(LocationCheck).where(LocationCheck.outcome == "not_found")
                           .order_by(LocationCheck.id)).all()
        assert [(p.guardian_id, p.child_id, p.lat) for p in probes] == [
            (family.mother, 3, None), (family.mother, None, None)]  # recorded for an auditor
        about_b = s.scalars(select(UsageRecord).where(UsageRecord.subject == "C-BBBB001",
                                                      UsageRecord.action == "location_check"))
        assert [u.actor for u in about_b] == [f"guardian:{family.other}"]


def test_the_newest_fix_with_a_position_is_answered(
        sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        _fix(s, "8800000001", NOW - 7200, SINHAK)  # before the device was the child's
        _fix(s, "8800000001", NOW - 300, SINHAK, accuracy=None)
        _fix(s, "E200000000AA", NOW - 42, SINDORIM, accuracy=30.0)  # the newest: a tag read
        _fix(s, "8800000001", NOW - 10, None)  # an SOS without a position
        [a] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA001")
        assert (a.outcome, a.lat, a.lon, a.place) == ("answered", *SINDORIM, "구로구 신도림동")
        assert (a.fix_age_s, a.accuracy_m, a.name) == (42.0, 30.0, "길동")
        assert a.to_json() == {"child": "C-AAAA001", "name": "길동", "outcome": "answered",
                               "lat": SINDORIM[0], "lon": SINDORIM[1],
                               "place": "구로구 신도림동", "fix_age_s": 42.0,
                               "accuracy_m": 30.0}
        remove_device(s, "E200000000AA")  # the tag is not the child's any more
        [older] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA001")
        assert (older.place, older.accuracy_m, older.fix_age_s) == ("도봉구 방학동", None, 300.0)
        watch = s.get(Device, "8800000001")
        assert watch is not None
        watch.registered_at = NOW - 60  # registered again: what it sent before is not the child's
        [none] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA001")
        assert none.outcome == "no_fix" and none.to_json() == {
            "child": "C-AAAA001", "name": "길동", "outcome": "no_fix"}


def test_a_child_without_location_consent_is_not_located(
        sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        _fix(s, "8800000002", NOW - 5, SINDORIM)
        [a] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA002")
        assert (a.outcome, a.lat, a.lon, a.place) == ("no_consent", None, None, "")
        db_consent.withdraw(s, "C-AAAA001", "t", NOW)
        _fix(s, "8800000001", NOW - 5, SINDORIM)
        [b] = answer(s, _guardian(s, family.mother), NOW, "C-AAAA001")
        assert b.outcome == "no_consent"
        s.commit()
        rows = s.scalars(select(LocationCheck).order_by(LocationCheck.id)).all()
        assert [(r.outcome, r.lat, r.place) for r in rows] == [("no_consent", None, "")] * 2


def test_every_answer_writes_a_check_and_a_usage_record(
        sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        _fix(s, "8800000001", NOW - 42, SINDORIM)
        first_seq = usage_log.head_of(s)[0]
        got = answer(s, _guardian(s, family.mother), NOW + 1)
        s.commit()
        checks = s.scalars(select(LocationCheck).order_by(LocationCheck.id)).all()
        assert [(c.at, c.guardian_id, c.child_id, c.outcome) for c in checks] == [
            (NOW + 1, family.mother, 1, "answered"), (NOW + 1, family.mother, 2, "no_consent")]
        assert (checks[0].lat, checks[0].lon, checks[0].place, checks[0].fix_age_s,
                checks[0].accuracy_m) == (*SINDORIM, "구로구 신도림동", 43.0, 12.0)
        records = s.scalars(select(UsageRecord).where(UsageRecord.seq > first_seq)
                            .order_by(UsageRecord.seq)).all()
        assert [(r.actor, r.subject, r.action, r.at) for r in records] == [
            (f"guardian:{family.mother}", a.child, "location_check", NOW + 1) for a in got]
        assert records[0].detail.startswith("answered: 구로구 신도림동 (37.50850, 126.88750)")
        assert "홍" not in records[0].detail  # never the name
        assert records[1].detail.startswith("no_consent")
        assert usage_log.verify(s).ok


def test_a_removed_child_is_not_answered(sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        _fix(s, "8800000001", NOW - 42, SINDORIM)
        remove_child(s, "C-AAAA001", "cli:admin", now=NOW)
        got = answer(s, _guardian(s, family.mother), NOW)
        assert [a.child for a in got] == ["C-AAAA002"]
        assert answer(s, _guardian(s, family.mother), NOW, "C-AAAA001") == []


def test_a_reissued_token_replaces_the_old(sessions: tuple[sessionmaker[Session], Family]) -> None:
    factory, family = sessions
    with factory() as s:
        first = guardian_tokens.issue(s, family.mother, now=NOW)
        s.commit()
        assert len(first) >= 43 and first.isascii()
        g = guardian_tokens.guardian_of(s, first)
        assert g is not None and g.id == family.mother
        assert g.token_hash == guardian_tokens.digest(first) != first  # only the hash is kept
        assert g.token_at == NOW
        second = guardian_tokens.issue(s, family.mother, now=NOW + 5)
        s.commit()
        assert second != first
        assert guardian_tokens.guardian_of(s, first) is None
        again = guardian_tokens.guardian_of(s, second)
        assert again is not None and again.id == family.mother
        other = guardian_tokens.issue(s, family.other)
        s.commit()
        found = guardian_tokens.guardian_of(s, other)
        assert found is not None and found.id == family.other
        for bad in ("", "x" * 500, "토큰", second + "x"):
            assert guardian_tokens.guardian_of(s, bad) is None
        with pytest.raises(ValueError, match="no guardian 999"):
            guardian_tokens.issue(s, 999)


@pytest.mark.parametrize(("name", "given"), [
    ("홍길동", "길동"), ("남궁민수", "민수"), ("김남궁", "남궁"), ("이솔", "솔"),
    ("Minseo Kim", "Minseo"), ("홍 길동", "길동"), ("솔", "솔"), ("", ""),
])
def test_given_name(name: str, given: str) -> None:
    assert given_name(name) == given
