"""Timetables, the calendar and exceptions as an administrator edits them,
and the day plans the engine loads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import changes
from db import timetables as tt
from db.seed import seed_demo
from db.store import open_store
from db.tables import Child, Zone
from models.timetable import TimetableError, day_plan, local_midnight, parse_hhmm

MON = date(2026, 3, 9)  # an ordinary Monday
ACTOR = "cli:admin"


def _school_children(s: Session) -> list[tuple[int, str, str]]:
    """(id, token, school name) of the seeded children at a school zone."""
    return [tuple(r) for r in s.execute(  # type: ignore[misc]
        select(Child.id, Child.token, Zone.name).join(Zone, Zone.id == Child.zone_id)
        .where(Zone.kind == "school").order_by(Child.id)).all()]


def test_slots(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 13)
        (_, token, school), (_, other, _), *_ = _school_children(s)
        for weekday in range(5):
            tt.set_slot(s, token, weekday, school, "school", 520, 880, ACTOR)
        tt.set_slot(s, token, 0, "Seoul Forest Park", "academy", 900, 990, ACTOR)
        s.commit()
        week = tt.timetable(s, token)
        assert [e.describe() for e in week[:2]] == [
            f"mon school 08:40-14:40 at {school}", "mon academy 15:00-16:30 at Seoul Forest Park"]
        assert len(week) == 6 and tt.timetable(s, other) == []
        # A new school slot replaces the day's school slot (a change of school).
        tt.set_slot(s, token, 0, "Sinhak Elementary", "school", 540, 870, ACTOR)
        # The same academy again replaces its slot; a different one would be added.
        tt.set_slot(s, token, 0, "Seoul Forest Park", "academy", 960, 1020, ACTOR)
        s.commit()
        monday = [e.describe() for e in tt.timetable(s, token) if e.slot.weekday == 0]
        assert monday == ["mon school 09:00-14:30 at Sinhak Elementary",
                          "mon academy 16:00-17:00 at Seoul Forest Park"]
        with pytest.raises(TimetableError, match="overlaps mon school 09:00-14:30 at Sinhak"):
            tt.set_slot(s, token, 0, school, "academy", 850, 900, ACTOR)
        with pytest.raises(TimetableError, match="C-NOPE"):
            tt.set_slot(s, "C-NOPE", 0, school, "school", 520, 880, ACTOR)
        with pytest.raises(TimetableError, match="'Nowhere'"):
            tt.set_slot(s, token, 0, "Nowhere", "school", 520, 880, ACTOR)
        with pytest.raises(TimetableError, match="shorter"):
            tt.set_slot(s, token, 1, school, "school", 520, 525, ACTOR)
        s.rollback()
        assert tt.clear(s, token, ACTOR, weekday=0, kind="academy") == 1
        assert tt.clear(s, token, ACTOR, weekday=0) == 1
        assert tt.clear(s, token, ACTOR) == 4
        assert tt.clear(s, token, ACTOR) == 0
        s.commit()
        log = changes.history(s, "timetables", token)
        assert [c.action for c in log][:3] == ["remove", "remove", "remove"]
        updates = [c.detail for c in log if c.action == "update"]
        assert f"mon school 09:00-14:30 at Sinhak Elementary (was 08:40-14:40 at {school})" \
            in updates
        # A removed child has no timetable to edit.
        s.execute(update(Child).where(Child.token == other).values(removed_at=1.0))
        with pytest.raises(TimetableError, match="removed"):
            tt.set_slot(s, other, 0, school, "school", 520, 880, ACTOR)
    engine.dispose()


def test_calendar(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 13)
        before = changes.version(s, "calendar")
        tt.add_day(s, date(2026, 7, 27), "여름방학", ACTOR)
        tt.add_day(s, date(2026, 4, 2), "개교기념일", ACTOR, zone_name="Sinhak Elementary")
        tt.add_day(s, date(2026, 4, 2), "재량휴업일", ACTOR, zone_name="Sindorim Elementary")
        s.commit()
        assert changes.version(s, "calendar") > before
        for args, match in [((date(2026, 7, 27), "again"), "already a day without school"),
                            ((date(2026, 5, 5), "어린이날"), "already a public holiday"),
                            ((date(2026, 4, 3), ""), "name"),
                            ((date(2026, 4, 3), "x", "Nowhere"), "'Nowhere'")]:
            with pytest.raises(TimetableError, match=match):
                tt.add_day(s, args[0], args[1], ACTOR, *args[2:])
        s.rollback()
        days = tt.calendar(s, 2026)
        assert [(e.day, e.zone) for e in days if not e.builtin] == [
            (date(2026, 4, 2), "Sindorim Elementary"), (date(2026, 4, 2), "Sinhak Elementary"),
            (date(2026, 7, 27), None)]
        assert any(e.builtin and e.day == date(2026, 9, 25) for e in days)
        assert [e.day for e in tt.calendar(s, 2027)] == [e.day for e in tt.calendar(s, 2027)
                                                          if e.builtin]
        assert len(tt.calendar(s, with_holidays=False)) == 3
        assert tt.remove_day(s, date(2026, 4, 2), ACTOR, "Sinhak Elementary") == "개교기념일"
        with pytest.raises(TimetableError, match="built in"):
            tt.remove_day(s, date(2026, 5, 5), ACTOR)
        s.commit()
        assert [c.action for c in changes.history(s, "calendar")] == ["remove", "add", "add",
                                                                       "add"]
    engine.dispose()


def test_exceptions(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 13)
        (_, token, _), *_ = _school_children(s)
        tt.add_exception(s, token, MON, "absent", ACTOR, note="독감")
        tt.add_exception(s, token, date(2026, 3, 10), "trip", ACTOR,
                         zone_name="Seoul Forest Park", start_min=540, end_min=900)
        s.commit()
        with pytest.raises(TimetableError, match="already"):
            tt.add_exception(s, token, MON, "absent", ACTOR)
        with pytest.raises(TimetableError, match="together"):
            tt.add_exception(s, token, MON, "trip", ACTOR, zone_name="Seoul Forest Park")
        with pytest.raises(TimetableError, match="C-NOPE"):
            tt.add_exception(s, "C-NOPE", MON, "absent", ACTOR)
        s.rollback()
        listed = tt.exceptions(s, token)
        assert [e.describe() for e in listed] == [
            "2026-03-09 absent (독감)", "2026-03-10 trip at Seoul Forest Park 09:00-15:00"]
        assert len(tt.exceptions(s, token, since=date(2026, 3, 10))) == 1
        assert tt.remove_exception(s, listed[0].id, ACTOR) == "2026-03-09 absent (독감)"
        with pytest.raises(TimetableError, match="no exception"):
            tt.remove_exception(s, listed[0].id, ACTOR)
        s.commit()
        assert len(changes.history(s, "timetables", token)) == 3
    engine.dispose()


def test_demo_timetables_and_load_plans(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 13)
        s.add(Zone(name="신도림 영어학원", kind="academy", lat=37.5090, lon=126.8890,
                   radius_m=50))
        s.flush()
        assert tt.demo_timetables(s) == 4
        s.commit()
        assert tt.demo_timetables(s) == 0  # once: an admin's edits survive restarts
        children = _school_children(s)
        ids = [c[0] for c in children]
        plans = tt.load_plans(s, MON, 32400)
        assert sorted(plans) == ids
        midnight = local_midnight(MON)
        for child_id, plan in plans.items():
            assert plan[0].kind == "school" and plan[0].end_t - plan[0].start_t >= 3600
            assert plan[0].start_t - midnight in {510 * 60, 520 * 60, 530 * 60}
            assert [e.kind for e in plan[1:]] == (["academy"] if child_id % 3 == 0 else [])
        assert any(len(p) == 2 for p in plans.values())
        # The loader's fast path agrees with the model's rules.
        for child_id, token, _ in children:
            week = [e.slot for e in tt.timetable(s, token)]
            assert plans[child_id] == day_plan(MON, week, {}, {}, [])
        # Tuesday: no academy; Saturday: nothing.
        assert all(len(p) == 1 for p in tt.load_plans(s, date(2026, 3, 10), 32400).values())
        assert tt.load_plans(s, date(2026, 3, 14), 32400) == {}
        # A substitute holiday (Monday 2 March): the academy stays, school does not.
        holiday = tt.load_plans(s, date(2026, 3, 2), 32400)
        assert holiday and all([e.kind for e in p] == ["academy"] for p in holiday.values())
        # Seollal: academies close too.
        assert tt.load_plans(s, date(2026, 2, 16), 32400) == {}
        # A closure, an absence, a trip, a removed child.
        (_, _, school_a), (b, token_b, _), (c, token_c, _), (d, _, _) = children
        tt.add_day(s, MON, "개교기념일", ACTOR, zone_name=school_a)
        tt.add_exception(s, token_b, MON, "absent", ACTOR)
        tt.add_exception(s, token_c, MON, "trip", ACTOR, zone_name="Seoul Forest Park",
                         start_min=parse_hhmm("09:30"), end_min=parse_hhmm("13:00"))
        s.execute(update(Child).where(Child.id == d).values(removed_at=1.0))
        s.commit()
        plans = tt.load_plans(s, MON, 32400)
        same_school = {cid for cid, _, name in children if name == school_a}
        assert all(e.kind == "academy" for cid in same_school for e in plans.get(cid, []))
        assert b not in plans and d not in plans
        park = s.scalar(select(Zone.id).where(Zone.name == "Seoul Forest Park"))
        assert plans[c][0].zone_id == park and plans[c][0].start_t == midnight + 570 * 60
        # Only some children (a timetables change naming them): each one answered.
        some = tt.load_plans(s, MON, 32400, child_ids=[b, c, d, 10_000])
        assert some == {b: [], c: plans[c], d: [], 10_000: []}
    engine.dispose()
