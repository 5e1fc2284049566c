"""console: live scheduling limits, operator requests, job counts kept by triggers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# Every change of a job's (process, status) appends a -1 and a +1 to job_count_changes: inserts only, so
# concurrent writers never wait on a counter row. The active dispatcher folds them into job_counts.
# A later migration that rebuilds ``jobs`` on SQLite (batch_alter_table copies the table) drops these
# triggers with it and must create them again.
SQLITE_TRIGGERS = (
    """CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
         INSERT INTO job_count_changes (process_id, status, delta) VALUES (NEW.process_id, NEW.status, 1);
       END""",
    """CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
         INSERT INTO job_count_changes (process_id, status, delta) VALUES (OLD.process_id, OLD.status, -1);
       END""",
    """CREATE TRIGGER jobs_count_update AFTER UPDATE OF status, process_id ON jobs
       WHEN OLD.status IS NOT NEW.status OR OLD.process_id IS NOT NEW.process_id BEGIN
         INSERT INTO job_count_changes (process_id, status, delta)
         VALUES (OLD.process_id, OLD.status, -1), (NEW.process_id, NEW.status, 1);
       END""",
)
POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION wps_job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP <> 'INSERT' THEN
           INSERT INTO job_count_changes (process_id, status, delta) VALUES (OLD.process_id, OLD.status, -1);
         END IF;
         IF TG_OP <> 'DELETE' THEN
           INSERT INTO job_count_changes (process_id, status, delta) VALUES (NEW.process_id, NEW.status, 1);
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER jobs_count_insert_delete AFTER INSERT OR DELETE ON jobs
       FOR EACH ROW EXECUTE FUNCTION wps_job_count_change()""",
    """CREATE TRIGGER jobs_count_update AFTER UPDATE OF status, process_id ON jobs FOR EACH ROW
       WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.process_id IS DISTINCT FROM NEW.process_id)
       EXECUTE FUNCTION wps_job_count_change()""",
)


def upgrade() -> None:
    op.create_table(
        'scheduling_limits',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(length=128), nullable=False),
        sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'name'),
    )
    op.create_table(
        'operator_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('job_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('value', sa.Integer(), nullable=True),
        sa.Column('requested_by', sa.String(length=128), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('handled', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_operator_requests_open', 'operator_requests', ['handled', 'id'], unique=False)
    op.create_index('ix_operator_requests_job', 'operator_requests', ['job_id', 'id'], unique=False)
    op.create_table(
        'job_counts',
        sa.Column('process_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('jobs', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('process_id', 'status'),
    )
    op.create_table(
        'job_count_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('process_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('delta', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO job_counts (process_id, status, jobs) "
               "SELECT process_id, status, COUNT(*) FROM jobs GROUP BY process_id, status")
    for statement in _triggers():
        op.execute(statement)


def _triggers() -> tuple[str, ...]:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        return SQLITE_TRIGGERS
    if dialect == 'postgresql':
        return POSTGRESQL_TRIGGERS
    raise NotImplementedError(f"job counts need triggers written for {dialect}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS jobs_count_insert_delete ON jobs")
        op.execute("DROP TRIGGER IF EXISTS jobs_count_update ON jobs")
        op.execute("DROP FUNCTION IF EXISTS wps_job_count_change()")
    else:
        for name in ('jobs_count_insert', 'jobs_count_delete', 'jobs_count_update'):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('job_count_changes')
    op.drop_table('job_counts')
    op.drop_index('ix_operator_requests_job', table_name='operator_requests')
    op.drop_index('ix_operator_requests_open', table_name='operator_requests')
    op.drop_table('operator_requests')
    op.drop_table('scheduling_limits')
