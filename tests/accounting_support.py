"""Jobs with attempts of known usage, written as the dispatcher writes them, for the accounting tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wps_gateway.accounting.usage import add_to_job
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, Task, TaskAttempt


@dataclass
class A:
    """One attempt: of task ``task`` (index), its status, what it was given and used."""

    task: int = 0
    status: str = "succeeded"
    cpus: float = 1.0
    mem_mb: float = 1024.0
    gpus: int = 0
    wall: float = 3600.0
    cpu_used: float | None = 1800.0
    peak_mb: float | None = 512.0
    backend: str = "local"
    alloc_cpu: float | None = None
    alloc_mem: float | None = None


@dataclass
class J:
    user: str
    created: datetime
    group: str = ""
    process: str = "proc-a"
    status: str = "successful"
    tasks: int = 1
    attempts: list[A] = field(default_factory=list)


def add_jobs(store: Store, jobs: list[J]) -> list[str]:
    """Write the jobs, their tasks and attempts; every attempt that ended goes into ``job_usage``."""
    ids = []
    with store.session() as session:
        for spec in jobs:
            job = Job(id=str(uuid.uuid4()), process_id=spec.process, process_version="1.0.0", status=spec.status,
                      user=spec.user, group=spec.group, created=spec.created, task_count=spec.tasks)
            session.add(job)
            tasks = [Task(id=f"{job.id}.s.{i}", job=job, seq=i, step="s", index=i) for i in range(spec.tasks)]
            session.add_all(tasks)
            numbers: dict[int, int] = {}
            for a in spec.attempts:
                numbers[a.task] = numbers.get(a.task, 0) + 1
                task = tasks[a.task]
                attempt = TaskAttempt(task=task, number=numbers[a.task], backend=a.backend, status=a.status,
                                      backend_task_id=f"{task.id}.{numbers[a.task]}", cpus=a.cpus, mem_mb=a.mem_mb,
                                      gpus=a.gpus, wall_seconds=a.wall, cpu_seconds=a.cpu_used,
                                      mem_peak_mb=a.peak_mb, alloc_cpu_seconds=a.alloc_cpu,
                                      alloc_mem_mb_seconds=a.alloc_mem, launched=spec.created,
                                      started=spec.created, finished=spec.created + timedelta(seconds=a.wall))
                session.add(attempt)
                session.flush()
                if a.status not in ("launched", "running"):
                    add_to_job(session, attempt)
            ids.append(job.id)
    return ids
