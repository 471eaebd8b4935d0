"""journal cursors

Each consumer's place in the gateway's journal, so that a restart resumes
where it left off (console.journal).

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


def downgrade() -> None:
    op.drop_table('cursors')
