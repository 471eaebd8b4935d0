"""fix reader ids and alert breadcrumbs

A tag read's fix names the reader that saw the child (NULL for GPS and
carrier fixes); an alert keeps the child's breadcrumb as it was when the
alert opened. Columns are only added (SQLite's ALTER TABLE ADD COLUMN, no
table copy), so a store with millions of fixes upgrades at once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fixes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reader_id', sa.String(length=64), nullable=True))

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_reader', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_reader_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('position_from_reader', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('position_from_reader')
        batch_op.drop_column('last_reader_at')
        batch_op.drop_column('last_reader')

    with op.batch_alter_table('fixes', schema=None) as batch_op:
        batch_op.drop_column('reader_id')
