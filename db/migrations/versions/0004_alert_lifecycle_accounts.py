"""alert lifecycle and accounts

The alert's whole lifecycle (owner, holds, dispatch, outcome, SLA
deadlines and breaches, folded triggers, procedure steps), notes and
positions in its history, local accounts, their sessions and the access
log. The first state is now called "new" (it was "open").

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ALERT_COLUMNS = [
    ('version', sa.Integer(), '1'), ('owner', sa.String(64), ''), ('count', sa.Integer(), '1'),
    ('last_trigger_at', sa.Float(), '0'), ('hold_reason', sa.String(200), ''),
    ('hold_until', sa.Float(), '0'), ('dispatched_to', sa.String(16), ''),
    ('dispatch_ref', sa.String(60), ''), ('outcome', sa.String(24), ''),
    ('resolved_at', sa.Float(), '0'), ('steps', sa.String(400), ''),
    ('last_note', sa.String(2000), ''), ('last_actor', sa.String(64), ''),
    ('updated_at', sa.Float(), '0'), ('ack_due', sa.Float(), '0'),
    ('close_due', sa.Float(), '0'), ('breaches', sa.SmallInteger(), '0'),
    ('escalated_at', sa.Float(), '0'), ('battery', sa.SmallInteger(), '-1'),
    ('battery_trend', sa.Float(), '0'),
]


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        for name, type_, default in _ALERT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, server_default=default, nullable=False))
    op.execute("UPDATE alerts SET state = 'new' WHERE state = 'open'")

    with op.batch_alter_table('alert_actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.String(2000), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('detail', sa.String(200), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))

    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(32), nullable=False),
        sa.Column('password_hash', sa.String(200), nullable=False),
        sa.Column('roles', sa.String(100), nullable=False),
        sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('locked_until', sa.Float(), server_default='0', nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'user_sessions',
        sa.Column('token_hash', sa.String(64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('console', sa.String(64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('ended_at', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    op.create_index('ix_user_sessions_user_id', 'user_sessions', ['user_id'])
    op.create_table(
        'access_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('user', sa.String(64), nullable=False),
        sa.Column('action', sa.String(40), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('detail', sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_access_log_at', 'access_log', ['at'])


def downgrade() -> None:
    op.drop_index('ix_access_log_at', table_name='access_log')
    op.drop_table('access_log')
    op.drop_index('ix_user_sessions_user_id', table_name='user_sessions')
    op.drop_table('user_sessions')
    op.drop_table('users')
    with op.batch_alter_table('alert_actions', schema=None) as batch_op:
        for name in ('lon', 'lat', 'detail', 'note'):
            batch_op.drop_column(name)
    op.execute("UPDATE alerts SET state = 'open' WHERE state = 'new'")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        for name, _, _ in reversed(_ALERT_COLUMNS):
            batch_op.drop_column(name)
