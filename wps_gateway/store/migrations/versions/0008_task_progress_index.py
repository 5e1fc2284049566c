"""tasks: an index covering the dispatcher's count of a job's tasks by step and status

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 18:00:00
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tasks_job_progress', 'tasks', ['job_id', 'step', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_job_progress', table_name='tasks')
