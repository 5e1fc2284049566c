"""jobs: when retention removed a job's detail (its row stays as the accounting record)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 18:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('expired', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_jobs_retention', 'jobs', ['status', 'expired', 'finished'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_retention', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('expired')
