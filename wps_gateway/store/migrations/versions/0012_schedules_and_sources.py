"""schedules (repeated runs) and source_units (work pulled from order systems)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'schedules',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('process_id', sa.String(length=64), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('parallel', sa.Integer(), nullable=False),
        sa.Column('every', sa.Float(), nullable=False),
        sa.Column('rounds', sa.Integer(), nullable=True),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('round_started', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('user', sa.String(length=128), nullable=False),
        sa.Column('group', sa.String(length=128), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'source_units',
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('job_id', sa.String(length=36), nullable=True),
        sa.Column('unit', sa.JSON(), nullable=False),
        sa.Column('product_type', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('source', 'key'),
    )
    op.create_index('ix_source_units_state', 'source_units', ['source', 'state', 'next_attempt'], unique=False)
    op.create_index('ix_source_units_job', 'source_units', ['job_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_source_units_job', table_name='source_units')
    op.drop_index('ix_source_units_state', table_name='source_units')
    op.drop_table('source_units')
    op.drop_table('schedules')
