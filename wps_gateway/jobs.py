"""Jobs as the protocols see them: submit, look up, wait, dismiss.

Every protocol front end (WPS 1.0.0, later WPS 2.0 and OGC API - Processes)
goes through these functions, so a job submitted one way is visible the
other way. They only write rows; the dispatcher does the work.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, tuple_, update

from processes.descriptor import IOSpec, Processor, parse_descriptor

from .inputs import CheckedInputs, write_inline_inputs
from .job_views import STATUS_OF, JobNotFound, JobView, list_columns
from .planner import job_paths
from .store.db import Store
from .store.models import Job, JobStatus, seconds_between, utcnow


@dataclass
class ResponseForm:
    """What the client asked to get back, kept with the job for rendering."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {as_reference, mime_type}
    raw: bool = False
    lineage: bool = False
    asynchronous: bool = False
    given: list[str] | None = None  # the inputs the request named (lineage shows those, not defaults)

    def as_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "raw": self.raw, "lineage": self.lineage,
                "asynchronous": self.asynchronous, "given": self.given}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseForm:
        return cls(outputs=data.get("outputs", {}), raw=data.get("raw", False),
                   lineage=data.get("lineage", False), asynchronous=data.get("asynchronous", False),
                   given=data.get("given"))

    def requested(self, processor: Processor) -> list[IOSpec]:
        """The outputs to answer with: those asked for, in the processor's order, or all of them."""
        if not self.outputs:
            return list(processor.outputs)
        return [o for o in processor.outputs if o.id in self.outputs]

    def by_reference(self, spec: IOSpec) -> bool:
        """Whether ``spec`` goes back as a link: as asked, else complex outputs by reference, literals by value."""
        asked = self.outputs.get(spec.id, {}).get("as_reference")
        return spec.is_complex if asked is None else bool(asked)


def shown_status(job: Job) -> str:
    """The status every protocol shows: a planned job is still accepted until its first task starts."""
    if job.status == JobStatus.RUNNING and job.started is None:
        return JobStatus.ACCEPTED
    return job.status


_PROCESSORS: OrderedDict[str, Processor] = OrderedDict()  # job id -> its parsed descriptor (never changes)
_PROCESSORS_KEPT = 1024
_PROCESSORS_LOCK = threading.Lock()


def processor_of(job: Job) -> Processor:
    """The processor version a job runs, parsed once per job (status pages, results, callbacks, dispatcher)."""
    with _PROCESSORS_LOCK:
        processor = _PROCESSORS.get(job.id)
        if processor is not None:
            _PROCESSORS.move_to_end(job.id)
            return processor
    processor = parse_descriptor(job.descriptor)
    with _PROCESSORS_LOCK:
        _PROCESSORS[job.id] = processor
        while len(_PROCESSORS) > _PROCESSORS_KEPT:
            _PROCESSORS.popitem(last=False)
    return processor


def submit_job(store: Store, jobs_dir: Path, processor: Processor, checked: CheckedInputs,
               response_form: ResponseForm, protocol: str, user: str = "anonymous", group: str = "",
               priority: int = 0, subscriber: dict[str, str] | None = None, client: str = "",
               task_count: int = 0, job_id: str | None = None) -> Job:
    """Write an accepted job; the dispatcher picks it up (and calls ``subscriber`` back as it goes).

    A given ``job_id`` (derived from what asked for the job) makes repeating the submission harmless: the
    second insert fails with IntegrityError."""
    job_id = job_id or str(uuid.uuid4())
    values = write_inline_inputs(checked, processor, job_paths(jobs_dir, job_id)["inputs"])
    job = Job(
        id=job_id,
        process_id=processor.id,
        process_version=processor.version,
        status=JobStatus.ACCEPTED,
        message="Job accepted and queued",
        progress=0,
        user=user,
        group=group,
        priority=priority,
        protocol=protocol,
        inputs=values,
        response_form=response_form.as_dict(),
        descriptor=processor.raw,
        subscriber=subscriber,
        client=client,
        task_count=task_count,
    )
    with store.session() as session:
        session.add(job)
    return job


def get_job(store: Store, job_id: str) -> Job:
    with store.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        session.expunge(job)
        return job


def wait_for_job(store: Store, job_id: str, timeout: float, interval: float = 0.1) -> Job:
    """Poll the store until the job is final or ``timeout`` passes; return it either way."""
    deadline = time.monotonic() + timeout
    while True:
        with store.engine.connect() as connection:  # the status column only: a poll costs no ORM load
            status = connection.execute(STATUS_OF, {"job_id": job_id}).scalar()
        if status is None or status in JobStatus.FINAL or time.monotonic() >= deadline:
            return get_job(store, job_id)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def request_dismiss(store: Store, job_id: str) -> Job:
    """Dismiss a job: an accepted one at once, a running one by the dispatcher, a finished one at once.

    All are conditional updates, so the job returned tells the truth: an
    active job's dismissal is decided (the dispatcher will not end it any
    other way); a finished job ends dismissed, its results withdrawn at once
    (retention removes its files).
    """
    with store.session() as session:
        session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.ACCEPTED)
                        .values(status=JobStatus.DISMISSED, message="Job dismissed", finished=utcnow(),
                                cancel_requested=True).execution_options(synchronize_session=False))
        session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING,
                                          Job.cancel_requested.is_(False))
                        .values(cancel_requested=True, message="Dismiss requested")
                        .execution_options(synchronize_session=False))
        session.execute(update(Job).where(Job.id == job_id,
                                          Job.status.in_((JobStatus.SUCCESSFUL, JobStatus.FAILED)))
                        .values(status=JobStatus.DISMISSED, message="Job dismissed; its results were removed",
                                outputs={}, cancel_requested=True)
                        .execution_options(synchronize_session=False))
        job = session.get(Job, job_id, populate_existing=True)
        if job is None:
            raise JobNotFound(job_id)
    return job


@dataclass
class JobFilter:
    """Which jobs a listing wants; empty fields do not filter (OGC API /jobs query parameters)."""

    statuses: tuple[str, ...] = ()  # as shown_status() shows them
    process_ids: tuple[str, ...] = ()
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # inclusive
    min_duration: int | None = None  # seconds from the first task's start to the end (or now), inclusive
    max_duration: int | None = None
    visible: Any = None  # a SQL condition: only the jobs the asking identity may see (None: all)


@dataclass(frozen=True)
class PageKey:
    """A place in the order job lists are in: newest first, by creation time, then by id."""

    created: datetime
    id: str


def list_jobs(store: Store, limit: int = 50, status: str | None = None, *, offset: int = 0,
              filters: JobFilter | None = None, after: PageKey | None = None,
              before: PageKey | None = None) -> list[JobView]:
    """Newest first, the columns a listing shows (``job_views.LIST_COLUMNS``); ``filters`` and ``status``
    narrow it down. A page is ``offset`` jobs in, or by key: the jobs just older than ``after``, or the
    ``limit`` jobs just newer than ``before`` (still newest first), which costs the same on any page."""
    key = tuple_(Job.created, Job.id)
    query = select(*list_columns()).limit(limit)
    if before is not None:
        query = query.where(key > (before.created, before.id)).order_by(Job.created, Job.id)
    else:
        query = query.order_by(Job.created.desc(), Job.id.desc()).offset(offset)
        if after is not None:
            query = query.where(key < (after.created, after.id))
    if status:
        query = query.where(Job.status == status)
    if filters is not None:
        query = filtered_jobs(query, filters)
    with store.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    found = [JobView(store, row) for row in rows]
    return found[::-1] if before is not None else found


def filtered_jobs(query: Select, filters: JobFilter) -> Select:
    """``query`` narrowed to the jobs ``filters`` wants (the OGC API job list's and the console's)."""
    if filters.statuses:
        query = query.where(or_(*(_shown(status) for status in filters.statuses)))
    if filters.process_ids:
        query = query.where(Job.process_id.in_(filters.process_ids))
    if filters.created_from is not None:
        query = query.where(Job.created >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Job.created <= filters.created_to)
    if filters.min_duration is not None or filters.max_duration is not None:
        duration = seconds_between(Job.started, func.coalesce(Job.finished, utcnow()))
        query = query.where(Job.started.is_not(None))
        if filters.min_duration is not None:
            query = query.where(duration >= filters.min_duration)
        if filters.max_duration is not None:
            query = query.where(duration <= filters.max_duration)
    if filters.visible is not None:
        query = query.where(filters.visible)
    return query


def _shown(status: str):
    """The SQL condition for jobs that shown_status() reports as ``status``."""
    if status == JobStatus.ACCEPTED:
        return or_(Job.status == JobStatus.ACCEPTED, and_(Job.status == JobStatus.RUNNING, Job.started.is_(None)))
    if status == JobStatus.RUNNING:
        return and_(Job.status == JobStatus.RUNNING, Job.started.is_not(None))
    return Job.status == status
