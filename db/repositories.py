"""Queries and writes the backend processes need, one function per use.

Every function takes a Session (or Connection) made by its caller: one per
command or per message batch, never shared across threads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import BigInteger, Connection, cast, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from db import latest
from db.tables import (
    Alert,
    Camera,
    Child,
    Device,
    Event,
    Evidence,
    Fix,
    TimetableSlot,
    UnregisteredDevice,
    Zone,
)


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One device the gateway accepts and the engine tracks."""

    device_id: str
    kind: str
    child_id: int
    token: str
    zone_id: int | None


class CommandRejected(Exception):
    """A command the store cannot apply (an unknown camera or alert)."""


def roster(session: Session) -> list[RosterEntry]:
    rows = session.execute(
        select(Device.id, Device.kind, Child.id, Child.token, Child.zone_id)
        .join(Child, Device.child_id == Child.id)
        .where(Child.removed_at.is_(None))
        .order_by(Child.id, Device.id)
    )
    return [RosterEntry(*row) for row in rows]


def children_with_timetables(session: Session) -> set[int]:
    return set(session.scalars(select(TimetableSlot.child_id).distinct()))


def profiles(session: Session) -> dict[int, str]:
    """Child id -> how the child travels (walking | bus), for unusual movement."""
    return {cid: profile for cid, profile in session.execute(select(Child.id, Child.profile))}


def registered_device_ids(session: Session) -> set[str]:
    return set(session.scalars(select(Device.id).where(Device.child_id.is_not(None))))


def device_children(session: Session) -> dict[str, int]:
    """Registered device id -> its child's id (what the gateway checks consent by)."""
    return dict(session.execute(  # type: ignore[arg-type]
        select(Device.id, Device.child_id).where(Device.child_id.is_not(None))).all())


def devices_of(session: Session, child_id: int) -> list[str]:
    """The devices registered to one child."""
    return list(session.scalars(select(Device.id).where(Device.child_id == child_id)
                                .order_by(Device.id)))


def devices(session: Session) -> list[tuple[str, str, str]]:
    """(device id, kind, child token or '-') for ``childsafe devices list``."""
    rows = session.execute(
        select(Device.id, Device.kind, Child.token)
        .outerjoin(Child, Device.child_id == Child.id)
        .order_by(Device.id)
    )
    return [(d, k, t or "-") for d, k, t in rows]


def zones(session: Session) -> list[Zone]:
    return list(session.scalars(select(Zone).order_by(Zone.id)))


FIX_COLUMNS = ("t", "lat", "lon", "speed", "bearing", "accuracy", "battery", "flags")
_STAGE_COLUMNS = tuple(c for c in Fix.__table__.columns if c.name != "id")
_STAGE_NAMES = ", ".join(c.name for c in _STAGE_COLUMNS)
# Per connection, emptied at every commit; a rolled-back creation is simply
# made again by the next batch.
_STAGE_DDL = ("CREATE TEMP TABLE IF NOT EXISTS fix_stage ("
              + ", ".join(f"{c.name} {c.type.compile(postgresql.dialect())}"
                          for c in _STAGE_COLUMNS)
              + ") ON COMMIT DELETE ROWS")
# One round trip: the batch into fixes, its newest located fix per device
# into latest_positions, and the stage emptied for the next batch of the
# same transaction. TRUNCATE, not DELETE: the recorder writes up to 200
# batches in a transaction, and each would scan the dead rows of those
# before it (100 batches a transaction measured 35k fixes/s against 29k);
# the new file it takes is made once per transaction.
_FROM_STAGE = (
    f"INSERT INTO fixes ({_STAGE_NAMES}) SELECT {_STAGE_NAMES} FROM fix_stage; "
    f"INSERT INTO latest_positions ({', '.join(latest.COLUMNS)}) "
    f"SELECT DISTINCT ON (device_id) {', '.join(latest.COLUMNS)} FROM fix_stage "
    f"WHERE {latest.LOCATED} ORDER BY device_id, t DESC {latest.NEWER_ONLY}; "
    "TRUNCATE fix_stage")


@dataclass(frozen=True, slots=True)
class FixRows:
    """One batch of fixes as the driver takes them, built before the write
    transaction opens (on SQLite that transaction holds the one write lock)."""

    names: tuple[str, ...]
    rows: list[tuple[object, ...]]


def fix_rows(device_ids: list[str], cols: dict[str, np.ndarray],
             readers: list[str] | None = None) -> FixRows:
    """``readers`` (``FixBatch.readers``: empty, or a tag reader id per fix,
    "" for none) fills ``reader_id``; a batch without tag reads leaves it NULL."""
    columns: list[Sequence[object]] = [device_ids, *(_nulls(cols[n]) for n in FIX_COLUMNS)]
    names: tuple[str, ...] = ("device_id", *FIX_COLUMNS)
    if readers:
        columns.append([r or None for r in readers])
        names += ("reader_id",)
    return FixRows(names, list(zip(*columns, strict=True)))


def insert_fix_rows(conn: Connection, fixes: FixRows) -> int:
    """Bulk-insert one batch of fixes in the caller's transaction, and on
    PostgreSQL move ``latest_positions`` on.

    This is the recorder's hot path, so it speaks to the driver directly.
    PostgreSQL: one COPY into a temporary stage feeds both tables (COPY
    straight into ``fixes`` could not feed the upsert, and an upsert from
    client-side arrays measured slower). SQLite: executemany on tuples,
    nothing else: the upsert halved its insert rate, and with it the
    recorder held SQLite's one write lock all the time under load, so the
    engine's alert writes waited (SOS p99 495 ms against 144 ms without).
    """
    if not fixes.rows:
        return 0
    names = ", ".join(fixes.names)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(_STAGE_DDL)
            with cur.copy(f"COPY fix_stage ({names}) FROM STDIN") as copy:
                for row in fixes.rows:
                    copy.write_row(row)
            cur.execute(_FROM_STAGE)
    elif conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(fixes.names))
        conn.exec_driver_sql(f"INSERT INTO fixes ({names}) VALUES ({marks})", fixes.rows)
    else:
        raise NotImplementedError(f"no fix store for {conn.dialect.name}")
    return len(fixes.rows)


def insert_fixes(conn: Connection, device_ids: list[str], cols: dict[str, np.ndarray],
                 readers: list[str] | None = None) -> int:
    """``fix_rows`` and ``insert_fix_rows`` in one (tests, imports)."""
    if not device_ids:
        return 0
    return insert_fix_rows(conn, fix_rows(device_ids, cols, readers))


def _nulls(column: np.ndarray) -> list[object]:
    """A column as Python values, NaN as NULL (SQL has no NaN to compare)."""
    if column.dtype.kind == "f" and np.isnan(column).any():
        return [None if v != v else v for v in column.tolist()]
    return column.tolist()


def append_events(conn: Connection, events: list[tuple[str, str, int, float, bytes]]) -> None:
    """Append (topic, origin, seq, ts, body) rows to the event log."""
    if events:
        conn.execute(
            insert(Event),
            [dict(topic=a, origin=b, seq=c, ts=d, body=e) for a, b, c, d, e in events],
        )


def trail(session: Session, device_ids: list[str], t0: float, t1: float,
          limit: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, lat, lon) of the devices' located fixes between t0 and t1, oldest
    first: the trail an alert panel draws. Past ``limit`` the newest are
    kept (where the child is going matters more than where they started)."""
    if not device_ids:
        return np.empty(0), np.empty(0), np.empty(0)
    rows = session.execute(
        select(Fix.t, Fix.lat, Fix.lon)
        .where(Fix.device_id.in_(device_ids), Fix.t >= t0, Fix.t <= t1,
               Fix.lat.is_not(None), Fix.lon.is_not(None))
        .order_by(Fix.t.desc()).limit(limit)).all()
    if not rows:
        return np.empty(0), np.empty(0), np.empty(0)
    arr = np.array(rows[::-1], dtype=float)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def places_visited(session: Session, since: float, bucket_s: float = 300.0
                   ) -> list[tuple[str, float, float, float]]:
    """(device, t, lat, lon): one located fix per device per ``bucket_s``
    since ``since``, for learning children's usual corridors. A scan of the
    retained fixes (days of them): run it off any loop."""
    bucket = cast(Fix.t / bucket_s, BigInteger)  # times are positive: truncation is floor
    rows = session.execute(
        select(Fix.device_id, func.min(Fix.t), func.avg(Fix.lat), func.avg(Fix.lon))
        .where(Fix.t >= since, Fix.lat.is_not(None), Fix.lon.is_not(None))
        .group_by(Fix.device_id, bucket))
    return [(d, float(t), float(lat), float(lon)) for d, t, lat, lon in rows]


def record_unregistered(session: Session,
                        seen: dict[str, tuple[str, float, float, int]]) -> None:
    """Upsert (protocol, first seen, last seen, attempts) per refused id."""
    for device_id, (protocol, first, last, attempts) in seen.items():
        row = session.get(UnregisteredDevice, device_id)
        if row is None:
            session.add(UnregisteredDevice(id=device_id, protocol=protocol, first_seen=first,
                                           last_seen=last, attempts=attempts))
        else:
            row.protocol, row.last_seen, row.attempts = protocol, last, attempts


# ------------------------------------------------------- tag readers (device ingest)

from db.tables import Reader  # noqa: E402  (kept with its section to ease merging)


def readers(session: Session) -> list[Reader]:
    """Every electronic-tag reader: the gateway's reader registry, and the
    readers (with their range) the map draws."""
    return list(session.scalars(select(Reader).order_by(Reader.id)))


def cameras(session: Session) -> list[Camera]:
    return list(session.scalars(select(Camera).order_by(Camera.id)))


def record_evidence(session: Session, alert_id: int | None, camera_id: int, kind: str,
                    path: str, actor: str, t_start: float | None = None,
                    t_end: float | None = None) -> Evidence:
    """An evidence file an operator (or the relay) saved; the caller commits."""
    if session.get(Camera, camera_id) is None:
        raise CommandRejected(f"no camera {camera_id}")
    if alert_id is not None and session.get(Alert, alert_id) is None:
        raise CommandRejected(f"no alert {alert_id}")
    if not actor:
        raise CommandRejected("evidence needs the operator who saved it")
    now = time.time()
    row = Evidence(alert_id=alert_id, camera_id=camera_id, kind=kind, path=path,
                   created_at=now, t_start=now if t_start is None else t_start,
                   t_end=now if t_end is None else t_end, actor=actor)
    session.add(row)
    return row
