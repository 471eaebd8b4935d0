"""journal cursors, first trigger times

Each consumer's place in the gateway's journal, so that a restart resumes
where it left off (console.journal); and the device time of the trigger
that opened each alert, by which a replayed or resent alarm is recognised.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cursors',
        sa.Column('name', sa.String(32), primary_key=True),
        sa.Column('epoch', sa.String(32), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_trigger_at', sa.Float(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('first_trigger_at')
    op.drop_table('cursors')
