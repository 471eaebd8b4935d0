"""Day partitions of ``fixes`` on PostgreSQL (SQLite keeps one table).

Why: at 100,000 fixes/s a day is billions of rows, and deleting them one
by one costs more than storing them did. Partitioned by ``t`` (a range per
UTC day, ``fixes_pYYYYMMDD``), a day past retention goes in one catalog
operation (``db.retention`` decides when that is safe). The primary key is
(id, t), as a partitioned table requires; ids still come from one
sequence, but nothing may rely on the store enforcing ``id`` alone unique.

A DEFAULT partition (``fixes_default``) takes every fix no day covers
(a device clock years off, a day not created while the recorder was
down), so no fix is ever refused for its timestamp; a day created later
takes its rows over from there.

Days are created ahead (``AHEAD_DAYS``) when the recorder starts and at
every retention run, so the insert path never waits on DDL. Each change
asks for its locks with a short ``lock_timeout``: it must never hold the
recorder's inserts queued behind it for long, and a day not created now
is created by the next run (its fixes wait safely in the default).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection, text

DAY_S = 86400
AHEAD_DAYS = 2
TABLE = "fixes"
DEFAULT = "fixes_default"
LOCK_TIMEOUT_MS = 2000
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Day:
    """One day partition: its table and the range [lo, hi) of ``t`` it holds."""

    name: str
    lo: float
    hi: float


def name_of(day: int) -> str:
    """``fixes_pYYYYMMDD`` for the UTC day ``day`` (days since the epoch)."""
    return f"{TABLE}_p{time.strftime('%Y%m%d', time.gmtime(day * DAY_S))}"


def partitioned(conn: Connection) -> bool:
    """Whether this store's ``fixes`` is partitioned (PostgreSQL from 0008 on)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"),
                       {"t": TABLE})
    return kind == "p"


def days(conn: Connection) -> list[Day]:
    """The day partitions there are, oldest first (the default is not one)."""
    if not partitioned(conn):
        return []
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"),
        {"t": TABLE})
    out = []
    for name, bound in rows:
        m = _BOUNDS.search(bound)
        if m:
            out.append(Day(name, float(m[1]), float(m[2])))
    return sorted(out, key=lambda d: d.lo)


def ensure(conn: Connection, now: float, ahead: int = AHEAD_DAYS,
           since: float | None = None) -> list[str]:
    """Create the day partitions missing from ``since``'s day (``now``'s by
    default) to ``ahead`` days after ``now``'s, in the caller's transaction
    (which then holds the short lock timeout); returns the tables created.
    A no-op on a store without partitions."""
    if not partitioned(conn):
        return []
    have = {d.lo for d in days(conn)}
    first = int((now if since is None else since) // DAY_S)
    created = []
    for day in range(first, int(now // DAY_S) + ahead + 1):
        if float(day * DAY_S) not in have:
            created.append(_create(conn, day))
    return created


def _create(conn: Connection, day: int) -> str:
    """A standalone table, the default's rows of its day moved in, then
    attached: ATTACH takes a lighter lock on ``fixes`` than CREATE ...
    PARTITION OF, and would refuse while the default holds rows of the day."""
    name, lo, hi = name_of(day), day * DAY_S, (day + 1) * DAY_S
    conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)"))
    conn.execute(text(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE t >= {lo} AND t < {hi} "
                      f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"))
    conn.execute(text(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
                      f"FOR VALUES FROM ({lo}) TO ({hi})"))
    return name


def rows(conn: Connection, day: Day) -> int:
    return int(conn.scalar(text(f"SELECT count(*) FROM {day.name}")) or 0)


def holds_any(conn: Connection, day: Day, device_ids: list[str]) -> bool:
    """Whether the day holds a fix of any of ``device_ids`` (its own index)."""
    if not device_ids:
        return False
    return conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {day.name} "
                            "WHERE device_id = ANY(:ids))"), {"ids": device_ids}) is True


def lock_parent(conn: Connection) -> None:
    """Stop every insert into ``fixes`` until the caller's transaction ends:
    what a drop is decided on cannot change under it. The parent first, as
    inserts and DROP itself lock it, so no lock order can deadlock."""
    conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
    conn.execute(text(f"LOCK TABLE ONLY {TABLE} IN ACCESS EXCLUSIVE MODE"))


def drop(conn: Connection, day: Day) -> None:
    """Drop one day in the caller's transaction (after ``lock_parent``)."""
    conn.execute(text(f"DROP TABLE {day.name}"))
