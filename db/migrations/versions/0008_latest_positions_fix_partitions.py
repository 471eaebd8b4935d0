"""PostgreSQL: fixes partitioned by UTC day, and latest_positions filled
from the fixes already stored (SQLite: nothing changes)

PostgreSQL: the plain table is renamed, a partitioned ``fixes`` (primary
key (id, t), as partitioning requires; the same id sequence) takes its
rows, one partition per day they fall in (within ``BACK_DAYS``) and the
days up to ``AHEAD_DAYS`` ahead, the rest in the DEFAULT partition, and
the old table goes. The rows are copied, so this takes as long as the
fixes stored; ``childsafe db upgrade`` runs it before the services start.
SQLite keeps one table and has no ``latest_positions`` (``db.latest``
says why).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 09:00:00.000000
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# As 0008 knew them (a migration never follows later code).
LATEST = ('device_id', 't', 'lat', 'lon', 'speed', 'bearing', 'accuracy', 'battery', 'flags',
          'reader_id')
FIXES = ('id', *LATEST)
LOCATED = "lat IS NOT NULL AND lon IS NOT NULL"
DAY_S = 86400
AHEAD_DAYS = 2
BACK_DAYS = 400  # older days (a clock far off) wait in the default for retention
COLUMNS = """
    device_id VARCHAR(64) NOT NULL,
    t FLOAT NOT NULL,
    lat FLOAT,
    lon FLOAT,
    speed FLOAT NOT NULL,
    bearing FLOAT NOT NULL,
    accuracy FLOAT,
    battery SMALLINT NOT NULL,
    flags SMALLINT NOT NULL,
    reader_id VARCHAR(64)"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _partition_fixes()
    op.create_table(
        'latest_positions',
        sa.Column('device_id', sa.String(64), primary_key=True),
        sa.Column('t', sa.Float(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('speed', sa.Float(), nullable=False),
        sa.Column('bearing', sa.Float(), nullable=False),
        sa.Column('accuracy', sa.Float(), nullable=True),
        sa.Column('battery', sa.SmallInteger(), nullable=False),
        sa.Column('flags', sa.SmallInteger(), nullable=False),
        sa.Column('reader_id', sa.String(64), nullable=True),
    )
    _fill_latest()


def _partition_fixes() -> None:
    _set_aside('fixes_0007')
    op.execute(f"CREATE TABLE fixes (id BIGINT NOT NULL DEFAULT nextval('fixes_id_seq'),"
               f"{COLUMNS},\n    CONSTRAINT fixes_pkey PRIMARY KEY (id, t)) "
               "PARTITION BY RANGE (t)")
    op.execute("ALTER SEQUENCE fixes_id_seq OWNED BY fixes.id")  # or it goes with the old table
    op.execute("CREATE INDEX ix_fixes_device_t ON fixes (device_id, t)")
    op.execute("CREATE TABLE fixes_default PARTITION OF fixes DEFAULT")
    today = int(time.time() // DAY_S)
    present = op.get_bind().execute(sa.text(
        "SELECT DISTINCT CAST(floor(t / :d) AS BIGINT) FROM fixes_0007"), {"d": DAY_S}).scalars()
    days = {int(d) for d in present if today - BACK_DAYS <= d <= today + AHEAD_DAYS}
    for day in sorted(days | set(range(today, today + AHEAD_DAYS + 1))):
        name = f"fixes_p{time.strftime('%Y%m%d', time.gmtime(day * DAY_S))}"
        op.execute(f"CREATE TABLE {name} PARTITION OF fixes "
                   f"FOR VALUES FROM ({day * DAY_S}) TO ({(day + 1) * DAY_S})")
    _move('fixes_0007', 'fixes')


def _set_aside(name: str) -> None:
    """Rename fixes and what is named after it, so the new table takes the names."""
    op.execute(f"ALTER TABLE fixes RENAME TO {name}")
    op.execute(f"ALTER TABLE {name} RENAME CONSTRAINT fixes_pkey TO {name}_pkey")
    op.execute(f"ALTER INDEX ix_fixes_device_t RENAME TO ix_{name}_device_t")


def _move(source: str, target: str) -> None:
    names = ", ".join(FIXES)
    op.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {source}")
    op.execute(f"DROP TABLE {source}")


def _fill_latest() -> None:
    """Each device's newest located fix, as ``insert_fixes`` would have kept it."""
    names = ", ".join(LATEST)
    op.execute(f"INSERT INTO latest_positions ({names}) "
               f"SELECT DISTINCT ON (device_id) {names} FROM fixes "
               f"WHERE {LOCATED} ORDER BY device_id, t DESC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table('latest_positions')
        _set_aside('fixes_0008')
        op.execute(f"CREATE TABLE fixes (id BIGINT NOT NULL DEFAULT nextval('fixes_id_seq'),"
                   f"{COLUMNS},\n    CONSTRAINT fixes_pkey PRIMARY KEY (id))")
        op.execute("ALTER SEQUENCE fixes_id_seq OWNED BY fixes.id")
        op.execute("CREATE INDEX ix_fixes_device_t ON fixes (device_id, t)")
        _move('fixes_0008', 'fixes')
