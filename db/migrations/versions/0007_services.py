"""services: polygon zones, the change log, timetables, the calendar,
exceptions, the notification outbox, location checks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table('zones') as b:
        b.add_column(sa.Column('shape', sa.Text(), server_default='', nullable=False))
        b.add_column(sa.Column('hours', sa.String(40), server_default='', nullable=False))
        b.add_column(sa.Column('district', sa.String(40), server_default='', nullable=False))
        b.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('children') as b:
        b.add_column(sa.Column('profile', sa.String(12), server_default='walking',
                               nullable=False))
        b.add_column(sa.Column('removed_at', sa.Float(), nullable=True))
    with op.batch_alter_table('guardians') as b:
        b.add_column(sa.Column('token_hash', sa.String(64), nullable=True))
        b.add_column(sa.Column('token_at', sa.Float(), nullable=True))
    op.create_index('ix_guardians_token_hash', 'guardians', ['token_hash'], unique=True)
    op.create_table(
        'changes',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('scope', sa.String(16), nullable=False),
        sa.Column('key', sa.String(64), nullable=False),
        sa.Column('action', sa.String(16), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(64), nullable=False),
        sa.Column('detail', sa.Text(), server_default='', nullable=False),
    )
    op.create_index('ix_changes_scope_id', 'changes', ['scope', 'id'])
    op.create_table(
        'timetable_slots',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=False),
        sa.Column('weekday', sa.SmallInteger(), nullable=False),
        sa.Column('zone_id', sa.Integer(), sa.ForeignKey('zones.id'), nullable=False),
        sa.Column('kind', sa.String(10), nullable=False),
        sa.Column('start_min', sa.SmallInteger(), nullable=False),
        sa.Column('end_min', sa.SmallInteger(), nullable=False),
    )
    op.create_index('ix_timetable_slots_child_id', 'timetable_slots', ['child_id'])
    op.create_table(
        'calendar_days',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('day', sa.String(10), nullable=False),
        sa.Column('zone_id', sa.Integer(), sa.ForeignKey('zones.id'), nullable=True),
        sa.Column('name', sa.String(80), nullable=False),
    )
    op.create_index('ix_calendar_days_day', 'calendar_days', ['day'])
    op.create_table(
        'timetable_exceptions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=False),
        sa.Column('day', sa.String(10), nullable=False),
        sa.Column('kind', sa.String(10), nullable=False),
        sa.Column('zone_id', sa.Integer(), sa.ForeignKey('zones.id'), nullable=True),
        sa.Column('start_min', sa.SmallInteger(), nullable=True),
        sa.Column('end_min', sa.SmallInteger(), nullable=True),
        sa.Column('note', sa.String(200), server_default='', nullable=False),
    )
    op.create_index('ix_timetable_exceptions_child_id', 'timetable_exceptions', ['child_id'])
    op.create_table(
        'notices',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(160), nullable=False, unique=True),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=False),
        sa.Column('guardian_id', sa.Integer(), sa.ForeignKey('guardians.id'), nullable=True),
        sa.Column('kind', sa.String(20), nullable=False),
        sa.Column('zone', sa.String(120), server_default='', nullable=False),
        sa.Column('event_at', sa.Float(), nullable=False),
        sa.Column('channel', sa.String(10), nullable=False),
        sa.Column('address', sa.String(120), nullable=False),
        sa.Column('subject', sa.String(200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('state', sa.String(10), nullable=False),
        sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('next_at', sa.Float(), nullable=False),
        sa.Column('sent_at', sa.Float(), nullable=True),
        sa.Column('last_error', sa.String(300), server_default='', nullable=False),
    )
    op.create_index('ix_notices_child_id', 'notices', ['child_id'])
    op.create_index('ix_notices_state_next_at', 'notices', ['state', 'next_at'])
    op.create_table(
        'location_checks',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('guardian_id', sa.Integer(), sa.ForeignKey('guardians.id'), nullable=False),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=True),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('lat', sa.Float(), nullable=True),
        sa.Column('lon', sa.Float(), nullable=True),
        sa.Column('place', sa.String(80), server_default='', nullable=False),
        sa.Column('fix_age_s', sa.Float(), nullable=True),
        sa.Column('accuracy_m', sa.Float(), nullable=True),
    )
    op.create_index('ix_location_checks_at', 'location_checks', ['at'])
    op.create_index('ix_location_checks_guardian_id', 'location_checks', ['guardian_id'])


def downgrade() -> None:
    for table in ('location_checks', 'notices', 'timetable_exceptions', 'calendar_days',
                  'timetable_slots', 'changes'):
        op.drop_table(table)
    op.drop_index('ix_guardians_token_hash', 'guardians')
    with op.batch_alter_table('guardians') as b:
        b.drop_column('token_at')
        b.drop_column('token_hash')
    with op.batch_alter_table('children') as b:
        b.drop_column('removed_at')
        b.drop_column('profile')
    with op.batch_alter_table('zones') as b:
        for col in ('version', 'district', 'hours', 'shape'):
            b.drop_column(col)
