"""Keeping ``latest_positions`` (``tables.LatestPosition``) in step with ``fixes``,
on PostgreSQL (SQLite has no such table: its one write lock could not
afford the upsert under load, and its newest fix per device is one
indexed lookup, ``db.location_checks``).

Two rules make the table a pure function of the fixes stored:

- an insert moves a device's row only to a newer located fix (by device
  time), so batches arriving out of order, a journal replayed after a
  crash or a device resending end in the same row (``NEWER_ONLY``);
- whoever deletes fixes re-derives the rows of the devices it deleted
  from (``refresh``): a newer-only upsert cannot move a row back to the
  newest fix that remains, so the row is removed first.

"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, text

COLUMNS = ("device_id", "t", "lat", "lon", "speed", "bearing", "accuracy", "battery", "flags",
           "reader_id")
_NAMES = ", ".join(COLUMNS)
NEWER_ONLY = ("ON CONFLICT (device_id) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
              + " WHERE excluded.t > latest_positions.t")
LOCATED = "lat IS NOT NULL AND lon IS NOT NULL"
CHUNK = 500  # devices to a statement

# One row per statement, so that PostgreSQL never sees two rows for one key
# in an ON CONFLICT; the (device_id, t) index finds it backwards.
_NEWEST_OF = text(f"INSERT INTO latest_positions ({_NAMES}) SELECT {_NAMES} FROM fixes "
                  f"WHERE device_id = :d AND {LOCATED} ORDER BY t DESC LIMIT 1 {NEWER_ONLY}")
_FORGET = text("DELETE FROM latest_positions WHERE device_id IN :ids").bindparams(
    bindparam("ids", expanding=True))
_GONE = """
SELECT l.device_id FROM latest_positions l
WHERE {which} AND NOT EXISTS (
    SELECT 1 FROM fixes f
    WHERE f.device_id = l.device_id AND f.t = l.t AND f.lat IS NOT NULL AND f.lon IS NOT NULL)
"""
_GONE_OLDER = text(_GONE.format(which="l.t < :cutoff"))
_GONE_OF = text(_GONE.format(which="l.device_id IN :ids")).bindparams(
    bindparam("ids", expanding=True))


def refresh(conn: Connection, device_ids: Iterable[str]) -> int:
    """Re-derive these devices' rows from the fixes that remain, in the
    caller's transaction; returns the devices looked at (none on SQLite)."""
    if conn.dialect.name != "postgresql":
        return 0
    ids = sorted(set(device_ids))  # one lock order, whoever else upserts
    for i in range(0, len(ids), CHUNK):
        part = ids[i:i + CHUNK]
        conn.execute(_FORGET, {"ids": part})
        conn.execute(_NEWEST_OF, [{"d": d} for d in part])
    return len(ids)


def orphaned(conn: Connection, cutoff: float, devices: Iterable[str] = ()) -> list[str]:
    """Devices whose row names a fix no longer stored, among rows older than
    ``cutoff`` and the rows of ``devices``: all a purge that removed fixes
    older than ``cutoff``, and any fix of ``devices``, can have orphaned."""
    if conn.dialect.name != "postgresql":
        return []
    out = set(conn.execute(_GONE_OLDER, {"cutoff": cutoff}).scalars())
    wanted = sorted(set(devices))
    for i in range(0, len(wanted), CHUNK):
        out.update(conn.execute(_GONE_OF, {"ids": wanted[i:i + CHUNK]}).scalars())
    return sorted(out)
