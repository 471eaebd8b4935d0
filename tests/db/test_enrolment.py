"""Enrolling and removing children, one by one and from a school's roster
CSV, on SQLite and PostgreSQL: what is refused, what removal keeps, and that
a bad roster writes nothing at all."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from db import changes
from db import consent as db_consent
from db import repositories as repo
from db.enrolment import (
    EnrolmentError,
    Problem,
    add_child,
    import_roster,
    list_children,
    remove_child,
)
from db.registry import add_device
from db.store import open_store
from db.tables import (
    Alert,
    Change,
    Child,
    Consent,
    Device,
    Fix,
    Guardian,
    Guardianship,
    TimetableSlot,
    UsageRecord,
    Zone,
)
from models.consent import SERVICES

NOW = 1_800_000_000.0
SCHOOL = "Sindorim Elementary"
OTHER = "Sinhak Elementary"
HEADER = ("name,school,device_id,device_kind,guardian_name,guardian_phone,guardian_email,"
          "relation,consent,age_band,profile")
TOKEN = re.compile(r"C-[0-9A-F]{7}")


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    """Two schools and a park, and three enrolled children with a device, a
    guardian and consent to every service. Not the demo seed: that writes
    explicit ids, and these tests enrol more children after it."""
    engine, factory = open_store(store_url)
    with factory() as s:
        s.add_all([Zone(name=SCHOOL, kind="school", lat=37.5085, lon=126.8875, radius_m=300),
                   Zone(name=OTHER, kind="school", lat=37.6655, lon=127.0420, radius_m=300),
                   Zone(name="Seoul Forest Park", kind="park", lat=37.5444, lon=127.0374,
                        radius_m=500)])
        s.flush()
        for i, zone in enumerate((SCHOOL, SCHOOL, OTHER), 1):
            child = add_child(s, name=f"시드{i}", school_zone=zone, actor="seed", now=NOW)
            add_device(s, f"880000000{i}", "watch", child.token, "seed")
            g = db_consent.add_guardian(s, f"시드{i} 보호자", f"010-0000-000{i}", "", NOW)
            db_consent.link(s, child.token, g.id, "parent")
            db_consent.give(s, child.token, g.id, ",".join(SERVICES), "under14", "seed", NOW)
        s.commit()
    yield factory
    engine.dispose()


def _count(s: Session, table: type[object]) -> int:
    return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


TABLES = (Child, Device, Guardian, Guardianship, Consent, Change, UsageRecord)


def _counts(s: Session) -> dict[str, int]:
    return {t.__name__: _count(s, t) for t in TABLES}


# ------------------------------------------------------------- one by one


def test_add_child_gets_a_fresh_token_and_a_change(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        seeded = {c.token for c in list_children(s)}
        a = add_child(s, name=" 박하늘 ", school_zone=SCHOOL, actor="cli:admin", now=NOW)
        b = add_child(s, name="최바다", school_zone=SCHOOL, profile="bus", actor="cli:admin")
        s.commit()
        assert TOKEN.fullmatch(a.token) and TOKEN.fullmatch(b.token)
        assert len({a.token, b.token} | seeded) == 5
        assert (a.name, a.profile, b.profile) == ("박하늘", "walking", "bus")
        [change] = changes.history(s, "roster", a.token)
        assert (change.action, change.actor, change.at) == ("add", "cli:admin", NOW)
        assert SCHOOL in change.detail and "박하늘" not in change.detail  # pseudonymous log
        entry = next(c for c in list_children(s) if c.token == a.token)
        assert (entry.school, entry.devices, entry.guardians) == (SCHOOL, (), ())
        assert entry.consent_summary() == "no consent"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "x", "school_zone": "Nowhere School"}, "no zone named 'Nowhere School'"),
    ({"name": "", "school_zone": SCHOOL}, "name: missing"),
    ({"name": "a\nb", "school_zone": SCHOOL}, "name: control"),
    ({"name": "x" * 81, "school_zone": SCHOOL}, "name: at most 80"),
    ({"name": "x", "school_zone": SCHOOL, "profile": "car"}, "profile"),
])
def test_add_child_refuses(sessions: sessionmaker[Session], kwargs: dict[str, str],
                           match: str) -> None:
    with sessions() as s:
        before = _counts(s)
        with pytest.raises(EnrolmentError, match=match):
            add_child(s, actor="cli:admin", **kwargs)
        s.rollback()
        assert _counts(s) == before


def _enrol_with_history(s: Session) -> tuple[Child, int]:
    """A child with two devices, a guardian's consent, two timetable slots,
    a fix and a resolved alert; returns it and the alert's id."""
    child = add_child(s, name="정유진", school_zone=SCHOOL, actor="cli:admin", now=NOW)
    add_device(s, "8811111111", "watch", child.token, "cli:admin")
    add_device(s, "E2001111AAAA", "tag", child.token, "cli:admin")
    g = db_consent.add_guardian(s, "정유진 어머니", "010-0000-7777", "", NOW)
    db_consent.link(s, child.token, g.id, "mother")
    db_consent.give(s, child.token, g.id, "routine,location", "under14", "cli:admin", NOW)
    zone_id = child.zone_id
    assert zone_id is not None
    s.add_all([TimetableSlot(child_id=child.id, weekday=d, zone_id=zone_id, kind="school",
                             start_min=510, end_min=900) for d in (0, 1)])
    s.execute(insert(Fix), [dict(device_id="8811111111", t=NOW - 60, lat=37.5085,
                                 lon=126.8875, speed=0.0, bearing=0.0, accuracy=8.0,
                                 battery=90, flags=0, reader_id=None)])
    alert = Alert(kind="sos", priority=1, state="resolved", child_id=child.id,
                  device_id="8811111111", lat=37.5, lon=126.9, place="구로구",
                  opened_at=NOW - 100)
    s.add(alert)
    s.flush()
    return child, alert.id


def test_list_children_summarizes_devices_guardians_consent(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        child, _ = _enrol_with_history(s)
        s.commit()
        entries = list_children(s)
        assert len(entries) == 4
        entry = entries[-1]
        assert entry.token == child.token
        assert entry.devices == (("8811111111", "watch"), ("E2001111AAAA", "tag"))
        assert [rel for _, rel in entry.guardians] == ["mother"]
        assert entry.consent_summary() == "routine,location"
        assert all(e.consent_summary() == "routine,location,emergency" for e in entries[:3])


def test_remove_child_ends_tracking_and_keeps_history(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        child, alert_id = _enrol_with_history(s)
        s.commit()
        removal = remove_child(s, child.token, "cli:admin", now=NOW + 10)
        s.commit()
        assert removal.devices == ("8811111111", "E2001111AAAA") and removal.slots == 2
        assert s.get(Child, child.id).removed_at == NOW + 10  # type: ignore[union-attr]
        assert s.scalars(select(Device).where(Device.child_id == child.id)).all() == []
        assert _count(s, TimetableSlot) == 0
        assert child.token not in {r.token for r in repo.roster(s)}
        assert _count(s, Fix) == 1  # history stays under retention
        assert s.get(Alert, alert_id) is not None
        assert db_consent.services_in_force(s, child.token) == {"routine", "location"}
        actions = [c.action for c in changes.history(s, "roster", child.token)]
        assert (actions[0], actions[-1]) == ("remove", "add")
        assert actions.count("remove_device") == 2
        [slots] = changes.history(s, "timetables", child.token)
        assert slots.action == "remove"
        assert child.token not in {c.token for c in list_children(s)}
        removed = next(c for c in list_children(s, include_removed=True)
                       if c.token == child.token)
        assert removed.removed_at == NOW + 10 and removed.devices == ()
        with pytest.raises(EnrolmentError, match="already removed"):
            remove_child(s, child.token, "cli:admin")
        with pytest.raises(EnrolmentError, match="no child"):
            remove_child(s, "C-NOPE000", "cli:admin")


def test_remove_child_is_refused_while_an_alert_is_unresolved(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        child, alert_id = _enrol_with_history(s)
        s.get(Alert, alert_id).state = "on_hold"  # type: ignore[union-attr]
        s.commit()
        before = _counts(s)
        with pytest.raises(EnrolmentError, match=rf"unresolved alert {alert_id} \(sos, "
                                                 r"on_hold\); resolve the case first"):
            remove_child(s, child.token, "cli:admin")
        s.rollback()
        assert _counts(s) == before
        assert s.get(Child, child.id).removed_at is None  # type: ignore[union-attr]
        assert _count(s, TimetableSlot) == 2


# ----------------------------------------------------------------- roster


def _csv(*rows: str, header: str = HEADER, bom: bool = False) -> str:
    return ("\ufeff" if bom else "") + "\r\n".join([header, *rows]) + "\r\n"


def test_import_a_good_roster(sessions: sessionmaker[Session]) -> None:
    text = _csv(
        f'"김, 하나",{SCHOOL},8820000001,watch,김영희,010-1111-2222,,mother,'
        '"routine,location,emergency",under14,',
        f'김두리,{SCHOOL},8620000000001,phone,김영희,01011112222,kim@example.kr,mother,'
        '"routine,location",under14,bus',
        f'이셋,{OTHER},E2000000BEEF,tag,,,,,emergency,14plus,walking',
        ',,,,,,,,,,',  # Excel's empty rows
        bom=True)
    with sessions() as s:
        result = import_roster(s, text, "cli:admin", now=NOW)
        assert result.ok, result.problems
        s.commit()
        assert [(e.line, e.name, e.device_id) for e in result.enrolled] == [
            (2, "김, 하나", "8820000001"), (3, "김두리", "8620000000001"),
            (4, "이셋", "E2000000BEEF")]
        assert (result.guardians_added, result.guardians_known) == (1, 0)
        tokens = [e.token for e in result.enrolled]
        assert all(TOKEN.fullmatch(t) for t in tokens)
        [mother] = [g for g in db_consent.guardians(s) if g.name == "김영희"]
        assert mother.email == "kim@example.kr"  # the row that gave it
        assert mother.children == ((tokens[0], "mother"), (tokens[1], "mother"))
        entries = {c.token: c for c in list_children(s)}
        assert entries[tokens[1]].profile == "bus"
        assert entries[tokens[1]].consent_summary() == "routine,location"
        assert entries[tokens[2]].guardians == ()
        assert entries[tokens[2]].school == OTHER
        assert entries[tokens[2]].consent_summary() == "emergency"  # the 14-year-old's own
        assert {r.token for r in repo.roster(s)} >= set(tokens)
        added = {c.key for c in changes.history(s, "roster") if c.action == "add"}
        assert added >= set(tokens) and len(added) == 6
        consents = s.scalars(select(UsageRecord).where(UsageRecord.action == "consent",
                                                       UsageRecord.at == NOW,
                                                       UsageRecord.actor == "cli:admin")).all()
        assert sorted(u.subject for u in consents) == sorted(tokens)


def test_a_school_option_fills_the_school_and_known_guardians_are_reused(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        seeded = db_consent.guardians(s)[0]
        header = HEADER.replace("school,", "")
        text = _csv(f"박하나,8830000001,watch,{seeded.name},{seeded.phone},,father,"
                    "location,under14,",
                    header=header)
        result = import_roster(s, text, "cli:admin", school=SCHOOL, now=NOW)
        assert result.ok, result.problems
        s.commit()
        assert (result.guardians_added, result.guardians_known) == (0, 1)
        token = result.enrolled[0].token
        [g] = db_consent.guardians(s, token)
        assert g.id == seeded.id and len(g.children) == 2  # a sibling of a seeded child
        with pytest.raises(EnrolmentError, match="no zone named"):
            import_roster(s, text, "cli:admin", school="Nowhere")


def test_a_bad_roster_names_every_problem_and_writes_nothing(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        taken = repo.roster(s)[0].device_id
        before = _counts(s)
        text = _csv(
            f"좋은행,{SCHOOL},8840000001,watch,부모,010-2222-3333,,father,location,under14,",
            "학교없음,Nowhere School,8840000002,watch,부모,010-2222-3333,,father,"
            "location,under14,",
            f"기기종류,{SCHOOL},8840000003,pager,부모,010-2222-3333,,father,location,under14,",
            f"등록됨,{SCHOOL},{taken},watch,부모,010-2222-3333,,father,location,under14,",
            f"중복,{SCHOOL},8840000001,watch,부모,010-2222-3333,,father,location,under14,",
            f"전화,{SCHOOL},8840000005,watch,부모2,010-abcd,,father,location,under14,",
            f"메일,{SCHOOL},8840000006,watch,부모3,,kim@,father,location,under14,",
            f"보호자없음,{SCHOOL},8840000007,watch,,,,,location,under14,",
            f",{SCHOOL},8840000008,,부모,010-2222-3333,,father,,under14,",
            f"열개,{SCHOOL},8840000009,watch,부모,010-2222-3333,,father,location",
            f'"여러\n줄",{SCHOOL},8840000010,watch,부모,010-2222-3333,,father,location,'
            'under14,',
            f"나이,{SCHOOL},8840000011,watch,부모,010-2222-3333,,father,location,adult,",
            f"서비스,{SCHOOL},8840000012,watch,부모,010-2222-3333,,father,sms,under14,",
            f"메일다름,{SCHOOL},8840000013,watch,부모,010-2222-3333,a@b.kr,father,location,"
            "under14,",
            f"메일다름2,{SCHOOL},8840000014,watch,부모,010-2222-3333,c@d.kr,father,location,"
            "under14,")
        result = import_roster(s, text, "cli:admin", now=NOW)
        assert not result.ok and result.enrolled == ()
        got = [(p.line, p.reason.split(":")[0]) for p in result.problems]
        assert got == [
            (3, "school"), (4, "device_kind"), (5, "device_id"), (6, "device_id"),
            (7, "guardian_phone"), (8, "guardian_email"), (9, "consent"),
            (10, "name"), (10, "device_kind"), (10, "consent"),
            (11, "wrong column count"), (12, "name"), (14, "age_band"), (15, "consent"),
            (17, "guardian_email")]
        reasons = {p.line: p.reason for p in result.problems}
        assert "no zone named 'Nowhere School'" in reasons[3]
        assert f"{taken} is already registered" in reasons[5]
        assert "8840000001 is also on line 2" in reasons[6]
        assert "under 14 needs a guardian" in reasons[9]
        assert "9 fields, the header has 11" in reasons[11]
        assert "line 16 gives 'a@b.kr'" in reasons[17]
        assert str(result.problems[0]).startswith("line 3: school: ")
        s.commit()
        assert _counts(s) == before


@pytest.mark.parametrize(("text", "problem"), [
    ("", Problem(1, "empty file")),
    (HEADER + "\r\n", Problem(2, "no children after the header")),
    (HEADER.replace(",consent", "") + "\n", Problem(1, "missing column consent")),
    (HEADER.replace(",school", "") + "\n", Problem(1, "missing column school (or give")),
    (HEADER + ",name\n", Problem(1, "column 'name' appears twice")),
    (HEADER + ",shoe_size\nx", Problem(1, "unknown column 'shoe_size'")),
    (HEADER + '\n"unclosed\x00,x', Problem(2, "")),
])
def test_a_roster_without_usable_rows_is_refused(sessions: sessionmaker[Session], text: str,
                                                 problem: Problem) -> None:
    with sessions() as s:
        result = import_roster(s, text, "cli:admin", now=NOW)
        assert not result.ok
        first = result.problems[0]
        assert first.line == problem.line and first.reason.startswith(problem.reason), first
        assert _count(s, Child) == 3
