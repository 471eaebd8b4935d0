"""Reading fields out of untrusted JSON, with a reason for every refusal.

The JSON decoders (OsmAnd JSON, tag readers, carrier feeds) all face the
same hostile input: wrong types, booleans where numbers belong (``True`` is
an ``int`` in Python), numbers too large for a float, deep nesting, ids
with control characters. These helpers turn each of those into a
``Rejected`` with a short counter key, so a decoder can never raise
anything else and an integrator reading the reply sees which field was
wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from models.fixes import Rejected

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ID_LEN = 64


def parse_time(raw: str) -> float:
    """Epoch seconds from the text forms devices send: epoch seconds, epoch
    milliseconds, or ISO-8601 (``Z``, an offset, or none meaning UTC)."""
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):  # "nan", "inf", "1e400"
            raise Rejected("bad_timestamp", f"timestamp={raw[:40]!r}")
        return value / 1000.0 if value > 1e11 else value
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise Rejected("bad_timestamp", f"timestamp={raw[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_json(body: bytes) -> Any:
    """The document in ``body``, or ``Rejected('bad_json')``."""
    if len(body) > MAX_BODY_BYTES:
        raise Rejected("body_too_large", f"{len(body)} bytes")
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Rejected("bad_json", str(exc)[:120]) from None


def as_object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Rejected("bad_field", f"{name} must be an object, got {type(value).__name__}")
    return value


def text_id(value: object, name: str) -> str:
    """A device, tag or reader id: a short printable string (numbers are
    accepted, since some firmwares send numeric ids unquoted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Rejected(f"missing_{name}" if value is None else f"bad_{name}",
                       f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise Rejected(f"missing_{name}", f"empty {name}")
    if len(value) > MAX_ID_LEN or not value.isprintable():
        raise Rejected(f"bad_{name}", f"{name} {value[:MAX_ID_LEN]!r} of {len(value)} characters")
    return value


def number(obj: Mapping[str, Any], key: str, default: float | None = None) -> float:
    """``obj[key]`` as a float; a missing key gives ``default`` or
    ``Rejected('missing_<key>')``. Strings are refused: a feed that quotes
    its numbers is misconfigured, and saying so beats guessing."""
    value = obj.get(key)
    if value is None:
        if default is None:
            raise Rejected(f"missing_{key}", f"no {key}")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("bad_number", f"{key} must be a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise Rejected("bad_number", f"{key} is too large") from None


def epoch(value: object, name: str = "t") -> float:
    """Epoch seconds from a JSON number (seconds or milliseconds) or an
    ISO-8601 string; the range check (2000 .. now + 5 min) is the intake's."""
    if isinstance(value, str):
        return parse_time(value[:64])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("bad_timestamp" if value is not None else "missing_time",
                       f"{name} must be a number or an ISO-8601 string")
    try:
        t = float(value)
    except OverflowError:
        raise Rejected("bad_timestamp", f"{name} is too large") from None
    if not math.isfinite(t):
        raise Rejected("bad_timestamp", f"{name}={t!r}")
    return t / 1000.0 if t > 1e11 else t
