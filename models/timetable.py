"""A child's week (timetable slots), one-off changes, and the day plan made
from them: where the child is expected today, and when.

Rules of the day plan (``day_plan``), and why:

- A public holiday or a city-wide calendar day (vacation, a temporary
  holiday) removes the school slots only. Academies (hagwon) mostly open on
  public holidays and in vacations, and a guardian still wants to know the
  child got there; an academy that closes gets a closure of its zone.
- On Seollal and Chuseok (``academy_closed``) academies close too: they
  are the family holidays, and expecting 580,000 children at their academies
  then would flood the control room with false "not arrived" alerts.
- A closure of one zone (a school's foundation day, an academy's break)
  removes that zone's slots, of either kind.
- An ``absent`` exception (sick day) removes the whole day.
- A ``trip`` removes the school slots; given a zone and times, the child is
  expected there instead, as a school expectation (the guardian's notice
  names the zone). A trip's expectation stands even on a holiday or a
  closure: it is the one thing an administrator said about that very day.

Times are minutes after local midnight in the store and epoch seconds in a
plan; Korea has no daylight saving, so a fixed offset converts them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Literal, NamedTuple

SlotKind = Literal["school", "academy"]
ExceptionKind = Literal["absent", "trip"]
SLOT_KINDS: tuple[SlotKind, ...] = ("school", "academy")
EXCEPTION_KINDS: tuple[ExceptionKind, ...] = ("absent", "trip")
DAY_MIN = 24 * 60
# Shorter than this is a typing error, not a lesson: and a slot this short
# could not hold an arrival grace period anyway.
MIN_SLOT_MIN = 10
KST_OFFSET_S = 9 * 3600

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES: dict[str, int] = {}
for _i, (_en, _long, _ko) in enumerate(zip(
        WEEKDAYS, ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "월화수목금토일", strict=True)):
    _WEEKDAY_NAMES.update({_en: _i, _long: _i, _ko: _i, _ko + "요일": _i})


class TimetableError(ValueError):
    """A timetable, calendar or exception entry that cannot be applied; the
    message says why, naming the value (the CLI prints it as is)."""


def parse_hhmm(text: str) -> int:
    """``"08:40"`` → 520 minutes after midnight; ``"24:00"`` is the end of the day."""
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2 or len(hh) > 2:
        raise TimetableError(f"time {text!r} must be HH:MM, e.g. 08:40")
    minutes = int(hh) * 60 + int(mm)
    if int(mm) > 59 or minutes > DAY_MIN:
        raise TimetableError(f"time {text!r} is not a time of day (00:00 to 24:00)")
    return minutes


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_weekday(text: str) -> int:
    """``mon``..``sun``, full English names or Korean 월..일 (월요일) → 0..6."""
    day = _WEEKDAY_NAMES.get(text.strip().lower())
    if day is None:
        raise TimetableError(f"day {text!r} must be one of {', '.join(WEEKDAYS)} (or 월..일)")
    return day


def parse_weekdays(text: str) -> list[int]:
    """A list and ranges: ``mon``, ``mon,wed,fri``, ``mon-fri``, ``월-금``."""
    days: list[int] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        a = parse_weekday(first)
        b = parse_weekday(last) if dash else a
        if b < a:
            raise TimetableError(f"day range {part!r} runs backwards")
        days.extend(d for d in range(a, b + 1) if d not in days)
    return days


def parse_day(text: str) -> date:
    """``"2026-07-27"`` → a date (the store keeps days as such text)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise TimetableError(f"day {text!r} must be a date, YYYY-MM-DD") from None


def _check_span(start_min: int, end_min: int, what: str) -> None:
    if not (0 <= start_min < end_min <= DAY_MIN):
        raise TimetableError(f"{what}: {format_hhmm(start_min)}-{format_hhmm(end_min)} must "
                             "start before it ends, within one day")
    if end_min - start_min < MIN_SLOT_MIN:
        raise TimetableError(f"{what}: {format_hhmm(start_min)}-{format_hhmm(end_min)} is "
                             f"shorter than {MIN_SLOT_MIN} minutes")


@dataclass(frozen=True, slots=True)
class Slot:
    """Where the child is on a weekday: at ``zone_id`` from ``start_min`` to
    ``end_min`` (minutes after local midnight)."""

    weekday: int
    zone_id: int
    kind: SlotKind
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if self.weekday not in range(7):
            raise TimetableError(f"weekday {self.weekday} must be 0 (Monday) .. 6 (Sunday)")
        if self.kind not in SLOT_KINDS:
            raise TimetableError(f"kind {self.kind!r} must be one of {', '.join(SLOT_KINDS)}")
        _check_span(self.start_min, self.end_min, f"{WEEKDAYS[self.weekday]} {self.kind}")

    def overlaps(self, other: Slot) -> bool:
        return (self.weekday == other.weekday and self.start_min < other.end_min
                and other.start_min < self.end_min)

    def describe(self) -> str:
        return (f"{WEEKDAYS[self.weekday]} {self.kind} "
                f"{format_hhmm(self.start_min)}-{format_hhmm(self.end_min)}")


def check_no_overlap(slots: Iterable[Slot]) -> None:
    """A child cannot be in two places at once: overlapping slots on a
    weekday are refused when entered, so a day plan never holds them."""
    by_day: dict[int, list[Slot]] = {}
    for s in slots:
        by_day.setdefault(s.weekday, []).append(s)
    for day_slots in by_day.values():
        day_slots.sort(key=lambda s: s.start_min)
        for a, b in pairwise(day_slots):
            if a.overlaps(b):
                raise TimetableError(f"{b.describe()} overlaps {a.describe()}")


@dataclass(frozen=True, slots=True)
class DayException:
    """A one-off change to one child's day (named so as not to shadow the
    builtin ``Exception``)."""

    day: date
    kind: ExceptionKind
    zone_id: int | None = None
    start_min: int | None = None
    end_min: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EXCEPTION_KINDS:
            raise TimetableError(f"exception {self.kind!r} must be one of "
                                 f"{', '.join(EXCEPTION_KINDS)}")
        where = (self.zone_id, self.start_min, self.end_min)
        if self.kind == "absent" and any(x is not None for x in where):
            raise TimetableError("an absence takes no zone or times: the child is expected "
                                 "nowhere that day")
        if self.kind == "trip" and any(x is not None for x in where):
            if any(x is None for x in where):
                raise TimetableError("a trip takes a zone, a start and an end together, or "
                                     "none of them")
            assert self.start_min is not None and self.end_min is not None
            _check_span(self.start_min, self.end_min, f"trip on {self.day.isoformat()}")

    @property
    def destination(self) -> tuple[int, int, int] | None:
        """(zone, start, end) of a trip that says where the child will be."""
        if self.zone_id is None or self.start_min is None or self.end_min is None:
            return None
        return self.zone_id, self.start_min, self.end_min


class Expected(NamedTuple):
    """One expectation of a day: the child at ``zone_id`` from ``start_t``
    to ``end_t`` (epoch seconds). A named tuple: a city's day makes 750,000
    of them, and a tuple is made several times faster than a dataclass."""

    zone_id: int
    kind: SlotKind
    start_t: float
    end_t: float


def local_midnight(day: date, utc_offset_s: float = KST_OFFSET_S) -> float:
    """Epoch seconds of ``day``'s local midnight."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - utc_offset_s


def local_day(t: float, utc_offset_s: float = KST_OFFSET_S) -> date:
    """The local date at epoch ``t`` (what the engine rebuilds on)."""
    return datetime.fromtimestamp(t + utc_offset_s, UTC).date()


@dataclass(frozen=True, slots=True)
class DayRules:
    """The calendar's part of the rules for one day, the same for every
    child: ``day_plan`` applies it to one child, and the engine's loader to
    580,000 children's slots without building a ``Slot`` for each."""

    day: date
    midnight: float
    school_off: bool
    academy_off: bool
    closed: frozenset[int]  # zones closed that day

    @classmethod
    def of(cls, day: date, city_holidays: Mapping[date, str],
           closures: Mapping[tuple[date, int], str], utc_offset_s: float = KST_OFFSET_S,
           academy_closed: Collection[date] = ()) -> DayRules:
        return cls(day, local_midnight(day, utc_offset_s), day in city_holidays,
                   day in academy_closed, frozenset(z for d, z in closures if d == day))

    @property
    def kinds_kept(self) -> frozenset[str]:
        """The slot kinds the calendar leaves standing today."""
        return frozenset(k for k, off in (("school", self.school_off),
                                          ("academy", self.academy_off)) if not off)

    def keeps(self, kind: str, zone_id: int) -> bool:
        """Whether a slot of the day's weekday stands (for a child with no
        exception that day)."""
        off = self.school_off if kind == "school" else self.academy_off
        return not off and zone_id not in self.closed

    def expected(self, zone_id: int, kind: SlotKind, start_min: int, end_min: int) -> Expected:
        return Expected(zone_id, kind, self.midnight + start_min * 60.0,
                        self.midnight + end_min * 60.0)


def day_plan(day: date, slots: Sequence[Slot], city_holidays: Mapping[date, str],
             closures: Mapping[tuple[date, int], str], exceptions: Sequence[DayException],
             utc_offset_s: float = KST_OFFSET_S,
             academy_closed: Collection[date] = (),
             rules: DayRules | None = None) -> list[Expected]:
    """The child's expectations on ``day``, by start (the rules are in the
    module docstring). ``slots`` may hold every weekday; ``exceptions`` may
    hold other days' too: both are filtered here. ``rules``: the day's, made
    once for many children (the three calendar arguments are then unused)."""
    if rules is None:
        rules = DayRules.of(day, city_holidays, closures, utc_offset_s, academy_closed)
    todays = [e for e in exceptions if e.day == day]
    if any(e.kind == "absent" for e in todays):
        return []
    trip = any(e.kind == "trip" for e in todays)
    plan = [rules.expected(s.zone_id, s.kind, s.start_min, s.end_min)
            for s in slots
            if s.weekday == day.weekday() and rules.keeps(s.kind, s.zone_id)
            and not (trip and s.kind == "school")]
    for e in todays:
        if (dest := e.destination) is not None:
            plan.append(rules.expected(dest[0], "school", dest[1], dest[2]))
    plan.sort(key=lambda x: (x.start_t, x.zone_id))
    return plan
