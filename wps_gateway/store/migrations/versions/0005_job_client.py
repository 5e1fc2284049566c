"""jobs: the submitting client and the job's task count, for per-client limits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 16:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('client', sa.String(length=160), nullable=False, server_default=''))
        batch.add_column(sa.Column('task_count', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_jobs_client_status', 'jobs', ['client', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_client_status', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('task_count')
        batch.drop_column('client')
