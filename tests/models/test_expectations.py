"""The expectation evaluator on a controlled clock: a school day, an
academy after it, holidays, exceptions, rebuilds, and a city-sized build."""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from models.expectations import Expectations, Outcome, Windows
from models.timetable import DayException, Slot, day_plan, local_midnight, parse_hhmm

DAY = date(2026, 3, 9)  # a Monday
MIDNIGHT = local_midnight(DAY)
SCHOOL, ACADEMY, MUSEUM, PARK = 1, 2, 3, 4
W = Windows(early_s=3600, arrival_grace_s=900, departure_grace_s=1800,
            dismissal_window_s=1200, transit_s=3600)
SCHOOL_WEEK = [Slot(d, SCHOOL, "school", parse_hhmm("08:40"), parse_hhmm("14:40"))
               for d in range(5)]
WITH_ACADEMY = [*SCHOOL_WEEK, Slot(0, ACADEMY, "academy", parse_hhmm("16:00"),
                                    parse_hhmm("17:30"))]


def at(hhmm: str) -> float:
    return MIDNIGHT + parse_hhmm(hhmm) * 60.0


def kinds(outcomes: list[Outcome]) -> list[tuple[str, int]]:
    return [(o.kind, o.slot) for o in outcomes]


def plans(*children: list[Slot], holidays: dict[date, str] | None = None,
          exceptions: dict[int, list[DayException]] | None = None,
          ) -> dict[int, list]:  # type: ignore[type-arg]
    return {slot: day_plan(DAY, slots, holidays or {}, {}, (exceptions or {}).get(slot, []))
            for slot, slots in enumerate(children)}


def test_a_school_day() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK), windows=W)
    assert ex.has_plan_today(0) and ex.has_plan_today(1) and not ex.has_plan_today(2)
    assert ex.due(at("07:00")) == []
    arrival = ex.on_enter(0, SCHOOL, at("08:10"))
    assert kinds(arrival) == [("school_arrival", 0)]
    assert arrival[0].zone_id == SCHOOL and arrival[0].start_t == at("08:40")
    # Not arrived by the start + grace, exactly then and only once.
    assert ex.due(at("08:55") - 1) == []
    assert kinds(ex.due(at("08:55"))) == [("not_arrived", 1)]
    assert ex.due(at("08:56")) == [] and ex.due(at("12:00")) == []
    # Late: the notice and the alert's clearing.
    assert kinds(ex.on_enter(1, SCHOOL, at("09:10"))) == [("school_arrival", 1),
                                                          ("clear_not_arrived", 1)]
    # Leaving at 10:00 is an alert; coming back is no second arrival.
    assert kinds(ex.on_exit(0, SCHOOL, at("10:00"))) == [("unexpected_exit", 0)]
    assert kinds(ex.on_enter(0, SCHOOL, at("10:05"))) == [("returned", 0)]
    # From the dismissal window on, an exit is going home.
    assert kinds(ex.on_exit(0, SCHOOL, at("14:25"))) == [("school_departure", 0)]
    assert ex.on_enter(0, SCHOOL, at("14:30")) == []  # back for a forgotten bag
    assert ex.on_exit(0, SCHOOL, at("14:35")) == []
    # Still inside at the end + grace: an alert, cleared by the exit.
    assert kinds(ex.due(at("15:10"))) == [("not_departed", 1)]
    assert ex.due(at("15:11")) == []
    assert kinds(ex.on_exit(1, SCHOOL, at("15:20"))) == [("school_departure", 1),
                                                         ("clear_not_departed", 1)]
    assert ex.due(at("23:59")) == []
    assert [r.state for r in ex.rows_of(0)] == ["departed"]


def test_reentry_and_early_arrival() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK, SCHOOL_WEEK), windows=W)
    # Child 0: a brief exit before the start, then back: one notice only.
    assert kinds(ex.on_enter(0, SCHOOL, at("08:00"))) == [("school_arrival", 0)]
    assert ex.on_exit(0, SCHOOL, at("08:10")) == []
    assert ex.on_enter(0, SCHOOL, at("08:15")) == []
    # Child 1: inside before the window opens: the notice comes when it does.
    assert ex.on_enter(1, SCHOOL, at("07:00")) == []
    # Child 2: in and out again before the window: never arrived.
    assert ex.on_enter(2, SCHOOL, at("07:10")) == []
    assert ex.on_exit(2, SCHOOL, at("07:20")) == []
    assert kinds(ex.due(at("07:40"))) == [("school_arrival", 1)]
    assert kinds(ex.due(at("08:55"))) == [("not_arrived", 2)]


def test_arrived_then_gone_before_the_start_is_not_arrived() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK), windows=W)
    assert kinds(ex.on_enter(0, SCHOOL, at("08:00"))) == [("school_arrival", 0)]
    assert ex.on_exit(0, SCHOOL, at("08:20")) == []
    assert kinds(ex.due(at("09:00"))) == [("not_arrived", 0)]
    assert kinds(ex.on_enter(0, SCHOOL, at("09:05"))) == [("clear_not_arrived", 0)]


def test_holiday_and_absence_expect_nothing() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK, holidays={DAY: "삼일절"}), n_slots=1, windows=W)
    assert len(ex) == 0 and not ex.has_plan_today(0)
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK,
                                  exceptions={1: [DayException(DAY, "absent")]}), windows=W)
    assert not ex.has_plan_today(1)
    assert ex.on_enter(1, SCHOOL, at("08:30")) == [] and ex.on_exit(1, SCHOOL, at("10:00")) == []
    assert kinds(ex.due(at("09:00"))) == [("not_arrived", 0)]


def test_start_up() -> None:
    # Started at 10:00: children inside are fed in first; the rest are missing.
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK), windows=W)
    assert kinds(ex.on_enter(0, SCHOOL, at("10:00"))) == [("school_arrival", 0)]
    assert kinds(ex.due(at("10:00"))) == [("not_arrived", 1)]
    # Told to skip what passed before the start: nothing.
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK), windows=W,
                            checked_until=at("10:00"))
    assert ex.due(at("10:00")) == [] and ex.due(at("10:01")) == []
    # Started in the evening: the school day is over, nothing to raise.
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK), windows=W)
    assert ex.due(at("20:00")) == []


def test_a_trip() -> None:
    trip = DayException(DAY, "trip", MUSEUM, parse_hhmm("09:30"), parse_hhmm("13:00"))
    ex = Expectations.build(plans(SCHOOL_WEEK, exceptions={0: [trip]}), windows=W)
    assert ex.on_enter(0, SCHOOL, at("08:30")) == []  # no school today
    got = ex.on_enter(0, MUSEUM, at("09:20"))
    assert kinds(got) == [("school_arrival", 0)] and got[0].zone_id == MUSEUM
    assert kinds(ex.on_exit(0, MUSEUM, at("11:00"))) == [("unexpected_exit", 0)]
    assert ex.due(at("20:00")) == []  # outside at the end: no "not departed"


def test_academy_after_school() -> None:
    ex = Expectations.build(plans(WITH_ACADEMY), windows=W)
    assert kinds(ex.on_enter(0, SCHOOL, at("08:30"))) == [("school_arrival", 0)]
    assert kinds(ex.on_exit(0, SCHOOL, at("14:45"))) == [("school_departure", 0)]
    assert ex.on_enter(0, PARK, at("15:00")) == []  # no expectation there
    assert ex.on_exit(0, PARK, at("15:40")) == []
    assert kinds(ex.on_enter(0, ACADEMY, at("15:50"))) == [("academy_arrival", 0)]
    assert kinds(ex.on_exit(0, ACADEMY, at("17:31"))) == [("academy_departure", 0)]
    assert ex.due(at("23:00")) == []


def test_back_to_back_sessions_in_one_academy() -> None:
    sessions = [Slot(0, ACADEMY, "academy", parse_hhmm("15:00"), parse_hhmm("16:00")),
                Slot(0, ACADEMY, "academy", parse_hhmm("16:30"), parse_hhmm("18:00"))]
    ex = Expectations.build(plans(sessions), windows=W)
    assert kinds(ex.on_enter(0, ACADEMY, at("14:55"))) == [("academy_arrival", 0)]
    assert ex.due(at("16:30")) == []  # stayed for the next class: no alert
    assert kinds(ex.on_exit(0, ACADEMY, at("18:00"))) == [("academy_departure", 0)]
    assert ex.due(at("19:00")) == []


def test_rebuild_keeps_state() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK, SCHOOL_WEEK), windows=W)
    ex.on_enter(0, SCHOOL, at("08:30"))
    assert kinds(ex.due(at("09:00"))) == [("not_arrived", 1)]
    # At 10:00 an administrator adds a 07:00 class for child 0 and a third
    # child: nothing retroactive, and the rows still there keep their state.
    extra = [*SCHOOL_WEEK, Slot(0, ACADEMY, "academy", parse_hhmm("07:00"),
                                parse_hhmm("08:00"))]
    new = ex.rebuild({**plans(SCHOOL_WEEK, SCHOOL_WEEK), 0: plans(extra)[0],
                      2: plans(SCHOOL_WEEK)[0]}, n_slots=3)
    assert new.due(at("10:00")) == []
    assert new.on_enter(0, SCHOOL, at("10:01")) == []  # arrived already
    assert kinds(new.on_enter(1, SCHOOL, at("10:02"))) == [("school_arrival", 1),
                                                           ("clear_not_arrived", 1)]
    assert kinds(new.on_exit(0, SCHOOL, at("14:30"))) == [("school_departure", 0)]
    assert {r.state for r in new.rows_of(2)} == {"pending"}
    # A new day keeps nothing.
    assert Expectations.build({}, n_slots=3).rebuild(plans(SCHOOL_WEEK)).rows_of(0)[0].state \
        == "pending"


def test_exits_without_expectation() -> None:
    ex = Expectations.build(plans(SCHOOL_WEEK, []), windows=W)
    assert ex.on_exit(0, PARK, at("10:00")) == []
    assert ex.on_exit(1, SCHOOL, at("10:00")) == []
    assert ex.on_exit(99, SCHOOL, at("10:00")) == [] and ex.on_enter(-1, SCHOOL, 0.0) == []
    # Inside since before the engine started, and gone at 10:00: still an alert.
    assert kinds(ex.on_exit(0, SCHOOL, at("10:00"))) == [("unexpected_exit", 0)]


def test_expected_somewhere() -> None:
    ex = Expectations.build(plans(WITH_ACADEMY, SCHOOL_WEEK, []), windows=W)
    slots = np.array([0, 1, 2, 7])
    assert ex.expected_somewhere(slots, at("03:00")).tolist() == [False] * 4
    assert ex.expected_somewhere(slots, at("07:45")).tolist() == [True, True, False, False]
    assert ex.expected_somewhere(slots, at("16:00")).tolist() == [True, False, False, False]
    assert ex.expected_somewhere([0], at("18:31")).tolist() == [False]


def test_city_scale_build_and_ticks() -> None:
    n = 100_000
    school = plans(SCHOOL_WEEK)[0]
    both = plans(WITH_ACADEMY)[0]
    day_plans = {s: (both if s % 3 == 0 else school) for s in range(n)}
    t0 = time.perf_counter()
    ex = Expectations.build(day_plans, n_slots=n, windows=W)
    built = time.perf_counter() - t0
    assert len(ex) == n + (n + 2) // 3 and built < 5.0
    for s in range(0, n, 2):
        ex.on_enter(s, SCHOOL, at("08:30"))
    assert ex.due(at("08:54")) == []
    t0 = time.perf_counter()
    assert ex.due(at("08:54") + 30) == []
    idle = time.perf_counter() - t0
    alerts = ex.due(at("08:55"))
    assert len(alerts) == n // 2 and {a.kind for a in alerts} == {"not_arrived"}
    assert idle < 0.05
    assert ex.expected_somewhere(np.arange(n), at("12:00")).all()
