"""The holiday table against the rules that make it: every substitute
holiday the law gives is there, on the right day, and no other."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from models.holidays import (
    HOLIDAYS,
    YEARS,
    covered,
    family_days,
    holiday,
    holidays_in,
    public_holiday,
)

SAT, SUN = 5, 6
# Holidays that get a substitute when on a Saturday or Sunday (by English name).
WEEKEND_RULE = {"Independence Movement Day", "Constitution Day", "Labor Day", "Children's Day",
                "Liberation Day", "National Foundation Day", "Hangeul Day",
                "Buddha's Birthday", "Christmas Day"}


def _expected_substitutes(year: int) -> set[date]:
    """The substitutes the rules give for ``year``'s other holidays."""
    base = {h.day: h for h in holidays_in(year) if not h.name_en.startswith("Substitute")}
    taken = set(base)
    subs: set[date] = set()

    def next_free(d: date) -> date:
        d += timedelta(days=1)
        while d.weekday() in (SAT, SUN) or d in taken:
            d += timedelta(days=1)
        return d

    for d, h in sorted(base.items()):
        if h.name_en in WEEKEND_RULE and d.weekday() in (SAT, SUN):
            s = next_free(d)
            subs.add(s)
            taken.add(s)
    for family in ("Seollal", "Chuseok"):
        days = sorted(d for d, h in base.items() if family in h.name_en)
        assert len(days) == 3, (year, family)
        if any(d.weekday() == SUN for d in days):
            s = next_free(days[-1])
            subs.add(s)
            taken.add(s)
    return subs


@pytest.mark.parametrize("year", sorted(YEARS))
def test_substitutes_follow_the_rules(year: int) -> None:
    table = {h.day for h in holidays_in(year) if h.name_en.startswith("Substitute")}
    assert table == _expected_substitutes(year)
    for d in table:
        assert d.weekday() < SAT


def test_known_dates() -> None:
    assert holiday(date(2026, 2, 17)).name_ko == "설날"  # type: ignore[union-attr]
    assert holiday(date(2026, 9, 25)).name_en == "Chuseok"  # type: ignore[union-attr]
    assert public_holiday(date(2026, 5, 24)) == "부처님오신날 (Buddha's Birthday)"
    assert public_holiday(date(2026, 6, 3)) is not None  # the local elections
    assert public_holiday(date(2027, 2, 9)) is not None  # Seollal on a Sunday
    assert public_holiday(date(2027, 5, 13)) is not None
    assert public_holiday(date(2027, 9, 15)) is not None
    # A Saturday in Chuseok gives no substitute; Memorial Day never has one.
    assert public_holiday(date(2026, 9, 28)) is None
    assert public_holiday(date(2026, 6, 8)) is None
    assert public_holiday(date(2026, 3, 3)) is None


def test_three_day_family_holidays() -> None:
    assert len(family_days(2026)) == 6
    assert date(2027, 2, 9) in family_days(2027)  # the substitute closes academies too
    assert len(family_days(2027)) == 7


def test_years_outside_the_table_answer_none() -> None:
    assert covered(2026) and covered(2027) and not covered(2028)
    assert public_holiday(date(2028, 1, 1)) is None
    assert holidays_in(2028) == []


def test_every_entry_is_named_in_both_languages() -> None:
    assert len(HOLIDAYS) == len(holidays_in(2026)) + len(holidays_in(2027))
    for h in HOLIDAYS.values():
        assert h.name_ko and h.name_en and h.name_ko in h.label and h.name_en in h.label
