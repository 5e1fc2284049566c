"""Jobs as status documents and listings show them: the columns they need, never the whole row.

A job row carries its descriptor and inputs (kilobytes of JSON each), which
a status poll does not show: ``read_view`` reads only the status columns, in
one statement built once (SQLAlchemy then reuses its compiled form), and a
listing reads fewer still. A view reads any other column the first time it
is asked for it (the descriptor when ``processor_of`` has not parsed this
job's yet, the inputs for WPS 1.0.0 lineage), so the renderers take a view
where they take a ``Job``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, select

from .store.db import Store
from .store.models import Job, JobUsage


class JobNotFound(LookupError):
    """No job has that id."""


_JOB = Job.__table__.c
_USAGE = JobUsage.__table__.c
# What the status documents of every protocol show (and who may see them: user, group).
STATUS_COLUMNS = ("id", "process_id", "process_version", "status", "message", "progress", "user", "group",
                  "response_form", "outputs", "created", "started", "finished", "updated", "cancel_requested")
# What a job list shows of each job (OGC API /jobs, ``wps-gateway jobs list``).
LIST_COLUMNS = ("id", "process_id", "status", "message", "progress", "user", "group", "created", "started",
                "finished", "updated", "cancel_requested")
USAGE_COLUMNS = tuple(c.name for c in JobUsage.__table__.c if c.name != "job_id")

_STATUS = select(*(_JOB[name] for name in STATUS_COLUMNS)).where(_JOB.id == bindparam("job_id"))
_STATUS_AND_USAGE = (select(*(_JOB[name] for name in STATUS_COLUMNS), *(_USAGE[name] for name in USAGE_COLUMNS))
                     .select_from(Job.__table__.outerjoin(JobUsage.__table__, _USAGE.job_id == _JOB.id))
                     .where(_JOB.id == bindparam("job_id")))
_COLUMN = {name: select(_JOB[name]).where(_JOB.id == bindparam("job_id")) for name in _JOB.keys()}


class JobView:
    """Some columns of one job row, as attributes named like ``Job``'s; the others are read when first used."""

    def __init__(self, store: Store, values: Mapping[str, Any], usage: Mapping[str, Any] | None = None) -> None:
        self._store = store
        self._shown = dict(values)
        self.usage = usage  # the job's job_usage row (None: not read, or no attempt ended yet)
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        """A column this view did not read (called only for attributes not set): one query, then kept."""
        if name.startswith("_") or name not in _COLUMN:
            raise AttributeError(name)
        with self._store.engine.connect() as connection:
            row = connection.execute(_COLUMN[name], {"job_id": self._shown["id"]}).first()
        if row is None:
            raise JobNotFound(self._shown["id"])  # removed (retention) since the view was read
        setattr(self, name, row[0])
        return row[0]

    def state(self) -> dict[str, Any]:
        """Everything this view read: what an ETag of a document rendered from it covers."""
        return {**self._shown, "usage": self.usage}


def read_view(store: Store, job_id: str, with_usage: bool = False) -> JobView:
    """The status columns of a job (and its ``job_usage`` row), or JobNotFound."""
    with store.engine.connect() as connection:
        row = connection.execute(_STATUS_AND_USAGE if with_usage else _STATUS, {"job_id": job_id}).first()
    if row is None:
        raise JobNotFound(job_id)
    values = row._mapping
    job = {name: values[name] for name in STATUS_COLUMNS}
    usage = None
    if with_usage and values[USAGE_COLUMNS[0]] is not None:
        usage = {name: values[name] for name in USAGE_COLUMNS}
    return JobView(store, job, usage)


def list_columns() -> tuple[Any, ...]:
    """The columns a listing selects (``jobs.list_jobs``)."""
    return tuple(_JOB[name] for name in LIST_COLUMNS)
