"""The outbox events of publishing (kept apart so that the dispatcher queues them without loading pystac)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..store.models import Notification

DESCRIBE, PUSH = "stac", "catalogue"


def enqueue_description(session: Session, job_id: str) -> None:
    """Queue the description of a job that just succeeded, in the transaction that ends it."""
    session.add(Notification(job_id=job_id, event=DESCRIBE, url=""))
