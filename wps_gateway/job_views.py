"""Jobs as status documents and listings show them: the columns they need, never the whole row.

A job row carries its descriptor and inputs (kilobytes of JSON each), which
a status poll does not show: ``read_view`` reads only the status columns, in
one statement built once (SQLAlchemy then reuses its compiled form), and a
listing reads fewer still. A view reads any other column the first time it
is asked for it (the descriptor when ``processor_of`` has not parsed this
job's yet, the inputs for WPS 1.0.0 lineage), so the renderers take a view
where they take a ``Job``.

Pollers ask for the same few jobs over and over: ``StatusViews`` keeps the
views it read while the store says nothing was committed since
(``Store.data_version``), so a poll of an unchanged job reads no row, and
what is derived from a view (its ETags, STAC links, usage, a rendered
document) is computed once per view (``JobView.derived``). Any commit, by
this process or another (the dispatcher), drops every kept view: a poll never
sees a state older than the last commit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from sqlalchemy import bindparam, select

from .conditional import DocumentCache
from .store.db import Store
from .store.models import Job

T = TypeVar("T")


class JobNotFound(LookupError):
    """No job has that id."""


_JOB = Job.__table__.c
# What the status documents of every protocol show (and who may see them: user, group).
STATUS_COLUMNS = ("id", "process_id", "process_version", "status", "message", "progress", "user", "group",
                  "response_form", "outputs", "created", "started", "finished", "updated", "cancel_requested")
# What a job list shows of each job (OGC API /jobs, ``wps-gateway jobs list``).
LIST_COLUMNS = ("id", "process_id", "status", "message", "progress", "user", "group", "created", "started",
                "finished", "updated", "cancel_requested")

_STATUS = select(*(_JOB[name] for name in STATUS_COLUMNS)).where(_JOB.id == bindparam("job_id"))
_COLUMN = {name: select(_JOB[name]).where(_JOB.id == bindparam("job_id")) for name in _JOB.keys()}
# A job's status alone (parameter ``job_id``): what waiting for a job and the dispatcher's turns look at.
STATUS_OF = _COLUMN["status"]


class JobView:
    """Some columns of one job row, as attributes named like ``Job``'s; the others are read when first used."""

    def __init__(self, store: Store, values: Mapping[str, Any]) -> None:
        self._store = store
        self._shown = dict(values)
        self._derived: dict[Hashable, Any] = {}
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
        return self._shown

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """What ``compute`` makes of this job as the view shows it (an ETag, a document, its STAC links or
        usage, read from the store in the same state), computed once per view and ``key``."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = compute()
            return value


def read_view(store: Store, job_id: str) -> JobView:
    """The status columns of a job, or JobNotFound."""
    with store.engine.connect() as connection:
        row = connection.execute(_STATUS, {"job_id": job_id}).first()
    if row is None:
        raise JobNotFound(job_id)
    return JobView(store, dict(zip(STATUS_COLUMNS, row, strict=True)))


class StatusViews:
    """``read_view`` for pollers: the views read while the store's data version stays the same are kept
    (the ``size`` most recently asked for), and any commit anywhere drops them all; a store that has no
    cheap data version (PostgreSQL) is read every time."""

    def __init__(self, store: Store, size: int = 1024) -> None:
        self.store = store
        self._views: DocumentCache[JobView] = DocumentCache(size)

    def read(self, job_id: str) -> JobView:
        version = self.store.data_version()  # before the row: a commit after it makes the next read miss
        if version is None:
            return read_view(self.store, job_id)
        return self._views.get(version, job_id, lambda: read_view(self.store, job_id))


def list_columns() -> tuple[Any, ...]:
    """The columns a listing selects (``jobs.list_jobs``)."""
    return tuple(_JOB[name] for name in LIST_COLUMNS)
