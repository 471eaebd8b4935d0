"""The consent rules and the in-memory book the engine and gateway consult."""

from __future__ import annotations

import pytest

from models.consent import (
    AGE_BANDS,
    SERVICES,
    ConsentBook,
    check_consent,
    format_services,
    parse_services,
)


def test_services_and_bands_are_the_documented_ones() -> None:
    assert SERVICES == ("routine", "location", "emergency")
    assert AGE_BANDS == ("under14", "14plus")


def test_parse_services_accepts_strings_and_lists_and_normalises() -> None:
    assert parse_services("routine,emergency") == {"routine", "emergency"}
    assert parse_services(" location , location ,") == {"location"}
    assert parse_services(["emergency"]) == {"emergency"}
    assert format_services({"emergency", "routine", "location"}) == "routine,location,emergency"
    assert format_services(parse_services("emergency,routine")) == "routine,emergency"


@pytest.mark.parametrize("bad", ["", " , ", "routine,tracking", "ROUTINE", "sos",
                                 "routine;location"])
def test_unknown_or_no_service_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match="services"):
        parse_services(bad)
    with pytest.raises(ValueError, match="services"):
        check_consent(bad, "14plus", None)


def test_under_14_needs_a_guardian() -> None:
    with pytest.raises(ValueError, match=r"guardian.*under 14"):
        check_consent("emergency", "under14", None)
    assert check_consent("emergency", "under14", 7) == {"emergency"}
    # From 14 the child may consent alone, or a guardian for them.
    assert check_consent(SERVICES, "14plus", None) == set(SERVICES)
    assert check_consent("routine", "14plus", 3) == {"routine"}


@pytest.mark.parametrize("band", ["", "under 14", "13", "14+", "UNDER14", "adult"])
def test_unknown_age_band_is_refused(band: str) -> None:
    with pytest.raises(ValueError, match="age band"):
        check_consent("routine", band, 1)


def test_book_unions_every_consent_in_force_per_child() -> None:
    book = ConsentBook.from_rows([(1, "emergency"), (1, "routine"), (2, ["location"]),
                                  (3, "routine,location,emergency")])
    assert len(book) == 3
    assert book.allows(1, "emergency") and book.allows(1, "routine")
    assert not book.allows(1, "location")
    assert book.allows(2, "location") and not book.allows(2, "emergency")
    assert all(book.allows(3, s) for s in SERVICES)
    assert book.tracked(1) and book.tracked(2) and book.tracked(3)
    assert not book.tracked(4)
    assert not any(book.allows(4, s) for s in SERVICES)
    assert book.services(4) == frozenset()


def test_an_empty_book_tracks_nobody() -> None:
    book = ConsentBook.from_rows([])
    assert len(book) == 0
    assert not book.tracked(1)
    assert book.refused_devices({"a": 1, "b": None}) == ["a", "b"]


def test_asking_for_an_unknown_service_is_an_error_not_a_refusal() -> None:
    book = ConsentBook.from_rows([(1, "emergency")])
    with pytest.raises(ValueError, match="service"):
        book.allows(1, "sos")
    with pytest.raises(ValueError, match="service"):
        book.refused_devices({"a": 1}, "sos")


def test_a_bad_stored_row_is_not_silently_dropped() -> None:
    with pytest.raises(ValueError):
        ConsentBook.from_rows([(1, "emergency,tracking")])


def test_refused_devices() -> None:
    book = ConsentBook.from_rows([(1, "emergency"), (2, "routine,location,emergency")])
    devices: dict[str, int | None] = {"w1": 1, "p1": 1, "w2": 2, "w3": 3, "spare": None}
    assert book.refused_devices(devices) == ["spare", "w3"]
    assert book.refused_devices(devices, "routine") == ["p1", "spare", "w1", "w3"]
    assert book.refused_devices(devices, "emergency") == ["spare", "w3"]
    assert book.refused_devices({}) == []


def test_refused_devices_at_city_scale() -> None:
    book = ConsentBook.from_rows((c, "emergency") for c in range(0, 100_000, 2))
    devices: dict[str, int | None] = {f"d{c}": c for c in range(100_000)}
    refused = book.refused_devices(devices)
    assert len(refused) == 50_000
    assert "d1" in refused and "d0" not in refused


def test_updated_and_withdrawn_leave_the_old_book_alone() -> None:
    old = ConsentBook.from_rows([(1, "routine,emergency"), (2, "emergency")])
    narrowed = old.updated(1, ["emergency"])
    assert narrowed.services(1) == {"emergency"}
    assert old.services(1) == {"routine", "emergency"}
    gone = old.updated(2, [])
    assert not gone.tracked(2) and old.tracked(2)
    added = old.updated(9, parse_services("location"))
    assert added.allows(9, "location") and not old.tracked(9)
    assert old.withdrawn(1).tracked(1) is False
    assert old.withdrawn(42).services(1) == old.services(1)  # withdrawing nobody: harmless
    with pytest.raises(ValueError):
        old.updated(1, ["tracking"])


def test_the_book_cannot_be_changed_in_place() -> None:
    source = {1: frozenset({"emergency"})}
    book = ConsentBook(source)  # type: ignore[arg-type]
    source[2] = frozenset({"routine"})
    assert not book.tracked(2)
    with pytest.raises(AttributeError):
        book.extra = 1  # type: ignore[attr-defined]
