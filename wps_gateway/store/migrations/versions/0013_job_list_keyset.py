"""jobs: indexes in the order job lists page through, newest first by (created, id)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12 10:00:00

A job list (OGC API /jobs, ``wps-gateway jobs list``) pages by the key
(created, id): with the key at the end of each index it reads, a page is an
index range however many jobs the store holds, for everybody (created, id),
one user (user, created, id), one group and one status. The (status|user|
group, created) indexes they replace served the same lookups.
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

REPLACED = {'ix_jobs_status_created': 'status', 'ix_jobs_user_created': 'user', 'ix_jobs_group_created': 'group'}


def upgrade() -> None:
    op.create_index('ix_jobs_created_id', 'jobs', ['created', 'id'], unique=False)
    for old, column in REPLACED.items():
        op.create_index(f'ix_jobs_{column}_created_id', 'jobs', [column, 'created', 'id'], unique=False)
        op.drop_index(old, table_name='jobs')


def downgrade() -> None:
    for old, column in REPLACED.items():
        op.create_index(old, 'jobs', [column, 'created'], unique=False)
        op.drop_index(f'ix_jobs_{column}_created_id', table_name='jobs')
    op.drop_index('ix_jobs_created_id', table_name='jobs')
