"""privacy: guardians, consent, the location-usage log, reveals, disclosures

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 23:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'guardians',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(80), nullable=False),
        sa.Column('phone', sa.String(40), server_default='', nullable=False),
        sa.Column('email', sa.String(120), server_default='', nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
    )
    op.create_table(
        'guardianships',
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), primary_key=True),
        sa.Column('guardian_id', sa.Integer(), sa.ForeignKey('guardians.id'),
                  primary_key=True),
        sa.Column('relation', sa.String(20), server_default='', nullable=False),
    )
    op.create_table(
        'consents',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=False),
        sa.Column('guardian_id', sa.Integer(), sa.ForeignKey('guardians.id'), nullable=True),
        sa.Column('services', sa.String(60), nullable=False),
        sa.Column('age_band', sa.String(8), nullable=False),
        sa.Column('given_at', sa.Float(), nullable=False),
        sa.Column('recorded_by', sa.String(64), server_default='', nullable=False),
        sa.Column('withdrawn_at', sa.Float(), nullable=True),
        sa.Column('withdrawn_by', sa.String(64), server_default='', nullable=False),
    )
    op.create_index('ix_consents_child_id', 'consents', ['child_id'])
    # the registry's fingerprint, read every second by the gateway and the
    # engine (db.consent_version, db.registry), is answered from these
    op.create_index('ix_consents_withdrawn_at', 'consents', ['withdrawn_at'])
    op.create_index('ix_devices_registered_at', 'devices', ['registered_at'])
    op.create_table(
        'usage_log',
        sa.Column('seq', sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(64), nullable=False),
        sa.Column('subject', sa.String(32), nullable=False),
        sa.Column('action', sa.String(24), nullable=False),
        sa.Column('purpose', sa.String(200), server_default='', nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.Column('detail', sa.String(500), server_default='', nullable=False),
        sa.Column('prev_hash', sa.String(64), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
    )
    op.create_index('ix_usage_log_at', 'usage_log', ['at'])
    op.create_index('ix_usage_log_subject', 'usage_log', ['subject'])
    op.create_table(
        'usage_head',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('base_seq', sa.BigInteger(), nullable=False),
        sa.Column('base_hash', sa.String(64), nullable=False),
    )
    op.create_table(
        'reveals',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('child_id', sa.Integer(), sa.ForeignKey('children.id'), nullable=False),
        sa.Column('user', sa.String(64), nullable=False),
        sa.Column('reason', sa.String(200), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(12), nullable=False),
        sa.Column('requested_at', sa.Float(), nullable=False),
        sa.Column('decided_by', sa.String(64), server_default='', nullable=False),
        sa.Column('decided_at', sa.Float(), server_default='0', nullable=False),
        sa.Column('expires_at', sa.Float(), server_default='0', nullable=False),
    )
    op.create_index('ix_reveals_child_id', 'reveals', ['child_id'])
    op.create_table(
        'disclosures',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('alert_id', sa.Integer(), sa.ForeignKey('alerts.id'), nullable=False),
        sa.Column('agency', sa.String(16), nullable=False),
        sa.Column('reason', sa.String(200), nullable=False),
        sa.Column('requested_by', sa.String(64), nullable=False),
        sa.Column('requested_at', sa.Float(), nullable=False),
        sa.Column('state', sa.String(12), nullable=False),
        sa.Column('decided_by', sa.String(64), server_default='', nullable=False),
        sa.Column('decided_at', sa.Float(), server_default='0', nullable=False),
        sa.Column('guardian_notice', sa.String(300), server_default='', nullable=False),
        sa.Column('guardian_notified_at', sa.Float(), server_default='0', nullable=False),
    )
    op.create_index('ix_disclosures_alert_id', 'disclosures', ['alert_id'])


def downgrade() -> None:
    op.drop_index('ix_devices_registered_at', 'devices')
    for table in ('disclosures', 'reveals', 'usage_head', 'usage_log', 'consents',
                  'guardianships', 'guardians'):
        op.drop_table(table)
