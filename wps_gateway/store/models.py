"""The job-history store: jobs, tasks, task attempts and their events.

The store is the single source of truth: status documents are rendered from
these rows, and the dispatcher resumes from them after a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class seconds_between(FunctionElement):  # noqa: N801 - used like an SQL function
    """Seconds from the first timestamp to the second, on SQLite and PostgreSQL alike."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between_sqlite(element, compiler, **kw):
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element, compiler, **kw):
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class JobStatus:
    """OGC API - Processes status codes; WPS renders them in its own words."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"
    FINAL = (SUCCESSFUL, FAILED, DISMISSED)
    ACTIVE = (ACCEPTED, RUNNING)


class TaskStatus:
    PENDING = "pending"  # waiting for earlier steps
    QUEUED = "queued"  # ready; handed to the backend or waiting for a retry
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    FINAL = (SUCCEEDED, FAILED, CANCELLED)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64))
    process_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.ACCEPTED)
    message: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    user: Mapped[str] = mapped_column(String(128), default="anonymous")
    group: Mapped[str] = mapped_column(String(128), default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    protocol: Mapped[str] = mapped_column(String(16), default="wps1")
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response_form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    descriptor: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the version the job runs
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Callback URLs the client asked for: successUri, failedUri, inProgressUri.
    subscriber: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    # Who submitted it, for per-client limits: the user, or "addr:<address>" for anonymous requests.
    client: Mapped[str] = mapped_column(String(160), default="")
    task_count: Mapped[int] = mapped_column(Integer, default=0)  # tasks its plan has (known at submission)
    # When retention removed the job's files, tasks and attempts; the row stays as the accounting record
    # (with its job_usage row) until ``[gateway] retention`` records.
    expired: Mapped[datetime | None] = mapped_column(UTCDateTime())

    tasks: Mapped[list[Task]] = relationship(back_populates="job", order_by="Task.seq",
                                             cascade="all, delete-orphan")

    # Job lists page newest first by (created, id) (``jobs.list_jobs``): the *_created_id indexes make a page
    # an index range for everybody, one user, one group and one status.
    __table_args__ = (Index("ix_jobs_created_id", "created", "id"),
                      Index("ix_jobs_status_created_id", "status", "created", "id"),
                      Index("ix_jobs_process_created", "process_id", "created"),
                      Index("ix_jobs_client_status", "client", "status"),
                      Index("ix_jobs_user_created_id", "user", "created", "id"),
                      Index("ix_jobs_group_created_id", "group", "created", "id"),
                      Index("ix_jobs_retention", "status", "expired", "finished"))


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # order within the job
    step: Mapped[str] = mapped_column(String(64))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING)
    # Deferred: the dispatcher's bookkeeping never needs it, only launching does.
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime())

    job: Mapped[Job] = relationship(back_populates="tasks")
    attempt_rows: Mapped[list[TaskAttempt]] = relationship(
        back_populates="task", order_by="TaskAttempt.number", cascade="all, delete-orphan")

    # ix_tasks_job_progress covers the dispatcher's count of a job's tasks by step and status (every turn
    # that touches the job): an index-only read, not the task rows with their specs.
    __table_args__ = (Index("ix_tasks_job", "job_id", "seq"), Index("ix_tasks_status", "status"),
                      Index("ix_tasks_job_progress", "job_id", "step", "status"))


class TaskAttempt(Base):
    """One run of a task on a backend, with what it was given and what it used."""

    __tablename__ = "task_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(16))
    backend_task_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="launched")
    agent: Mapped[str | None] = mapped_column(String(255))
    sandbox: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    cpus: Mapped[float] = mapped_column(Float, default=0)
    mem_mb: Mapped[float] = mapped_column(Float, default=0)
    disk_mb: Mapped[float] = mapped_column(Float, default=0)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    mem_peak_mb: Mapped[float | None] = mapped_column(Float)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    # What the engine charged, where it says (YARN's vcoreSeconds, memorySeconds); else cpus/mem x wall.
    alloc_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    alloc_mem_mb_seconds: Mapped[float | None] = mapped_column(Float)
    usage_source: Mapped[str | None] = mapped_column(String(16))  # engine | task: who measured cpu and memory
    launched: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime())

    task: Mapped[Task] = relationship(back_populates="attempt_rows")
    events: Mapped[list[AttemptEvent]] = relationship(back_populates="attempt", order_by="AttemptEvent.id",
                                                      cascade="all, delete-orphan")

    __table_args__ = (Index("ix_attempts_task", "task_id", "number"), Index("ix_attempts_status", "status"))


class AttemptEvent(Base):
    __tablename__ = "attempt_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("task_attempts.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    attempt: Mapped[TaskAttempt] = relationship(back_populates="events")

    __table_args__ = (Index("ix_attempt_events_attempt", "attempt_id"),)


class BackendStateEntry(Base):
    """Durable state a backend keeps across restarts (the Mesos framework id, say)."""

    __tablename__ = "backend_state"

    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DispatcherLease(Base):
    """Who dispatches: one row whose epoch grows by one each time a dispatcher takes over.

    Every transaction of the active dispatcher that writes task state first
    renews the lease *at its own epoch*; a dispatcher that was replaced (its
    lock lost with a killed session or a database restart) finds another
    epoch there, so its writes fail and it cannot launch anything. ``renewed``
    tells ``/health`` when the active dispatcher was last heard from.
    """

    __tablename__ = "dispatcher_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str] = mapped_column(String(255), default="")
    renewed: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notification(Base):
    """Work to deliver (an outbox), written with the job change: a subscriber callback, or (``event`` ``stac``
    and ``catalogue``) a successful job's STAC items to describe and to push to the portal's catalogue."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))  # success | failed | inProgress | stac | catalogue
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt"),)


class StacItem(Base):
    """A STAC Item describing a successful job's products (``wps_gateway.stac``), as the STAC API serves it.

    Written by the outbox once the job has ended (never by the dispatcher's
    turn); the bounds and the time interval are columns so that searches by
    bbox and datetime are queries, the item itself is ``document`` (without
    the links that depend on where it is served from).
    """

    __tablename__ = "stac_items"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    collection: Mapped[str] = mapped_column(String(64))  # the process id
    start: Mapped[datetime] = mapped_column(UTCDateTime())  # datetime, or start_datetime
    end: Mapped[datetime] = mapped_column(UTCDateTime())  # datetime, or end_datetime
    west: Mapped[float | None] = mapped_column(Float)  # bbox in WGS84 longitude/latitude; None: no geometry
    south: Mapped[float | None] = mapped_column(Float)
    east: Mapped[float | None] = mapped_column(Float)
    north: Mapped[float | None] = mapped_column(Float)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_stac_items_job", "job_id"),
                      Index("ix_stac_items_collection_created", "collection", "created"))


class DeployedProcessor(Base):
    """A processor deployed through OGC API - Processes Part 2; the current version of each id."""

    __tablename__ = "deployed_processors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    descriptor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner: Mapped[str] = mapped_column(String(128), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A service account's key: kept as its SHA-256 only; the key itself is shown once, when made."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public part of the key
    key_hash: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(128))
    groups: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Quota(Base):
    """What a user or a group may use: cpu-hours per period, and jobs running at once."""

    __tablename__ = "quotas"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # user | group
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    cpu_hours: Mapped[float | None] = mapped_column(Float)  # None: no limit
    period: Mapped[str] = mapped_column(String(16), default="month")  # month | <n>d (a rolling window)
    max_running: Mapped[int | None] = mapped_column(Integer)  # jobs accepted or running at once; None: no limit
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
# What job_usage sums: counts of attempts, and resources in seconds (memory in MiB-seconds), each
# resource twice: over every attempt, and over those that did not succeed (``unsuccessful_...``).
USAGE_COUNTS = ("attempts", "attempts_succeeded", "attempts_failed", "attempts_lost", "attempts_killed",
                "attempts_retried", "attempts_measured")  # retried: was a retry (number > 1); measured: cpu known
USAGE_RESOURCES = ("wall_seconds", "cpu_alloc_seconds", "cpu_used_seconds", "mem_alloc_mb_seconds",
                   "mem_peak_mb_seconds", "gpu_seconds")


class JobUsage(Base):
    """What a job's ended attempts used and were allocated, summed (one row per job; ``wps_gateway.accounting``).

    Kept by the dispatcher in the transaction that ends each attempt, so the
    accounting reports read one narrow row per job instead of joining every
    task and attempt. ``backend`` is the one of the latest attempt that
    ended. On SQLite the rows are stored in job-id order (no rowid): one
    lookup per job.
    """

    __table__ = Table(
        "job_usage", Base.metadata,
        Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        Column("backend", String(16), nullable=False, default=""),
        *(Column(name, Integer, nullable=False, default=0) for name in USAGE_COUNTS),
        *(Column(prefix + name, Float, nullable=False, default=0)
          for prefix in ("", "unsuccessful_") for name in USAGE_RESOURCES),
        sqlite_with_rowid=False,
    )


# Accounting reports select jobs by creation time and group them by these columns: with all of them in
# the index a report never reads the wide job rows (descriptor, inputs), on SQLite and PostgreSQL alike.
Index("ix_jobs_accounting", Job.created, Job.user, Job.group, Job.process_id, Job.status, Job.task_count, Job.id)


class Schedule(Base):
    """Repeated runs: every round submits ``parallel`` jobs of a process; the next round starts ``every``
    seconds after the last job of the previous one ended (``wps_gateway.schedules``).

    ``round`` counts the rounds started; the jobs of round R have ids derived from (schedule, R, k), so a
    round's submission repeated after a restart or a failover finds the jobs it made and makes only the
    missing ones: a round is neither skipped nor doubled.
    """

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    process_id: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)  # OGC API execute "inputs"
    parallel: Mapped[int] = mapped_column(Integer, default=1)
    every: Mapped[float] = mapped_column(Float)  # seconds from the end of a round to the start of the next
    rounds: Mapped[int | None] = mapped_column(Integer)  # how many rounds in all; None: for ever
    round: Mapped[int] = mapped_column(Integer, default=0)  # rounds started
    round_started: Mapped[datetime | None] = mapped_column(UTCDateTime())  # set while a round is under way
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the next round may start
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | paused | finished
    user: Mapped[str] = mapped_column(String(128), default="")  # whom its jobs are for
    group: Mapped[str] = mapped_column(String(128), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")  # why the last submission was refused
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SourceUnit(Base):
    """A work unit pulled from an order system (``[sources]``): the job it became and the outcome owed back.

    The job's id is derived from (source, unit key), so a unit handed out again is never run twice; the
    row is the outbox of what the order system must still be told (``scheduled``, then the outcome), so
    nothing is lost across a restart.
    """

    __tablename__ = "source_units"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # the unit's identity in its order system
    job_id: Mapped[str | None] = mapped_column(String(36))  # None: refused before it became a job
    unit: Mapped[dict[str, Any]] = mapped_column(default=dict)  # as the order system handed it out
    product_type: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="accepted")  # accepted | scheduled | ended | reported
    outcome: Mapped[str] = mapped_column(String(16), default="")  # complete | error, once known
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # reports tried since the last success
    next_attempt: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_source_units_state", "source", "state", "next_attempt"),
                      Index("ix_source_units_job", "job_id"))
class SchedulingLimit(Base):
    """An operator's live value of a scheduling cap or fair-share weight, over the configured one.

    ``kind`` is ``max_cpu`` or ``user_max_cpu`` (``name`` empty), ``user_cpu`` (one user's cap),
    ``process_weight`` or ``user_weight`` (``name``: the process or the user). The active dispatcher
    hands the backend what is here (``wps_gateway.scheduling``); removing a row gives the setting back.
    """

    __tablename__ = "scheduling_limits"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True, default="")
    value: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class OperatorRequest(Base):
    """What an operator asked of a job that changes task state: the dispatcher (the only writer of task state)
    carries it out on its next turn and records the outcome (``wps_gateway.control``)."""

    __tablename__ = "operator_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # retry_failed | retry_job | priority
    value: Mapped[int | None] = mapped_column(Integer)  # the new priority
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    handled: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(Text, default="")  # what was done, or why nothing was

    __table_args__ = (Index("ix_operator_requests_open", "handled", "id"),
                      Index("ix_operator_requests_job", "job_id", "id"))


class JobCount(Base):
    """Jobs per process and status, so that ``/metrics`` and the console never count a million rows.

    Database triggers on ``jobs`` (migration 0011) append every change to ``job_count_changes``
    (inserts only: concurrent writers never wait on a counter row); the active dispatcher folds those
    into this table every few seconds, and readers add what is not folded yet
    (``wps_gateway.metrics.job_counts``).
    """

    __tablename__ = "job_counts"

    process_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)


class JobCountChange(Base):
    """One job entering (+1) or leaving (-1) a (process, status) pair, written by the triggers on ``jobs``."""

    __tablename__ = "job_count_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    process_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
