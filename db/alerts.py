"""Alert rows and their history: the store's side of ``models.alerts``.

The engine holds the live ``AlertView`` of every unresolved alert and is
the only writer; each change is written whole (``save``) with its history
line in the caller's transaction, so the row and its history never disagree.
"""

from __future__ import annotations

import math

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from db.tables import Alert, AlertAction, Child
from models.messages import AlertView, HistoryEntry

# AlertView fields stored under the same name (the rest: slot and token come
# from the roster; lat/lon/reader fields may be NULL in the row).
_SAME = ("kind", "priority", "state", "device_id", "place", "zone", "opened_at",
         "position_is_last_known", "version", "owner", "count", "last_trigger_at",
         "hold_reason", "hold_until", "dispatched_to", "dispatch_ref", "outcome",
         "resolved_at", "last_note", "last_actor", "updated_at", "ack_due", "close_due",
         "breaches", "escalated_at", "battery", "battery_trend", "position_from_reader")


def _none_if_nan(v: float) -> float | None:
    return None if not math.isfinite(v) else v


def insert(session: Session, view: AlertView, child_id: int, line: HistoryEntry,
           first_trigger_at: float | None = None) -> int:
    """A new alert and its first history line; returns its id: the view's own
    when it has one (the engine numbers alerts itself, so it can publish one
    before the store takes it), else the one the store gave.
    ``first_trigger_at``: the opening trigger's device time (default: the
    view's last), by which a repeat of it is recognised after a restart."""
    values = _columns(view)
    values["child_id"] = child_id
    values["first_trigger_at"] = (view.last_trigger_at if first_trigger_at is None
                                  else first_trigger_at)
    if view.id:
        values["id"] = view.id
    result = session.execute(_ALERTS.insert(), values)
    alert_id = int(view.id or result.inserted_primary_key[0])  # type: ignore[index]
    append(session, alert_id, line)
    return alert_id


def save(session: Session, view: AlertView, line: HistoryEntry) -> None:
    """Write the alert's new state and its history line; the caller commits."""
    result = session.execute(_UPDATE, {"alert_id": view.id, **_columns(view)})
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise LookupError(f"no alert {view.id} in the store")
    append(session, view.id, line)


# Core statements, not ORM objects: every operator command and every alert
# the engine opens writes here, and the unit of work (a get, a flush) was
# most of the engine's time per command (``childsafe bench alerts``).
_ALERTS = Alert.__table__
_UPDATE = _ALERTS.update().where(_ALERTS.c.id == bindparam("alert_id"))
_ACTIONS = AlertAction.__table__.insert()


def _columns(view: AlertView) -> dict[str, object]:
    values: dict[str, object] = {name: getattr(view, name) for name in _SAME}
    values.update(lat=_none_if_nan(view.lat), lon=_none_if_nan(view.lon),
                  acked_by=view.acked_by or None, acked_at=view.acked_at or None,
                  last_reader=view.last_reader or None,
                  last_reader_at=view.last_reader_at or None, steps=",".join(view.steps))
    return values


def append(session: Session, alert_id: int, line: HistoryEntry) -> None:
    session.execute(_ACTIONS, {"alert_id": alert_id, "action": line.action,
                               "actor": line.actor, "at": line.at, "note": line.note,
                               "detail": line.detail[:200], "lat": line.lat, "lon": line.lon})


def view_of(row: Alert, slot: int, token: str, device_kind: str = "") -> AlertView:
    values = {name: getattr(row, name) for name in _SAME}
    return AlertView(
        id=row.id, child_token=token, child_slot=slot, device_kind=device_kind,
        lat=math.nan if row.lat is None else row.lat,
        lon=math.nan if row.lon is None else row.lon,
        acked_by=row.acked_by or "", acked_at=row.acked_at or 0.0,
        last_reader=row.last_reader or "", last_reader_at=row.last_reader_at or 0.0,
        steps=[s for s in row.steps.split(",") if s], **values,
    )


def unresolved(session: Session) -> list[Alert]:
    return list(session.scalars(
        select(Alert).where(Alert.state != "resolved").order_by(Alert.id)))


def since(session: Session, t: float, limit: int) -> list[tuple[Alert, str]]:
    """Alerts opened at or after ``t`` (newest first) with their child's token."""
    rows = session.execute(
        select(Alert, Child.token).join(Child, Alert.child_id == Child.id)
        .where(Alert.opened_at >= t).order_by(Alert.id.desc()).limit(limit))
    return [(a, tok) for a, tok in rows]


def last_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(Alert.id), 0))).scalar_one())


def trigger_times(session: Session, since: float) -> dict[tuple[str, str], set[float]]:
    """The device times that opened or folded into an alert, per (device,
    kind), over alerts opened since ``since``: what a replayed or resent alarm
    is recognised by after an engine restart. (A repeat is filed under the
    alert's device: a child's second device folding in is the rare case.)"""
    out: dict[tuple[str, str], set[float]] = {}
    rows = session.execute(
        select(Alert.id, Alert.device_id, Alert.kind, Alert.first_trigger_at,
               Alert.last_trigger_at).where(Alert.opened_at >= since))
    keys: dict[int, tuple[str, str]] = {}
    for alert_id, device, kind, first, last in rows:
        key = keys[alert_id] = (str(device), str(kind))
        out.setdefault(key, set()).update(t for t in (first, last) if t)
    if keys:
        repeats = session.execute(
            select(AlertAction.alert_id, AlertAction.at)
            .where(AlertAction.action == "repeat", AlertAction.alert_id.in_(list(keys))))
        for alert_id, at in repeats:
            out[keys[alert_id]].add(float(at))
    return out


def history(session: Session, alert_id: int) -> list[HistoryEntry]:
    rows = session.scalars(
        select(AlertAction).where(AlertAction.alert_id == alert_id).order_by(AlertAction.id))
    return [HistoryEntry(action=r.action, actor=r.actor, at=r.at, note=r.note,
                         detail=r.detail, lat=r.lat, lon=r.lon) for r in rows]
