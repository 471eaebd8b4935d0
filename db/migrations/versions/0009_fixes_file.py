"""SQLite: the fixes and the journal cursors move to their own file
(PostgreSQL: nothing changes)

``db.store`` attaches ``<store>-fixes.sqlite3`` to every connection as
``fixdb``; this moves ``fixes`` and ``cursors`` there, indexes and rows,
so the recorder's fix writes take that file's write lock and never the
main file's, where the engine stores alerts (``db.store`` says why).
Queries keep naming the tables without a schema: SQLite finds a table in
whichever attached file holds it.

The copy is committed before the old tables go: if the upgrade stops in
between, the main file still has them, the revision has not moved, and
the next upgrade copies again over the half-made file. A stale fixes file
(left by a store since deleted) is replaced the same way. An in-memory
store has no second file and keeps one database.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 16:00:00.000000
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

MOVED = ('fixes', 'cursors')
FIXDB = 'fixdb'  # as db.store attaches it (a migration never follows later code)


def upgrade() -> None:
    if _attached():
        _move('main', FIXDB)


def downgrade() -> None:
    if _attached():
        _move(FIXDB, 'main')


def _attached() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == 'sqlite' and FIXDB in {
        row[1] for row in bind.exec_driver_sql("PRAGMA database_list")}


def _move(source: str, target: str) -> None:
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        for table in MOVED:
            made = bind.execute(sa.text(
                f"SELECT type, name, sql FROM {source}.sqlite_master "
                "WHERE tbl_name = :t AND sql IS NOT NULL ORDER BY type = 'index'"),
                {"t": table}).all()
            if not made:
                continue
            bind.exec_driver_sql(f"DROP TABLE IF EXISTS {target}.{table}")
            for kind, name, sql in made:
                bind.exec_driver_sql(_in_schema(sql, kind, name, target))
            bind.exec_driver_sql(f"INSERT INTO {target}.{table} SELECT * FROM {source}.{table}")
    for table in MOVED:
        op.execute(f"DROP TABLE IF EXISTS {source}.{table}")


def _in_schema(sql: str, kind: str, name: str, schema: str) -> str:
    """``CREATE TABLE fixes (…`` as ``CREATE TABLE fixdb.fixes (…`` (and an
    index's name, whose table is then found in the same file)."""
    what = 'TABLE' if kind == 'table' else r'(?:UNIQUE\s+)?INDEX'
    pattern = rf'^(CREATE\s+{what}\s+)(?:"?\w+"?\.)?"?{re.escape(name)}"?'
    made, n = re.subn(pattern, rf'\g<1>{schema}."{name}"', sql, count=1, flags=re.I)
    if n != 1:
        raise RuntimeError(f"cannot move {kind} {name}: {sql[:80]!r}")
    return made
