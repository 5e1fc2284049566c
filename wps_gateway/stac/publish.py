"""Publishing a successful job's products: describe them (``stac``), then push them (``catalogue``).

Both are outbox rows (``wps_gateway.notify``), so a restart loses none and
each has bounded, recorded attempts:

* ``stac`` is queued by the dispatcher in the transaction that ends the job
  successfully. Its channel reads the products (``items.job_items``) and
  stores the Items, and, when ``[catalogue] url`` is set, queues the push in
  the same transaction. A product that cannot be described (a malformed
  raster) fails this entry with the reason; the job stays successful.
* ``catalogue`` POSTs the process's Collection (an existing one is kept) and
  each Item to the catalogue's STAC API (Transactions extension); an Item it
  already has (409) is replaced with PUT. A refusal (4xx) is recorded with
  the catalogue's answer and not retried; connection errors and 5xx are
  retried with backoff. The catalogue's address passes the callback address
  policy and the request goes to the checked address; its credentials
  (``[catalogue] token``, or ``username``/``password``) travel only in the
  Authorization header of requests to that very URL, and never reach a log.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from mesos_backend.yarn.results import ResultsUnavailable

from ..address_policy import AddressPolicy, ReferenceRefused
from ..config import Settings
from ..jobs import processor_of
from ..notify import Channel, Due, Failure, NotifierOptions, Outbox, callback_policy, http_client, send_checked
from ..store.db import Store
from ..store.models import Job, JobStatus, Notification
from . import records
from .events import DESCRIBE, PUSH
from .items import Where, collection_document, job_items
from .raster import ProductUnreadable
from .settings import CatalogueSettings

RETRYABLE_4XX = (408, 425, 429)  # the catalogue asks to come back later
ANSWER_KEPT = 1000  # characters of a refusing catalogue's answer kept in the record


class Describe(Channel):
    """Reads a job's products, stores its Items, and queues their push."""

    events = (DESCRIBE,)

    def __init__(self, store: Store, where: Where, catalogue_url: str, options: NotifierOptions) -> None:
        super().__init__(options)
        self.store = store
        self.where = where
        self.catalogue_url = catalogue_url

    def prepare(self, session: Session, due: Due) -> Job | Failure:
        job = session.get(Job, due.job_id)
        if job is None or job.status != JobStatus.SUCCESSFUL:
            return Failure("the job is no longer successful (or is gone): nothing to describe", final=True)
        session.expunge(job)
        return job

    def deliver(self, due: Due, job: Job) -> Failure | None:
        try:
            documents = job_items(job, self.where)
        except ProductUnreadable as exc:
            return Failure(f"cannot describe the products: {exc}", final=True)
        except (OSError, ResultsUnavailable) as exc:  # the shared file system or HDFS, for a moment
            return Failure(f"cannot read the products: {type(exc).__name__}: {exc}")
        with self.store.session() as session:
            records.save_items(session, job.id, documents)
            queued = session.scalar(select(Notification.id).where(Notification.job_id == job.id,
                                                                  Notification.event == PUSH))
            if self.catalogue_url and queued is None:
                session.add(Notification(job_id=job.id, event=PUSH, url=self.catalogue_url))
        return None


class Push(Channel):
    """Sends a job's Items (and its process's Collection) to the catalogue's Transactions API."""

    events = (PUSH,)

    def __init__(self, catalogue: CatalogueSettings, policy: AddressPolicy, options: NotifierOptions) -> None:
        super().__init__(options)
        self.catalogue = catalogue
        self.policy = policy
        self._client = http_client(options.timeout)

    def prepare(self, session: Session, due: Due) -> tuple[dict[str, Any], list[dict[str, Any]]] | Failure:
        items = records.job_documents(session, due.job_id)
        job = session.get(Job, due.job_id)
        if job is None or not items:
            return Failure("the job has no STAC items (any more): nothing to push", final=True)
        collection = collection_document(job.process_id, processor_of(job), None, [None, None])
        return collection, items

    def deliver(self, due: Due, prepared: tuple[dict[str, Any], list[dict[str, Any]]]) -> Failure | None:
        """The collection first, then every item (one refused item does not hold back the others)."""
        collection, items = prepared
        base = due.url.rstrip("/")
        # Credentials go only to the catalogue they are configured for (a row queued for an older url gets none).
        headers = {"Content-Type": "application/json",
                   **(self.catalogue.headers() if base == self.catalogue.url else {})}
        try:
            answer = self._send("POST", f"{base}/collections", collection, headers)
            if answer is not None and answer.status_code != 409:
                return _failure("POST", "the collection", answer)
            failures = []
            for item in items:
                target = f"{base}/collections/{quote(item['collection'], safe='')}/items"
                answer = self._send("POST", target, item, headers)
                if answer is not None and answer.status_code == 409:  # it has it already: replace it
                    answer = self._send("PUT", f"{target}/{quote(item['id'], safe='')}", item, headers)
                if answer is not None:
                    failures.append(_failure(answer.request.method, f"item {item['id']}", answer))
        except ReferenceRefused as exc:
            return Failure(f"refused: {exc}", final=True)
        except httpx.HTTPError as exc:
            return Failure(f"{type(exc).__name__}: {exc}")
        if not failures:
            return None
        # Retried as a whole while any refusal may pass later (replacing what was taken is harmless)
        return Failure("; ".join(f.reason for f in failures), final=all(f.final for f in failures))

    def _send(self, method: str, url: str, document: dict[str, Any], headers: dict[str, str]) -> httpx.Response | None:
        """The catalogue's answer when it is not a success; None on success."""
        response = send_checked(self._client, self.policy, method, url, content=json.dumps(document), headers=headers)
        return None if response.is_success else response

    def close(self) -> None:
        self._client.close()


def _failure(method: str, what: str, response: httpx.Response) -> Failure:
    """A refusal (4xx but for 'later, please') is final; the catalogue's answer is kept with it."""
    status = response.status_code
    final = 400 <= status < 500 and status not in RETRYABLE_4XX
    text = " ".join(response.text.split())[:ANSWER_KEPT]
    return Failure(f"{method} {what}: HTTP {status}: {text}", final=final)


def publisher_for(settings: Settings, store: Store) -> Outbox:
    """The outbox loop that describes successful jobs and pushes them to the catalogue."""
    catalogue = settings.catalogue
    where = Where(settings.base_url, settings.jobs_dir, catalogue.asset_base)
    options = NotifierOptions(timeout=catalogue.timeout, max_attempts=catalogue.attempts,
                              backoff=catalogue.retry_backoff, backoff_max=catalogue.retry_backoff_max)
    return Outbox(store, [Describe(store, where, catalogue.url, options),
                          Push(catalogue, callback_policy(settings.allowed_callback_hosts), options)],
                  name="stac")
