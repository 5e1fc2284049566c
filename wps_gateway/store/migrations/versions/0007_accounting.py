"""accounting: engine-charged allocation and who measured usage per attempt; job_usage sums per job

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00

(On main this follows 0006; a branch without 0006 revises 0005.)
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

FIGURES = ('wall_seconds', 'cpu_alloc_seconds', 'cpu_used_seconds', 'mem_alloc_mb_seconds', 'mem_peak_mb_seconds',
           'gpu_seconds')
COUNTS = ('attempts', 'attempts_succeeded', 'attempts_failed', 'attempts_lost', 'attempts_killed',
          'attempts_retried', 'attempts_measured')
ENDED = ('succeeded', 'failed', 'lost', 'killed')


def upgrade() -> None:
    with op.batch_alter_table('task_attempts') as batch:
        batch.add_column(sa.Column('alloc_cpu_seconds', sa.Float(), nullable=True))
        batch.add_column(sa.Column('alloc_mem_mb_seconds', sa.Float(), nullable=True))
        batch.add_column(sa.Column('usage_source', sa.String(length=16), nullable=True))
    op.create_table(
        'job_usage',
        sa.Column('job_id', sa.String(length=36), nullable=False),
        sa.Column('backend', sa.String(length=16), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS],
        *[sa.Column(name, sa.Float(), nullable=False) for name in FIGURES],
        *[sa.Column(f'unsuccessful_{name}', sa.Float(), nullable=False) for name in FIGURES],
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id'),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_jobs_accounting', 'jobs',
                    ['created', 'user', 'group', 'process_id', 'status', 'task_count', 'id'], unique=False)
    _backfill()


def _backfill() -> None:
    """Sum the attempts that ended before this migration, as the dispatcher sums them from now on."""
    a = sa.table('task_attempts', *[sa.column(c) for c in (
        'task_id', 'backend', 'status', 'number', 'cpus', 'mem_mb', 'gpus', 'cpu_seconds', 'mem_peak_mb',
        'wall_seconds', 'alloc_cpu_seconds', 'alloc_mem_mb_seconds')])
    t = sa.table('tasks', sa.column('id'), sa.column('job_id'))
    wall = sa.func.coalesce(a.c.wall_seconds, 0.0)
    per_attempt = {
        'wall_seconds': wall,
        'cpu_alloc_seconds': sa.func.coalesce(a.c.alloc_cpu_seconds, a.c.cpus * wall),
        'cpu_used_seconds': sa.func.coalesce(a.c.cpu_seconds, 0.0),
        'mem_alloc_mb_seconds': sa.func.coalesce(a.c.alloc_mem_mb_seconds, a.c.mem_mb * wall),
        'mem_peak_mb_seconds': sa.func.coalesce(a.c.mem_peak_mb, 0.0) * wall,
        'gpu_seconds': a.c.gpus * wall,
    }
    ok = a.c.status == 'succeeded'

    def count(condition):
        return sa.func.sum(sa.case((condition, 1), else_=0))

    columns = {
        'job_id': t.c.job_id,
        'backend': sa.func.max(a.c.backend),
        'attempts': sa.func.count(),
        'attempts_succeeded': count(ok),
        'attempts_failed': count(a.c.status == 'failed'),
        'attempts_lost': count(a.c.status == 'lost'),
        'attempts_killed': count(a.c.status == 'killed'),
        'attempts_retried': count(a.c.number > 1),
        'attempts_measured': count(a.c.cpu_seconds.is_not(None)),
        **{name: sa.func.sum(value) for name, value in per_attempt.items()},
        **{f'unsuccessful_{name}': sa.func.sum(sa.case((ok, 0.0), else_=value)) for name, value in per_attempt.items()},
    }
    query = (sa.select(*[value.label(name) for name, value in columns.items()])
             .select_from(a.join(t, t.c.id == a.c.task_id)).where(a.c.status.in_(ENDED)).group_by(t.c.job_id))
    usage = sa.table('job_usage', *[sa.column(name) for name in columns])
    op.execute(usage.insert().from_select(list(columns), query))


def downgrade() -> None:
    op.drop_index('ix_jobs_accounting', table_name='jobs')
    op.drop_table('job_usage')
    with op.batch_alter_table('task_attempts') as batch:
        batch.drop_column('usage_source')
        batch.drop_column('alloc_mem_mb_seconds')
        batch.drop_column('alloc_cpu_seconds')
