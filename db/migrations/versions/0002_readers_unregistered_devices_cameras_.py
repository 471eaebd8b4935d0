"""readers, unregistered devices, cameras, evidence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 04:05:03.636979
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cameras',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('agency', sa.String(length=120), nullable=False),
    sa.Column('purpose', sa.String(length=60), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('direction_deg', sa.Float(), nullable=True),
    sa.Column('fov_deg', sa.Float(), nullable=False),
    sa.Column('range_m', sa.Float(), nullable=False),
    sa.Column('ptz', sa.Boolean(), nullable=False),
    sa.Column('stream_url', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('camera_count', sa.Integer(), nullable=False),
    sa.Column('pixels', sa.String(length=40), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('installed', sa.String(length=20), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('data_date', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('unregistered_devices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('readers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('range_m', sa.Float(), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.Column('camera_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('t_start', sa.Float(), nullable=False),
    sa.Column('t_end', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_alert_id'), ['alert_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_alert_id'))

    op.drop_table('evidence')
    op.drop_table('readers')
    op.drop_table('unregistered_devices')
    op.drop_table('cameras')
