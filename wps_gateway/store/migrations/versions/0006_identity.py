"""identity: API keys, quotas, jobs by user and group

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('quotas',
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('cpu_hours', sa.Float(), nullable=True),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('max_running', sa.Integer(), nullable=True),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'name')
    )
    op.create_index('ix_jobs_user_created', 'jobs', ['user', 'created'], unique=False)
    op.create_index('ix_jobs_group_created', 'jobs', ['group', 'created'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_group_created', table_name='jobs')
    op.drop_index('ix_jobs_user_created', table_name='jobs')
    op.drop_table('quotas')
    op.drop_table('api_keys')
