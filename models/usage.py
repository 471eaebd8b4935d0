"""The location-usage log's vocabulary and its hash chain (Qt- and store-free).

Location Information Act §16(2) asks for a record of every use and
provision of a child's location that cannot be quietly rewritten. Each
record's hash covers its own fields and the hash before it, so editing or
deleting one breaks the chain at that record; ``db.usage_log`` stores and
verifies the chain, the engine and the console only speak these types.

The hash input is a MessagePack array (not text joined with separators):
strings carry their length, ``at`` travels as the exact 64-bit float, and
``alert_id`` None is nil, not 0, so two different records never encode the
same way.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

import msgspec

ACTIONS: tuple[str, ...] = (
    "reveal",  # the engine granted a child's identity to an operator (open alert or approval)
    "history",  # someone opened a child's alert history or past positions
    "trail",  # an alert panel drew the child's recent trail
    "location_check",  # a guardian or operator asked where the child is now
    "export",  # location data or this log left the system (CSV, evidence bundle)
    "disclosure",  # the child's data was given to police or fire (§29)
    "consent",  # a guardian's consent was recorded
    "withdrawal",  # a guardian withdrew consent (and the child's data was purged)
    "purge",  # retention removed expired data; the record holds counts only
    "replay",  # a recorded period was replayed for training (every child in it)
)

GENESIS = "0" * 64  # the hash "before" the first record

# Column widths in db.tables.UsageRecord: checked before writing, because
# SQLite would store a longer value and PostgreSQL would refuse it.
FIELD_LIMITS: dict[str, int] = {
    "actor": 64, "subject": 32, "action": 24, "purpose": 200, "detail": 500,
}

_HASH_DOMAIN = "childsafe.usage/1"  # changes if the encoding ever does


class UsageEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One record as the auditor sees it (travels inside bus replies).

    ``subject`` is the child's pseudonymous token ("" when the record is
    about no one child, e.g. a purge); ``purpose`` is the reason given,
    ``detail`` what was used (counts, the filter of an export), never the
    location itself.
    """

    seq: int
    at: float
    actor: str
    subject: str
    action: str
    purpose: str = ""
    alert_id: int | None = None
    detail: str = ""


class UsageFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Which records an auditor asks for; None means "any". ``since`` is
    inclusive and ``until`` exclusive (epoch seconds), so consecutive windows
    never count a record twice. ``limit`` None means no limit (exports)."""

    subject: str | None = None
    actor: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = 1000


def check(*, at: float, actor: str, subject: str, action: str, purpose: str = "",
          alert_id: int | None = None, detail: str = "") -> None:
    """Raise ValueError for a record the log must not take: an unknown
    action, a field wider than its column, a NUL (PostgreSQL refuses it in
    text), a time that is not a finite number, or no actor to answer for it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown usage action {action!r}")
    if not actor:
        raise ValueError("a usage record needs the actor who used the data")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError(f"usage time must be a finite number, not {at!r}")
    if alert_id is not None and (isinstance(alert_id, bool) or not isinstance(alert_id, int)):
        raise ValueError(f"alert_id must be an integer or None, not {alert_id!r}")
    values = {"actor": actor, "subject": subject, "action": action, "purpose": purpose,
              "detail": detail}
    for name, value in values.items():
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, not {type(value).__name__}")
        if len(value) > FIELD_LIMITS[name]:
            raise ValueError(f"{name} is longer than {FIELD_LIMITS[name]} characters")
        if "\x00" in value:
            raise ValueError(f"{name} contains a NUL character")


def record_hash(prev_hash: str, *, seq: int, at: float, actor: str, subject: str,
                action: str, purpose: str = "", alert_id: int | None = None,
                detail: str = "") -> str:
    """SHA-256 (hex) of one record chained to ``prev_hash``."""
    body = msgspec.msgpack.encode((_HASH_DOMAIN, int(seq), float(at), actor, subject, action,
                                   purpose, alert_id, detail, prev_hash))
    return hashlib.sha256(body).hexdigest()


def entry_hash(prev_hash: str, entry: UsageEntry) -> str:
    """``record_hash`` of an entry read back (what verification recomputes)."""
    return record_hash(prev_hash, seq=entry.seq, at=entry.at, actor=entry.actor,
                       subject=entry.subject, action=entry.action, purpose=entry.purpose,
                       alert_id=entry.alert_id, detail=entry.detail)


def describe(f: UsageFilter) -> str:
    """A filter in words, for the record an export of the log leaves."""
    parts = [f"{name} {value}" for name in ("subject", "actor", "action")
             if (value := getattr(f, name)) is not None]
    for name in ("since", "until"):
        value = getattr(f, name)
        if value is not None:
            parts.append(f"{name} {datetime.fromtimestamp(value, UTC).isoformat()}")
    if f.limit is not None:
        parts.append(f"newest {f.limit}")
    return "filter: " + (", ".join(parts) if parts else "everything")
