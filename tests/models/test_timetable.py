"""Timetable entries are checked as they are typed, and a day plan applies
holidays, closures and exceptions the way the module says."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from models.timetable import (
    DayException,
    Expected,
    Slot,
    TimetableError,
    check_no_overlap,
    day_plan,
    format_hhmm,
    local_day,
    local_midnight,
    parse_hhmm,
    parse_weekday,
    parse_weekdays,
)

SCHOOL, ACADEMY, MUSEUM = 10, 20, 30
MON = date(2026, 3, 9)  # an ordinary Monday
WEEK = [Slot(d, SCHOOL, "school", 520, 880) for d in range(5)] + [
    Slot(0, ACADEMY, "academy", 960, 1050)]


def test_parse_times_and_days() -> None:
    assert parse_hhmm("08:40") == 520 and parse_hhmm("8:05") == 485
    assert parse_hhmm("24:00") == 1440 and parse_hhmm("00:00") == 0
    for bad in ("8", "08:4", "08:60", "24:01", "ab:cd", "", "-1:00", "123:00"):
        with pytest.raises(TimetableError):
            parse_hhmm(bad)
    assert format_hhmm(520) == "08:40"
    assert parse_weekday("mon") == 0 and parse_weekday("Sunday") == 6
    assert parse_weekday("수") == 2 and parse_weekday("금요일") == 4
    with pytest.raises(TimetableError, match="day 'someday'"):
        parse_weekday("someday")
    assert parse_weekdays("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_weekdays("mon,wed,fri") == [0, 2, 4]
    assert parse_weekdays("월-수,토") == [0, 1, 2, 5]
    with pytest.raises(TimetableError, match="backwards"):
        parse_weekdays("fri-mon")


def test_slot_validation() -> None:
    Slot(0, 1, "school", 0, 1440)
    Slot(6, 1, "academy", 600, 610)
    for args in [(0, 1, "school", 600, 600), (0, 1, "school", 700, 600),
                 (0, 1, "school", 600, 605), (0, 1, "school", -10, 600),
                 (0, 1, "school", 600, 1441), (7, 1, "school", 600, 700),
                 (0, 1, "daycare", 600, 700)]:
        with pytest.raises(TimetableError):
            Slot(*args)  # type: ignore[arg-type]


def test_overlapping_slots_are_refused() -> None:
    check_no_overlap(WEEK)
    check_no_overlap([Slot(0, 1, "school", 520, 880), Slot(0, 2, "academy", 880, 960)])
    with pytest.raises(TimetableError, match="overlaps"):
        check_no_overlap([Slot(0, 1, "school", 520, 880), Slot(0, 2, "academy", 870, 960)])


def test_exception_validation() -> None:
    DayException(MON, "absent")
    DayException(MON, "trip")
    DayException(MON, "trip", MUSEUM, 540, 900)
    for kw in [dict(kind="sick"), dict(kind="absent", zone_id=MUSEUM),
               dict(kind="trip", zone_id=MUSEUM), dict(kind="trip", zone_id=MUSEUM,
                                                       start_min=900, end_min=540)]:
        with pytest.raises(TimetableError):
            DayException(MON, **kw)  # type: ignore[arg-type]


def test_local_time() -> None:
    midnight = local_midnight(MON)
    assert datetime.fromtimestamp(midnight, UTC) == datetime(2026, 3, 8, 15, 0, tzinfo=UTC)
    assert local_day(midnight) == MON and local_day(midnight - 1) == date(2026, 3, 8)


def _plan(day: date, **kw: object) -> list[tuple[int, str, str, str]]:
    plan = day_plan(day, WEEK, kw.pop("holidays", {}), kw.pop("closures", {}),  # type: ignore[arg-type]
                    kw.pop("exceptions", []), **kw)  # type: ignore[arg-type]
    midnight = local_midnight(day)
    return [(e.zone_id, e.kind, format_hhmm(int(e.start_t - midnight) // 60),
             format_hhmm(int(e.end_t - midnight) // 60)) for e in plan]


def test_an_ordinary_monday() -> None:
    plan = day_plan(MON, WEEK, {}, {}, [])
    assert plan[0] == Expected(SCHOOL, "school", local_midnight(MON) + 520 * 60,
                               local_midnight(MON) + 880 * 60)
    assert _plan(MON) == [(SCHOOL, "school", "08:40", "14:40"),
                          (ACADEMY, "academy", "16:00", "17:30")]
    assert _plan(date(2026, 3, 10)) == [(SCHOOL, "school", "08:40", "14:40")]
    assert _plan(date(2026, 3, 14)) == []  # a Saturday


def test_holidays_and_closures() -> None:
    # A public holiday or city-wide day: no school, the academy stays.
    assert _plan(MON, holidays={MON: "삼일절"}) == [(ACADEMY, "academy", "16:00", "17:30")]
    # Seollal or Chuseok: the academy closes too.
    assert _plan(MON, holidays={MON: "설날"}, academy_closed={MON}) == []
    assert _plan(MON, closures={(MON, ACADEMY): "academy break"}) == [
        (SCHOOL, "school", "08:40", "14:40")]
    assert _plan(MON, closures={(MON, SCHOOL): "foundation day"}) == [
        (ACADEMY, "academy", "16:00", "17:30")]
    # Another day's entries change nothing.
    assert len(_plan(MON, holidays={date(2026, 3, 10): "x"},
                     closures={(date(2026, 3, 10), SCHOOL): "y"})) == 2


def test_exceptions() -> None:
    assert _plan(MON, exceptions=[DayException(MON, "absent")]) == []
    assert _plan(MON, exceptions=[DayException(date(2026, 3, 10), "absent")]) != []
    # A trip without a place: no school, the academy stays.
    assert _plan(MON, exceptions=[DayException(MON, "trip")]) == [
        (ACADEMY, "academy", "16:00", "17:30")]
    trip = DayException(MON, "trip", MUSEUM, 540, 900, note="science museum")
    assert _plan(MON, exceptions=[trip]) == [(MUSEUM, "school", "09:00", "15:00"),
                                             (ACADEMY, "academy", "16:00", "17:30")]
    # The trip stands on a holiday and a closure: it was said about that very day.
    assert _plan(MON, exceptions=[trip], holidays={MON: "x"},
                 closures={(MON, MUSEUM): "y"})[0] == (MUSEUM, "school", "09:00", "15:00")
    # Absent wins over a trip the same day.
    assert _plan(MON, exceptions=[trip, DayException(MON, "absent")]) == []


def test_utc_offset() -> None:
    utc = day_plan(MON, WEEK, {}, {}, [], utc_offset_s=0)
    kst = day_plan(MON, WEEK, {}, {}, [])
    assert utc[0].start_t - kst[0].start_t == 9 * 3600
