"""Applying the retention schedule (``models.retention``) to the store.

What goes:

- routine fixes older than ``fix_s``;
- every fix of a child whose consent is withdrawn (it has consents and none
  still in force), however recent: the fixes of the devices it held, while
  it held them (``db.holdings``);
- bus events older than ``usage_s``, access-log rows older than ``access_s``,
  usage-log records older than ``usage_s`` (``db.usage_log.purge_before``);
- evidence (rows and files) of alerts closed more than ``case_hold_s`` ago;
- a latest position whose fix went: it falls back to the newest fix kept.

What stays: a fix of an alert's device, or of any device registered to its
child, inside the case window [opened − ``case_lead_s``, closed] (open
cases: until now and beyond) while the case is open or closed less than
``case_hold_s`` ago — incident data stays with its case, even past a
withdrawal.

On PostgreSQL a day past ``fix_s`` goes whole (``db.partitions``) when no
held case can have a fix in it. Other deletes go in chunks of ``CHUNK``
rows, each committed on its own, so a purge of millions never holds the
store's write lock for more than a moment; a purge cut short (the store
refused) is simply finished by the next one. What was removed is then
written as one "purge" usage record (counts, never content), only when
something was.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    CursorResult,
    Result,
    Table,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from db import holdings, latest, partitions, usage_log
from db.tables import AccessRecord, Alert, Consent, Device, Event, Evidence, Fix
from models.retention import PurgeReport, RetentionPolicy

CHUNK = 20_000
DEVICES_PER_COMMIT = 200
Windows = dict[str, list[tuple[float, float]]]  # device id -> merged [start, end], sorted


def purge(session: Session, now: float, policy: RetentionPolicy, *,
          chunk: int = CHUNK) -> PurgeReport:
    """Remove what the policy no longer allows to keep, as of ``now``; the
    session is committed as it goes (see the module docstring)."""
    report = PurgeReport()
    partitions.ensure(session.connection(), now)  # the days ahead, before they are needed
    session.commit()
    hold_start = now - policy.case_hold_s
    windows = case_windows(session, now, policy)
    spans = withdrawn_spans(session)
    # A withdrawn child's data stays only while an open case needs it (§24).
    # A device it held all along is its alone: only its open windows count.
    # One passed to another child keeps that child's windows for the rest.
    withdrawn = {d for d, s in spans.items() if s == [holdings.WHOLE]}
    passed = {d: s for d, s in spans.items() if d not in withdrawn}
    open_windows = case_windows(session, now, policy, open_only=True)
    for device in withdrawn:
        if device in open_windows:
            windows[device] = open_windows[device]
        else:
            windows.pop(device, None)
    report.fixes = _old_days(session, now - policy.fix_s, windows)
    report.fixes += _routine_fixes(session, now - policy.fix_s, hold_start, chunk)
    report.fixes += _fixes_by_device(session, windows, withdrawn, now - policy.fix_s)
    report.fixes += _passed_devices(session, passed, open_windows)
    _latest_positions(session, now - policy.fix_s, set(spans))
    report.events = _older(session, cast(Table, Event.__table__), Event.id, Event.ts,
                           now - policy.usage_s, chunk)
    report.access = _older(session, cast(Table, AccessRecord.__table__), AccessRecord.id,
                           AccessRecord.at, now - policy.access_s, chunk)
    _evidence(session, hold_start, policy.evidence_dir, report, chunk)
    try:
        report.usage = usage_log.purge_before(session, now - policy.usage_s, now=now,
                                              record=False)
    except usage_log.ChainBroken as exc:
        report.usage_error = str(exc)
    if report.removed:
        usage_log.append(session, at=now, actor="retention", subject="", action="purge",
                         purpose="retention schedule", detail=report.detail()[:500])
    session.commit()
    return report


def _deleted(result: Result[Any] | CursorResult[Any]) -> int:
    """Rows a DELETE removed (a DML statement's result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


# ---------------------------------------------------------------- the cases


def _closed_at() -> ColumnElement[float]:
    """When an alert was closed; rows from before the lifecycle columns
    (resolved_at 0) fall back to their last change, then their opening."""
    return case((Alert.resolved_at > 0, Alert.resolved_at),
                (Alert.updated_at > 0, Alert.updated_at), else_=Alert.opened_at)


def _held(hold_start: float) -> ColumnElement[bool]:
    """Alerts whose case keeps its data: open, or closed since ``hold_start``."""
    return or_(Alert.state != "resolved", _closed_at() >= hold_start)


def _held_devices(hold_start: float) -> CompoundSelect[str]:
    """Devices whose fixes a held case may keep: the alert's own, and every
    device registered to the alert's child (the engine draws a case's
    trail from all of them)."""
    own = select(Alert.device_id).where(_held(hold_start))
    siblings = (select(Device.id).join(Alert, Alert.child_id == Device.child_id)
                .where(_held(hold_start)))
    return own.union(siblings)


def case_windows(session: Session, now: float, policy: RetentionPolicy,
                 open_only: bool = False) -> Windows:
    """Per device, the time ranges its held cases keep (``open_only``: its
    open cases alone, all a withdrawn child's data may stay for)."""
    held = Alert.state != "resolved" if open_only else _held(now - policy.case_hold_s)
    rows = session.execute(
        select(Alert.device_id, Device.id, Alert.state, Alert.opened_at, _closed_at())
        .outerjoin(Device, Device.child_id == Alert.child_id).where(held))
    spans: dict[str, set[tuple[float, float]]] = {}
    for device_id, sibling, state, opened_at, closed_at in rows:
        span = (float(opened_at) - policy.case_lead_s,
                math.inf if state != "resolved" else float(closed_at))
        for device in {device_id, sibling} - {None}:
            spans.setdefault(device, set()).add(span)
    return {device: holdings.merged(list(s)) for device, s in spans.items()}


def withdrawn_spans(session: Session) -> holdings.Spans:
    """The devices of children whose every consent is withdrawn, with the
    spans of fix time that are theirs (``db.holdings``)."""
    children = (select(Consent.child_id).group_by(Consent.child_id)
                .having(func.count(Consent.withdrawn_at) == func.count()))
    return holdings.spans_of(session, children)


# ------------------------------------------------------------------- fixes


def _old_days(session: Session, cutoff: float, windows: Windows) -> int:
    """PostgreSQL's bulk: each day partition wholly before ``cutoff``, dropped
    unless a held case may keep a fix in it.

    A fix older than ``cutoff`` stays only inside a window of its device, so
    a day no window overlaps holds nothing to keep, and a day some windows
    overlap is dropped only when none of their devices has a fix in it
    (checked again under the lock that the drop takes, so no late insert
    slips in between). A day that must stay is left to the row sweeps,
    which delete its routine rows only."""
    removed = 0
    for day in partitions.days(session.connection()):
        if day.hi > cutoff:
            break
        at_risk = sorted(d for d, spans in windows.items()
                         if any(start < day.hi and end >= day.lo for start, end in spans))
        conn = session.connection()
        if partitions.holds_any(conn, day, at_risk):
            continue
        n = partitions.rows(conn, day)
        session.commit()  # the count took its time; the lock below must not
        conn = session.connection()
        partitions.lock_parent(conn)
        if partitions.holds_any(conn, day, at_risk):
            session.rollback()
            continue
        partitions.drop(conn, day)
        session.commit()
        removed += n
    return removed


def _routine_fixes(session: Session, cutoff: float, hold_start: float, chunk: int) -> int:
    """The bulk on SQLite, and what ``_old_days`` left on PostgreSQL: old
    fixes of devices with no held case, by id ranges of ``chunk`` rows
    (ranges, never keys: on PostgreSQL only (id, t) is unique). Fixes are
    stored roughly in time order, so this deletes whole stretches of the
    table; it stops at the first range with nothing older than ``cutoff``,
    and ``_fixes_by_device`` finds what lies beyond."""
    held = _held_devices(hold_start)
    first = session.scalar(select(func.min(Fix.id)))
    if first is None:
        return 0
    last, removed = int(first) - 1, 0
    while True:
        hi = session.scalar(select(Fix.id).where(Fix.id > last).order_by(Fix.id)
                            .offset(chunk - 1).limit(1))
        if hi is None:
            hi = session.scalar(select(func.max(Fix.id)).where(Fix.id > last))
            if hi is None:
                break
        in_range = (Fix.id > last, Fix.id <= hi)
        if not session.scalar(select(func.count()).select_from(Fix)
                              .where(*in_range, Fix.t < cutoff)):
            break
        removed += _deleted(session.execute(delete(Fix).where(
            *in_range, Fix.t < cutoff, Fix.device_id.not_in(held))))
        session.commit()
        last = int(hi)
    return removed


def _gaps(keep: list[tuple[float, float]], upto: float
          ) -> Iterable[tuple[float | None, float | None]]:
    """The open ranges (lo, hi) outside ``keep`` and below ``upto`` (None:
    unbounded); the kept ranges' ends are themselves kept."""
    lo: float | None = None
    for start, end in keep:
        if start >= upto:
            break
        if lo is None or start > lo:
            yield lo, start
        lo = end
        if end >= upto:
            return
    yield lo, None if math.isinf(upto) else upto


_FIXES = cast(Table, Fix.__table__)
# The next devices that have fixes, straight from the (device_id, t) index:
# a loose index scan, one probe per device, as one statement per batch.
_NEXT_DEVICES = """
WITH RECURSIVE d(id) AS (
    SELECT (SELECT min(device_id) FROM fixes WHERE device_id {op} :after)
    UNION ALL
    SELECT (SELECT min(f.device_id) FROM fixes f WHERE f.device_id > d.id)
    FROM d WHERE d.id IS NOT NULL
)
SELECT id FROM d WHERE id IS NOT NULL LIMIT :n
"""
_FIRST_DEVICES = text(_NEXT_DEVICES.format(op=">="))
_LATER_DEVICES = text(_NEXT_DEVICES.format(op=">"))
_OLD_FIXES_OF = delete(_FIXES).where(_FIXES.c.device_id.in_(bindparam("ids", expanding=True)),
                                     _FIXES.c.t < bindparam("cutoff"))


def _fixes_by_device(session: Session, windows: Windows, withdrawn: set[str],
                     cutoff: float, batch: int = DEVICES_PER_COMMIT) -> int:
    """Device by device along the (device_id, t) index: what the id sweep
    left (fixes stored out of time order), held devices' fixes outside
    their case windows, and every fix of a withdrawn child outside them.
    Devices are found in the index itself, so one no longer registered is
    swept too; plain devices go ``batch`` to a statement."""
    removed = 0
    after, query = "", _FIRST_DEVICES
    while True:
        conn = session.connection()
        devices = list(conn.execute(query, {"after": after, "n": batch}).scalars())
        if not devices:
            break
        plain = [d for d in devices if d not in windows and d not in withdrawn]
        if plain:
            removed += _deleted(conn.execute(_OLD_FIXES_OF, {"ids": plain, "cutoff": cutoff}))
        for device_id in devices:
            if device_id in windows or device_id in withdrawn:
                upto = math.inf if device_id in withdrawn else cutoff
                removed += _outside_windows(conn, device_id, windows.get(device_id, []), upto)
        session.commit()
        after, query = devices[-1], _LATER_DEVICES
    return removed


def _passed_devices(session: Session, passed: holdings.Spans, open_windows: Windows) -> int:
    """A withdrawn child's fixes from devices another child held too: those
    of its spans, outside its open cases' windows."""
    removed = 0
    for device_id, spans in passed.items():
        conn = session.connection()
        for span in spans:
            removed += _outside_windows(conn, device_id, open_windows.get(device_id, []),
                                        math.inf, span)
        session.commit()
    return removed


def _outside_windows(conn: Connection, device_id: str, keep: list[tuple[float, float]],
                     upto: float, within: holdings.Span = holdings.WHOLE) -> int:
    """Delete the device's fixes outside ``keep`` below ``upto``, of those
    ``within`` (both ends included)."""
    removed = 0
    first, last = within
    for lo, hi in _gaps(keep, upto):
        if (lo is not None and lo >= last) or (hi is not None and hi <= first):
            continue
        where = [_FIXES.c.device_id == device_id]
        if lo is not None:
            where.append(_FIXES.c.t > lo)
        if hi is not None:
            where.append(_FIXES.c.t < hi)
        if first > -math.inf:
            where.append(_FIXES.c.t >= first)
        if last < math.inf:
            where.append(_FIXES.c.t <= last)
        removed += _deleted(conn.execute(delete(_FIXES).where(*where)))
    return removed


def _latest_positions(session: Session, cutoff: float, withdrawn: set[str]) -> None:
    """Re-derive every latest position whose fix is gone: only rows older
    than ``cutoff`` or of a withdrawn device can have lost theirs (this
    purge's, or one cut short before it got here)."""
    stale = latest.orphaned(session.connection(), cutoff, withdrawn)
    for i in range(0, len(stale), latest.CHUNK):
        latest.refresh(session.connection(), stale[i:i + latest.CHUNK])
        session.commit()


# ------------------------------------------------------------- logs, evidence


def _older(session: Session, table: Table, key: InstrumentedAttribute[int],
           column: InstrumentedAttribute[float], cutoff: float, chunk: int) -> int:
    """Delete rows whose ``column`` is before ``cutoff``, ``chunk`` at a time."""
    removed = 0
    while True:
        batch = select(key).where(column < cutoff).limit(chunk).scalar_subquery()
        n = _deleted(session.execute(delete(table).where(key.in_(batch))))
        session.commit()
        removed += n
        if n < chunk:
            return removed


def _evidence(session: Session, hold_start: float, folder: Path | None, report: PurgeReport,
              chunk: int) -> None:
    """Evidence of cases closed before ``hold_start``: the file first, then
    the row, so a purge cut short leaves a row without its file (removed
    next time), never a file no row names."""
    while True:
        rows = session.execute(
            select(Evidence.id, Evidence.path).join(Alert, Evidence.alert_id == Alert.id)
            .where(Alert.state == "resolved", _closed_at() < hold_start)
            .order_by(Evidence.id).limit(chunk)).all()
        if not rows:
            return
        for _, path in rows:
            outcome = _remove_file(path, folder)
            report.evidence_files += outcome == "removed"
            report.files_left += outcome == "outside"
        session.execute(delete(Evidence).where(Evidence.id.in_([r[0] for r in rows])))
        session.commit()
        report.evidence += len(rows)


def _remove_file(path: str, folder: Path | None) -> str:
    """"removed", "missing", or "outside" (not under ``folder``: left alone)."""
    if folder is None or not path:
        return "outside"
    root = folder.resolve()
    candidate = Path(path) if Path(path).is_absolute() else root / path
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):
        return "outside"
    if real == root or not real.is_relative_to(root):
        return "outside"
    try:
        real.unlink()
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "outside"
    parent = real.parent
    if parent != root:  # the case's folder, once its last file is gone
        with contextlib.suppress(OSError):  # not empty: other clips of the case
            parent.rmdir()
    return "removed"
