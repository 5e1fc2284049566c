"""Jobs per process and status without counting the jobs table (see ``store.models.JobCount``).

Triggers append every change to ``job_count_changes``; ``fold_changes`` moves
them into ``job_counts`` (the active dispatcher does it every few seconds) and
``job_counts`` answers with both, so a count is exact the moment a job changes
and costs a few hundred rows, whatever the number of jobs.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, select, union_all, update
from sqlalchemy.orm import Session

from ..store.db import Store
from ..store.models import Job, JobCount, JobCountChange, JobStatus

FOLD_BATCH = 50_000  # changes folded per transaction
# Running jobs none of whose tasks has started: every protocol still shows them accepted (jobs.shown_status).
_PLANNED = select(func.count()).select_from(Job).where(Job.status == JobStatus.RUNNING, Job.started.is_(None))


def job_counts(store: Store) -> dict[tuple[str, str], int]:
    """{(process, status): jobs} over every job in the store."""
    both = union_all(
        select(JobCount.process_id, JobCount.status, JobCount.jobs.label("n")),
        select(JobCountChange.process_id, JobCountChange.status, JobCountChange.delta.label("n")),
    ).subquery()
    query = select(both.c.process_id, both.c.status, func.sum(both.c.n)).group_by(both.c.process_id, both.c.status)
    with store.sessions() as session:
        return {(process, status): int(n) for process, status, n in session.execute(query) if n}


def jobs_by_status(counts: dict[tuple[str, str], int]) -> Counter[str]:
    """The counts per stored status, over every process."""
    total: Counter[str] = Counter()
    for (_, status), n in counts.items():
        total[status] += n
    return total


def shown_jobs_by_status(store: Store, counts: dict[tuple[str, str], int]) -> Counter[str]:
    """The counts per status as users see the jobs: a running job none of whose tasks has started counts as
    accepted. Only running jobs are read to tell (the status index), never the history."""
    total = jobs_by_status(counts)
    if total[JobStatus.RUNNING]:
        with store.sessions() as session:
            planned = min(int(session.scalar(_PLANNED) or 0), total[JobStatus.RUNNING])
        total[JobStatus.RUNNING] -= planned
        total[JobStatus.ACCEPTED] += planned
    return +total  # without the statuses no job has


def fold_changes(store: Store, batch: int = FOLD_BATCH) -> int:
    """Fold the pending changes into ``job_counts``, oldest first; returns how many were folded.

    Each batch is taken with ``DELETE ... RETURNING`` and added in the same
    transaction, so a change is counted exactly once whoever folds at the same
    time (two folders take disjoint rows).
    """
    folded = 0
    while True:
        with store.session() as session:
            taken = session.execute(
                delete(JobCountChange).where(JobCountChange.id.in_(
                    select(JobCountChange.id).order_by(JobCountChange.id).limit(batch).scalar_subquery()))
                .returning(JobCountChange.process_id, JobCountChange.status, JobCountChange.delta)
                .execution_options(synchronize_session=False)).all()
            sums: Counter[tuple[str, str]] = Counter()
            for process, status, delta in taken:
                sums[(process, status)] += delta
            _add(session, sums)
        folded += len(taken)
        if len(taken) < batch:
            return folded


def _add(session: Session, sums: Counter[tuple[str, str]]) -> None:
    """Add to the counters, creating those not there yet (keys in order: concurrent folders never deadlock)."""
    for (process, status), delta in sorted(sums.items()):
        if not delta:
            continue
        done = session.execute(update(JobCount).where(JobCount.process_id == process, JobCount.status == status)
                               .values(jobs=JobCount.jobs + delta).execution_options(synchronize_session=False))
        if not done.rowcount:
            session.execute(JobCount.__table__.insert().values(process_id=process, status=status, jobs=delta))
