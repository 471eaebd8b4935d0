"""The location-usage log in the store: append, verify, query, export, purge.

Every use of a child's location is one ``usage_log`` row chained by hash to
the row before it (``models.usage``); the ``usage_head`` row holds the last
number and hash, and the anchor the chain starts from once retention has
removed its oldest rows. A writer UPDATEs the head row before anything else:
on SQLite that statement takes the write lock before the head is read, on
PostgreSQL it locks the row, so two writers can never both chain onto the
same record.

``append`` leaves the commit to its caller, so the record commits (or rolls
back) with the action it records. ``purge_before`` commits as it goes (see
there). Everything that reads the whole log walks it in chunks of ``CHUNK``
rows by number, so a million records never sit in memory at once.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from db.tables import UsageHead, UsageRecord
from models.usage import GENESIS, UsageEntry, UsageFilter, check, describe, record_hash

CHUNK = 5000
HEAD_ID = 1
QUERY_MAX = 10_000  # rows one query may return (an auditor's screen, a bus reply)
CSV_HEADER = ("seq", "at_utc", "at", "actor", "subject", "action", "purpose", "alert_id",
              "detail", "prev_hash", "hash")

_HEAD = cast(Table, UsageHead.__table__)
_LOG = cast(Table, UsageRecord.__table__)
_FIELDS = (UsageRecord.seq, UsageRecord.at, UsageRecord.actor, UsageRecord.subject,
           UsageRecord.action, UsageRecord.purpose, UsageRecord.alert_id, UsageRecord.detail)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What ``verify`` found: ``checked`` records chained correctly before
    ``first_broken`` (None when the whole log is intact), and ``reason`` in
    words an auditor can act on ("" when intact)."""

    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    base_seq: int
    base_hash: str


class ChainBroken(Exception):
    """The log does not verify where an operation needs it to (a purge would
    otherwise remove the evidence of tampering)."""


# ------------------------------------------------------------------ the head


def _read_head(conn: Connection) -> Head | None:
    row = conn.execute(select(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.base_seq, _HEAD.c.base_hash)
                       .where(_HEAD.c.id == HEAD_ID)).one_or_none()
    return None if row is None else Head(int(row[0]), row[1], int(row[2]), row[3])


def _lock_head(conn: Connection) -> Head:
    """Lock the head (creating it on the first append), then read it."""
    touch = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq)
    if conn.execute(touch).rowcount == 0:
        created = _create_head(conn)
        conn.execute(touch)
        if created and conn.scalar(select(func.count()).select_from(_LOG)):
            raise ChainBroken("the usage log has records but its head is missing; "
                              "nothing can be chained onto it until an auditor looks")
    head = _read_head(conn)
    assert head is not None  # created above, and locked by us
    return head


def _create_head(conn: Connection) -> bool:
    """Insert the head row unless a concurrent writer just did; True if we did."""
    values = {"id": HEAD_ID, "seq": 0, "hash": GENESIS, "base_seq": 0, "base_hash": GENESIS}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(_HEAD).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(_HEAD).values(values).on_conflict_do_nothing()
    else:
        stmt = insert(_HEAD).values(values)
    # RETURNING, not rowcount: SQLAlchemy reports 1 for a PostgreSQL insert
    # that did nothing on conflict.
    return conn.execute(stmt.returning(_HEAD.c.id)).first() is not None


# ------------------------------------------------------------------- writing


def append(session: Session, *, at: float, actor: str, subject: str, action: str,
           purpose: str = "", alert_id: int | None = None, detail: str = "") -> int:
    """Chain one record onto the log in the session's transaction; returns
    its number. The caller commits, together with what the record is about.
    ValueError for a record the log must not take (``models.usage.check``)."""
    check(at=at, actor=actor, subject=subject, action=action, purpose=purpose,
          alert_id=alert_id, detail=detail)
    conn = session.connection()
    head = _lock_head(conn)
    seq = head.seq + 1
    digest = record_hash(head.hash, seq=seq, at=float(at), actor=actor, subject=subject,
                         action=action, purpose=purpose, alert_id=alert_id, detail=detail)
    conn.execute(insert(_LOG).values(seq=seq, at=float(at), actor=actor, subject=subject,
                                     action=action, purpose=purpose, alert_id=alert_id,
                                     detail=detail, prev_hash=head.hash, hash=digest))
    conn.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=seq, hash=digest))
    return seq


# ----------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class _Walk:
    checked: int
    last_seq: int
    last_hash: str
    broken: tuple[int, str] | None


def _after(seq: int, base: int) -> str:
    """How a message names the point the chain continues from."""
    if seq == base:
        return "the start" if base == 0 else f"the last purge (record {base})"
    return f"record {seq}"


def _walk(conn: Connection, base_seq: int, base_hash: str, upto: int,
          chunk: int = CHUNK) -> _Walk:
    """Check records base_seq+1 .. upto in order, one chunk at a time."""
    expected, prev, last, checked = base_seq + 1, base_hash, base_seq, 0
    cols = (*_FIELDS, UsageRecord.prev_hash, UsageRecord.hash)
    while True:
        rows = conn.execute(select(*cols).where(UsageRecord.seq > last, UsageRecord.seq <= upto)
                            .order_by(UsageRecord.seq).limit(chunk)).all()
        if not rows:
            return _Walk(checked, last, prev, None)
        for seq, at, actor, subject, action, purpose, alert_id, detail, prev_hash, digest in rows:
            if seq != expected:
                gap = (f"record {expected} is missing" if seq == expected + 1
                       else f"records {expected} to {seq - 1} are missing")
                return _Walk(checked, last, prev, (
                    expected, f"{gap} (the chain jumps from {_after(last, base_seq)} to {seq})"))
            own = record_hash(prev_hash, seq=seq, at=at, actor=actor, subject=subject,
                              action=action, purpose=purpose, alert_id=alert_id, detail=detail)
            if own != digest:
                return _Walk(checked, last, prev,
                             (seq, f"record {seq} was edited (its hash does not match)"))
            if prev_hash != prev:
                return _Walk(checked, last, prev, (seq, (
                    f"record {seq} does not follow {_after(last, base_seq)} (its prev_hash "
                    "does not match: one of them was rewritten)")))
            prev, last, expected, checked = digest, seq, seq + 1, checked + 1


def _verify_once(conn: Connection, chunk: int) -> tuple[VerifyResult, Head | None]:
    head = _read_head(conn)
    if head is None:
        first = conn.scalar(select(func.min(UsageRecord.seq)))
        if first is None:
            return VerifyResult(True, 0), None
        return VerifyResult(False, 0, int(first), (
            "the usage head is missing, so the newest records cannot be checked")), None
    before = conn.scalar(select(func.min(UsageRecord.seq)).where(
        UsageRecord.seq <= select(_HEAD.c.base_seq).where(_HEAD.c.id == HEAD_ID)
        .scalar_subquery()))
    if before is not None:
        return VerifyResult(False, 0, int(before), (
            f"record {before} lies before the chain's anchor (record {head.base_seq}): "
            "it should have been purged, or was put there")), head
    walk = _walk(conn, head.base_seq, head.base_hash, head.seq, chunk)
    if walk.broken is not None:
        return VerifyResult(False, walk.checked, *walk.broken), head
    if walk.last_seq < head.seq:
        return VerifyResult(False, walk.checked, walk.last_seq + 1, (
            f"the newest records after {walk.last_seq} were deleted "
            f"(the head says {head.seq})")), head
    if walk.last_hash != head.hash:
        return VerifyResult(False, walk.checked, walk.last_seq, (
            f"{_after(walk.last_seq, head.base_seq)} does not match the head's hash "
            "(the record or the head was rewritten)")), head
    beyond = conn.scalar(select(func.min(UsageRecord.seq)).where(
        UsageRecord.seq > select(_HEAD.c.seq).where(_HEAD.c.id == HEAD_ID).scalar_subquery()))
    if beyond is not None:
        return VerifyResult(False, walk.checked, int(beyond), (
            f"record {beyond} is past the head (record {head.seq}): it was written "
            "outside the chain")), head
    return VerifyResult(True, walk.checked), head


def verify(session: Session, *, chunk: int = CHUNK) -> VerifyResult:
    """Walk the chain from its anchor to its head and say where it breaks.

    Appends running meanwhile do not disturb it (it stops at the head it
    read first); a purge running meanwhile moves the anchor, so a break is
    checked once more from the new anchor before it is reported.
    """
    conn = session.connection()
    result, head = _verify_once(conn, chunk)
    if result.ok or head is None:
        return result
    now = _read_head(conn)
    if now is not None and (now.base_seq, now.base_hash) != (head.base_seq, head.base_hash):
        result, _ = _verify_once(conn, chunk)
    return result


def head_of(session: Session) -> tuple[int, str]:
    """(number, hash) of the newest record, (0, GENESIS) for an empty log:
    what an auditor writes down to notice later if the whole tail was
    rewritten (a chain alone cannot show that)."""
    head = _read_head(session.connection())
    return (0, GENESIS) if head is None else (head.seq, head.hash)


# ------------------------------------------------------------------- reading


def _matching(f: UsageFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter (none: everything)."""
    where: list[ColumnElement[bool]] = []
    if f.subject is not None:
        where.append(UsageRecord.subject == f.subject)
    if f.actor is not None:
        where.append(UsageRecord.actor == f.actor)
    if f.action is not None:
        where.append(UsageRecord.action == f.action)
    if f.since is not None:
        where.append(UsageRecord.at >= f.since)
    if f.until is not None:
        where.append(UsageRecord.at < f.until)
    return where


def _entry(row: Any) -> UsageEntry:
    seq, at, actor, subject, action, purpose, alert_id, detail = row[:8]
    return UsageEntry(seq=int(seq), at=float(at), actor=actor, subject=subject, action=action,
                      purpose=purpose, alert_id=alert_id, detail=detail)


def query(session: Session, f: UsageFilter) -> list[UsageEntry]:
    """Records matching ``f``, newest first, at most ``f.limit`` (and never
    more than QUERY_MAX: a whole log belongs in ``export_csv``)."""
    limit = QUERY_MAX if f.limit is None else min(max(f.limit, 0), QUERY_MAX)
    stmt = select(*_FIELDS).where(*_matching(f)).order_by(UsageRecord.seq.desc()).limit(limit)
    return [_entry(row) for row in session.execute(stmt)]


def iter_records(session: Session, f: UsageFilter, *, chunk: int = CHUNK
                 ) -> Iterator[tuple[UsageEntry, str, str]]:
    """(entry, prev_hash, hash) matching ``f`` oldest first, chunk by chunk;
    with ``f.limit``, only the newest that many (still oldest first)."""
    first = None
    if f.limit is not None:
        if f.limit <= 0:
            return
        first = session.scalar(select(UsageRecord.seq).where(*_matching(f))
                               .order_by(UsageRecord.seq.desc()).offset(f.limit - 1).limit(1))
    last = -1 if first is None else int(first) - 1
    cols = (*_FIELDS, UsageRecord.prev_hash, UsageRecord.hash)
    while True:
        rows: Sequence[Any] = session.execute(
            select(*cols).where(*_matching(f), UsageRecord.seq > last)
            .order_by(UsageRecord.seq).limit(chunk)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row), row[8], row[9]
        last = int(rows[-1][0])


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula
    gets a leading apostrophe (a purpose typed as ``=HYPERLINK(…)`` must not
    run on the auditor's machine). The store keeps the text as typed."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def export_csv(session: Session, f: UsageFilter, out: str | Path | TextIO) -> int:
    """Write the records matching ``f`` (oldest first, with their hashes so
    the copy can be checked against the store) as CSV with a header line;
    returns the number of rows. A path is created readable by its owner
    only: the file names children's tokens and what was done with them."""
    if isinstance(out, (str, Path)):
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            return _write_csv(session, f, fh)
    return _write_csv(session, f, out)


def _write_csv(session: Session, f: UsageFilter, fh: TextIO) -> int:
    writer = csv.writer(fh)
    writer.writerow(CSV_HEADER)
    rows = 0
    for e, prev_hash, digest in iter_records(session, f):
        writer.writerow((e.seq, _iso(e.at), repr(e.at), _cell(e.actor), _cell(e.subject),
                         e.action, _cell(e.purpose), "" if e.alert_id is None else e.alert_id,
                         _cell(e.detail), prev_hash, digest))
        rows += 1
    return rows


def export_detail(f: UsageFilter, rows: int) -> str:
    """The ``detail`` of the "export" record an export of the log writes."""
    return f"usage log, {rows} rows; {describe(f)}"[:500]


# ------------------------------------------------------------------- purging


def purge_before(session: Session, cutoff: float, *, now: float | None = None,
                 actor: str = "retention", record: bool = True, chunk: int = CHUNK) -> int:
    """Remove the records older than ``cutoff`` from the start of the chain
    and move the anchor onto the last one removed, so the rest still
    verifies; returns how many were removed.

    Only a prefix of the chain goes: the first record at or after ``cutoff``
    and everything after it stay (clocks of different writers may disagree,
    and a hole would break the chain). The part removed is verified first:
    ``ChainBroken`` if it does not chain, so tampering is never purged away
    unseen. It commits after every chunk (each moves the anchor with its
    deletions, so the log verifies at every commit and writers wait for one
    chunk at most). With ``record``, a "purge" record saying how many were
    removed is appended and committed at the end (counts, never content).
    """
    removed = 0
    while True:
        conn = session.connection()
        head = _lock_head(conn)
        stop = _purge_stop(conn, head, cutoff, chunk)
        if stop <= head.base_seq:
            session.commit()
            break
        walk = _walk(conn, head.base_seq, head.base_hash, stop, chunk)
        if walk.broken is not None or walk.last_seq != stop:
            session.rollback()
            reason = walk.broken[1] if walk.broken else f"record {walk.last_seq + 1} is missing"
            raise ChainBroken(f"usage log not purged: {reason}")
        follower = conn.scalar(select(UsageRecord.prev_hash).where(UsageRecord.seq == stop + 1))
        if (head.hash if stop == head.seq else follower) != walk.last_hash:
            session.rollback()
            raise ChainBroken(f"usage log not purged: the record after {stop} does not follow "
                              "it")
        gone = conn.execute(delete(_LOG).where(_LOG.c.seq > head.base_seq,
                                               _LOG.c.seq <= stop)).rowcount
        conn.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID)
                     .values(base_seq=stop, base_hash=walk.last_hash))
        session.commit()
        removed += int(gone)
    if record and removed:
        append(session, at=time.time() if now is None else now, actor=actor, subject="",
               action="purge", purpose="retention schedule",
               detail=f"usage log: {removed} records older than {_iso(cutoff)} removed")
        session.commit()
    return removed


def _purge_stop(conn: Connection, head: Head, cutoff: float, chunk: int) -> int:
    """The last record of the next chunk to remove (base_seq: none). Read
    by number, so it costs one chunk however long the log is."""
    rows = conn.execute(select(UsageRecord.seq, UsageRecord.at)
                        .where(UsageRecord.seq > head.base_seq,
                               UsageRecord.seq <= min(head.base_seq + chunk, head.seq))
                        .order_by(UsageRecord.seq)).all()
    stop = head.base_seq
    for seq, at in rows:
        if at >= cutoff:
            break
        stop = int(seq)
    return stop
