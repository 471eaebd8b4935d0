"""device_holdings: which child held a device when

A device's fixes stay after it leaves the registry, and a withdrawal must
find them (``db.tables.DeviceHolding`` says why). Filled from what the
store knows: every registered device is held by its child since its
registration; a device one of a child's alerts names, and not registered
to that child now, was held by it before this migration, until the device
went to the child that holds it now (or until now). That is what the
withdrawal found before holdings were kept: a device named by several
children's alerts is each one's over that time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:00:00.000000
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'device_holdings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.String(length=64), nullable=False),
        sa.Column('child_id', sa.Integer(), nullable=False),
        sa.Column('since', sa.Float(), nullable=False),
        sa.Column('until', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['child_id'], ['children.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_device_holdings_device_id', 'device_holdings', ['device_id'])
    op.create_index('ix_device_holdings_child_id', 'device_holdings', ['child_id'])
    op.execute("INSERT INTO device_holdings (device_id, child_id, since, until) "
               "SELECT id, child_id, registered_at, NULL FROM devices "
               "WHERE child_id IS NOT NULL")
    now = time.time()
    op.get_bind().execute(sa.text(
        "INSERT INTO device_holdings (device_id, child_id, since, until) "
        "SELECT a.device_id, a.child_id, 0, "
        "       COALESCE((SELECT d.registered_at FROM devices d "
        "                 WHERE d.id = a.device_id AND d.child_id IS NOT NULL), :now) "
        "FROM (SELECT DISTINCT device_id, child_id FROM alerts) a "
        "WHERE NOT EXISTS (SELECT 1 FROM devices d "
        "                  WHERE d.id = a.device_id AND d.child_id = a.child_id)"),
        {"now": now})


def downgrade() -> None:
    op.drop_index('ix_device_holdings_child_id', 'device_holdings')
    op.drop_index('ix_device_holdings_device_id', 'device_holdings')
    op.drop_table('device_holdings')
