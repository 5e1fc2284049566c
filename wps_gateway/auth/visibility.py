"""Who sees which job: its user, its group's members with ``[auth] group_visibility``, operators all.

One rule, in two forms: a test on a loaded job, and a SQL condition for
listings. Another user's job is *not found* (404 on every protocol), never
*forbidden*: a job id says nothing about whose it is.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_

from ..store.models import Job
from .identity import Identity


def can_see(identity: Identity, job: Job, group_visibility: bool) -> bool:
    if identity.sees_everything:
        return True
    if not identity.authenticated:
        return False
    return job.user == identity.user or (group_visibility and bool(job.group) and job.group in identity.groups)


def visible_clause(identity: Identity, group_visibility: bool) -> ColumnElement[bool] | None:
    """The condition on ``jobs`` for a listing; None when the identity sees everything."""
    if identity.sees_everything:
        return None
    if not identity.authenticated:
        return Job.id.is_(None)  # nothing
    mine = Job.user == identity.user
    if group_visibility and identity.groups:
        return or_(mine, Job.group.in_(identity.groups))
    return mine
