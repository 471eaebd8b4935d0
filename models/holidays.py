"""Korean public holidays (공휴일) as dated facts, for the school calendar.

Why a table and not a rule engine: Seollal, Chuseok and Buddha's Birthday
follow the lunar calendar, the substitute-holiday rules changed three times
since 2021, and election days and temporary holidays are decided by the
government year by year. A reviewed list of dates is easy to check against
the official 월력요항 (published each June for the next year) and cannot be
subtly wrong in a year nobody looked at.

Substitute holidays (대체공휴일), as the Public Holidays Act (공휴일에 관한
법률, art. 3) and its decree give them: Seollal and Chuseok when a day of the
three falls on a Sunday or another holiday; Independence Movement Day,
Constitution Day, Labor Day, Children's Day, Liberation Day, National
Foundation Day, Hangeul Day, Buddha's Birthday and Christmas when they fall
on a Saturday or Sunday (Children's Day also on another holiday). New Year's
Day and Memorial Day have none. The substitute is the first following day
that is not a Saturday, Sunday or holiday.

Two 2026 changes are in the table: Constitution Day (제헌절, 17 July) is a
public holiday again (amendment passed 29 Jan 2026, promulgated 10 Feb 2026)
and Labor Day (노동절, 1 May) became one (passed 31 Mar 2026, in force for
1 May 2026); both have substitute holidays. Their 2027 substitutes follow
from those amendments and the government's announcement; they are the
entries least tested by practice (see the comments below).

Years outside the table: ``public_holiday`` answers None, it does not raise.
The engine must keep running on 1 January of a year nobody entered, and a
missing holiday costs false "not arrived" alerts an administrator stops with
``childsafe calendar add`` while a crash would cost every alert.
``covered(year)`` lets the CLI and the engine's start-up warn about it.
Temporary holidays (임시공휴일) are announced weeks ahead, never in this
table: administrators add them to the calendar as city-wide days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    name_ko: str
    name_en: str
    # Seollal and Chuseok (and their substitutes): the family holidays on
    # which academies (hagwon) close too, unlike most other public holidays.
    family: bool = False

    @property
    def label(self) -> str:
        """What the calendar shows: the Korean name first, as on a Korean calendar."""
        return f"{self.name_ko} ({self.name_en})"


def _h(y: int, m: int, d: int, ko: str, en: str, family: bool = False) -> Holiday:
    return Holiday(date(y, m, d), ko, en, family)


_SEOLLAL = ("설날", "Seollal")
_CHUSEOK = ("추석", "Chuseok")

_TABLE: tuple[Holiday, ...] = (
    # ---- 2026 (월력요항 2026; Seollal 17 Feb, Chuseok 25 Sep, Buddha 24 May)
    _h(2026, 1, 1, "신정", "New Year's Day"),
    _h(2026, 2, 16, "설날 연휴", "Seollal holiday", True),
    _h(2026, 2, 17, *_SEOLLAL, True),
    _h(2026, 2, 18, "설날 연휴", "Seollal holiday", True),
    _h(2026, 3, 1, "삼일절", "Independence Movement Day"),  # a Sunday
    _h(2026, 3, 2, "대체공휴일(삼일절)", "Substitute holiday (Independence Movement Day)"),
    # Labor Day: a public holiday from 2026 (see the module docstring).
    _h(2026, 5, 1, "노동절", "Labor Day"),
    _h(2026, 5, 5, "어린이날", "Children's Day"),
    _h(2026, 5, 24, "부처님오신날", "Buddha's Birthday"),  # a Sunday
    _h(2026, 5, 25, "대체공휴일(부처님오신날)", "Substitute holiday (Buddha's Birthday)"),
    _h(2026, 6, 3, "전국동시지방선거", "Local election day"),
    _h(2026, 6, 6, "현충일", "Memorial Day"),  # a Saturday; Memorial Day has no substitute
    # Constitution Day: a public holiday again from 2026.
    _h(2026, 7, 17, "제헌절", "Constitution Day"),
    _h(2026, 8, 15, "광복절", "Liberation Day"),  # a Saturday
    _h(2026, 8, 17, "대체공휴일(광복절)", "Substitute holiday (Liberation Day)"),
    # Chuseok 24-26 Sep (Thu-Sat): a Saturday gives Chuseok no substitute.
    _h(2026, 9, 24, "추석 연휴", "Chuseok holiday", True),
    _h(2026, 9, 25, *_CHUSEOK, True),
    _h(2026, 9, 26, "추석 연휴", "Chuseok holiday", True),
    _h(2026, 10, 3, "개천절", "National Foundation Day"),  # a Saturday
    _h(2026, 10, 5, "대체공휴일(개천절)", "Substitute holiday (National Foundation Day)"),
    _h(2026, 10, 9, "한글날", "Hangeul Day"),
    _h(2026, 12, 25, "기독탄신일", "Christmas Day"),
    # ---- 2027 (Seollal 7 Feb, Chuseok 15 Sep, Buddha 13 May; no election)
    # The official 월력요항 2027 was not at hand when this was written: the
    # lunar dates were cross-checked against an independent holiday table,
    # the substitutes follow the rules above. Check against it and correct.
    _h(2027, 1, 1, "신정", "New Year's Day"),
    _h(2027, 2, 6, "설날 연휴", "Seollal holiday", True),  # a Saturday
    _h(2027, 2, 7, *_SEOLLAL, True),  # a Sunday: a substitute follows
    _h(2027, 2, 8, "설날 연휴", "Seollal holiday", True),
    _h(2027, 2, 9, "대체공휴일(설날)", "Substitute holiday (Seollal)", True),
    _h(2027, 3, 1, "삼일절", "Independence Movement Day"),
    # Labor Day falls on a Saturday. Uncertain: the substitute rests on the
    # 2026 amendment giving Labor Day substitutes; confirm with 월력요항 2027.
    _h(2027, 5, 1, "노동절", "Labor Day"),
    _h(2027, 5, 3, "대체공휴일(노동절)", "Substitute holiday (Labor Day)"),
    _h(2027, 5, 5, "어린이날", "Children's Day"),
    _h(2027, 5, 13, "부처님오신날", "Buddha's Birthday"),
    _h(2027, 6, 6, "현충일", "Memorial Day"),  # a Sunday; no substitute
    # Constitution Day falls on a Saturday. Uncertain in the same way as
    # Labor Day's substitute above.
    _h(2027, 7, 17, "제헌절", "Constitution Day"),
    _h(2027, 7, 19, "대체공휴일(제헌절)", "Substitute holiday (Constitution Day)"),
    _h(2027, 8, 15, "광복절", "Liberation Day"),  # a Sunday
    _h(2027, 8, 16, "대체공휴일(광복절)", "Substitute holiday (Liberation Day)"),
    _h(2027, 9, 14, "추석 연휴", "Chuseok holiday", True),
    _h(2027, 9, 15, *_CHUSEOK, True),
    _h(2027, 9, 16, "추석 연휴", "Chuseok holiday", True),
    _h(2027, 10, 3, "개천절", "National Foundation Day"),  # a Sunday
    _h(2027, 10, 4, "대체공휴일(개천절)", "Substitute holiday (National Foundation Day)"),
    _h(2027, 10, 9, "한글날", "Hangeul Day"),  # a Saturday
    _h(2027, 10, 11, "대체공휴일(한글날)", "Substitute holiday (Hangeul Day)"),
    _h(2027, 12, 25, "기독탄신일", "Christmas Day"),  # a Saturday
    _h(2027, 12, 27, "대체공휴일(기독탄신일)", "Substitute holiday (Christmas Day)"),
)

HOLIDAYS: dict[date, Holiday] = {h.day: h for h in _TABLE}
YEARS: frozenset[int] = frozenset(h.day.year for h in _TABLE)


def holiday(day: date) -> Holiday | None:
    return HOLIDAYS.get(day)


def public_holiday(day: date) -> str | None:
    """The holiday's label, or None: also None for a year outside the table
    (see the module docstring for why that is not an error)."""
    h = HOLIDAYS.get(day)
    return None if h is None else h.label


def covered(year: int) -> bool:
    """Whether the table knows ``year``: outside it, only the calendar days
    administrators entered close the schools."""
    return year in YEARS


def holidays_in(year: int) -> list[Holiday]:
    return [h for h in _TABLE if h.day.year == year]


def family_days(year: int) -> frozenset[date]:
    """Seollal and Chuseok days of ``year``: academies are closed too."""
    return frozenset(h.day for h in _TABLE if h.family and h.day.year == year)
