"""The usage log's vocabulary and hash: what the chain's integrity rests on."""

from __future__ import annotations

import hashlib
import math

import msgspec
import pytest

from models.usage import (
    ACTIONS,
    FIELD_LIMITS,
    GENESIS,
    UsageEntry,
    UsageFilter,
    check,
    describe,
    entry_hash,
    record_hash,
)

BASE = dict(seq=7, at=1_790_000_000.25, actor="operator1", subject="C-9D396A5",
            action="reveal", purpose="open alert 12", alert_id=12, detail="identity")


def test_the_hash_is_sha256_hex_and_repeatable() -> None:
    h = record_hash(GENESIS, **BASE)  # type: ignore[arg-type]
    assert len(h) == 64 and int(h, 16) >= 0
    assert h == record_hash(GENESIS, **BASE)  # type: ignore[arg-type]
    assert GENESIS == "0" * 64
    assert h != hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("field, other", [
    ("seq", 8), ("at", 1_790_000_000.2500002), ("actor", "operator2"),
    ("subject", "C-9D396A6"), ("action", "history"), ("purpose", "open alert 13"),
    ("alert_id", None), ("alert_id", 0), ("detail", "identity "),
])
def test_every_field_changes_the_hash(field: str, other: object) -> None:
    changed = {**BASE, field: other}
    assert record_hash(GENESIS, **changed) != record_hash(GENESIS, **BASE)  # type: ignore[arg-type]


def test_the_previous_hash_is_covered() -> None:
    assert record_hash("1" * 64, **BASE) != record_hash(GENESIS, **BASE)  # type: ignore[arg-type]


def test_the_encoding_is_unambiguous() -> None:
    """Moving text across a field boundary must not give the same hash (a
    joined string would: "ab"+"c" == "a"+"bc"), nor may None pass for 0."""
    a = {**BASE, "actor": "ab", "subject": "c"}
    b = {**BASE, "actor": "a", "subject": "bc"}
    assert record_hash(GENESIS, **a) != record_hash(GENESIS, **b)  # type: ignore[arg-type]
    c = {**BASE, "purpose": "x|y", "detail": ""}
    d = {**BASE, "purpose": "x", "detail": "y"}
    assert record_hash(GENESIS, **c) != record_hash(GENESIS, **d)  # type: ignore[arg-type]


def test_at_is_hashed_exactly_and_an_int_time_equals_its_float() -> None:
    t = 1_790_000_000.123456
    assert record_hash(GENESIS, **{**BASE, "at": t}) != record_hash(  # type: ignore[arg-type]
        GENESIS, **{**BASE, "at": math.nextafter(t, math.inf)})
    assert record_hash(GENESIS, **{**BASE, "at": 5}) == record_hash(  # type: ignore[arg-type]
        GENESIS, **{**BASE, "at": 5.0})


def test_entry_hash_matches_record_hash_and_entries_travel() -> None:
    entry = UsageEntry(**BASE)  # type: ignore[arg-type]
    assert entry_hash(GENESIS, entry) == record_hash(GENESIS, **BASE)  # type: ignore[arg-type]
    wire = msgspec.msgpack.encode(entry)
    assert msgspec.msgpack.decode(wire, type=UsageEntry) == entry
    assert msgspec.json.decode(msgspec.json.encode(entry), type=UsageEntry) == entry
    bad = msgspec.msgpack.encode({**BASE, "location": [37.5, 127.0]})
    with pytest.raises(msgspec.ValidationError, match="location"):
        msgspec.msgpack.decode(bad, type=UsageEntry)
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode({**BASE, "seq": "7"}), type=UsageEntry)
    with pytest.raises(AttributeError):
        entry.detail = "changed"  # type: ignore[misc]


def test_actions_are_the_issue_s_list() -> None:
    assert ACTIONS == ("reveal", "history", "trail", "location_check", "export",
                       "disclosure", "consent", "withdrawal", "purge", "replay")
    assert max(map(len, ACTIONS)) <= FIELD_LIMITS["action"]


def test_check_accepts_a_good_record() -> None:
    check(**{k: v for k, v in BASE.items() if k != "seq"})  # type: ignore[arg-type]
    check(at=0, actor="retention", subject="", action="purge")


@pytest.mark.parametrize("change, message", [
    ({"action": "peek"}, "unknown usage action"),
    ({"action": "Reveal"}, "unknown usage action"),
    ({"actor": ""}, "needs the actor"),
    ({"at": math.nan}, "finite"),
    ({"at": math.inf}, "finite"),
    ({"at": "1790000000"}, "finite"),
    ({"at": True}, "finite"),
    ({"alert_id": "12"}, "alert_id"),
    ({"alert_id": True}, "alert_id"),
    ({"actor": "x" * 65}, "actor is longer than 64"),
    ({"subject": "C" * 33}, "subject is longer than 32"),
    ({"purpose": "p" * 201}, "purpose is longer than 200"),
    ({"detail": "d" * 501}, "detail is longer than 500"),
    ({"detail": "a\x00b"}, "NUL"),
    ({"purpose": None}, "purpose must be text"),
])
def test_check_refuses_what_the_log_must_not_take(change: dict[str, object],
                                                   message: str) -> None:
    record = {k: v for k, v in BASE.items() if k != "seq"} | change
    with pytest.raises(ValueError, match=message):
        check(**record)  # type: ignore[arg-type]


def test_the_limits_are_characters_not_bytes() -> None:
    check(at=1.0, actor="운영자" * 21, subject="", action="history", detail="가" * 500)


def test_filter_defaults_and_description() -> None:
    f = UsageFilter()
    assert (f.subject, f.actor, f.action, f.since, f.until, f.limit) == (
        None, None, None, None, None, 1000)
    assert describe(UsageFilter(limit=None)) == "filter: everything"
    text = describe(UsageFilter(subject="C-1", action="trail", since=0.0, until=86400.0,
                                limit=5))
    assert text == ("filter: subject C-1, action trail, since 1970-01-01T00:00:00+00:00, "
                    "until 1970-01-02T00:00:00+00:00, newest 5")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"subject": "C-1", "token": "x"}', type=UsageFilter)
