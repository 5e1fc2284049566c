"""Callbacks to a job's subscriber (OGC API - Processes ``subscriber``: success, failed, in progress).

The dispatcher writes a ``Notification`` row in the same transaction as the
job change it announces (an outbox), so a crash between the two loses
nothing; the ``Notifier`` sends due rows with a timeout, retries a bounded
number of times with backoff, and records why it gave up. Every URL passes
the callback address policy when the job is submitted and again when it is
sent (a name may resolve elsewhere by then).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from .address_policy import AddressPolicy, ReferenceRefused, pinned_request
from .store.db import Store
from .store.models import Job, JobStatus, Notification, utcnow
from .streaks import FailureStreak

LOG = logging.getLogger(__name__)
# job status -> (notification event, subscriber key)
EVENTS = {JobStatus.SUCCESSFUL: ("success", "successUri"), JobStatus.FAILED: ("failed", "failedUri"),
          JobStatus.RUNNING: ("inProgress", "inProgressUri")}
SUBSCRIBER_KEYS = ("successUri", "failedUri", "inProgressUri")
# (job, event) -> the JSON body sent to the subscriber
Payload = Callable[[Job, str], dict[str, Any]]


class SubscriberRefused(ValueError):
    """A subscriber that is not an object of http(s) URLs the policy allows."""


def callback_policy(allowed_hosts: list[str]) -> AddressPolicy:
    """Where callbacks may go: public addresses, and the hosts the operator named; never a file."""
    return AddressPolicy(allowed_paths=[], allowed_hosts=list(allowed_hosts))


def check_subscriber(subscriber: Any, policy: AddressPolicy) -> dict[str, str] | None:
    """The subscriber as stored, or SubscriberRefused saying which URL and why."""
    if subscriber is None:
        return None
    if not isinstance(subscriber, dict) or set(subscriber) - set(SUBSCRIBER_KEYS):
        raise SubscriberRefused(f"subscriber must be an object with {', '.join(SUBSCRIBER_KEYS)}")
    checked = {}
    for key, url in subscriber.items():
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise SubscriberRefused(f"subscriber.{key} must be an http or https URL")
        try:
            checked[key] = policy.check(url)
        except ReferenceRefused as exc:
            raise SubscriberRefused(f"subscriber.{key}: {exc}") from None
    return checked


def enqueue(session: Session, job_id: str, subscriber: dict[str, str] | None, status: str) -> None:
    """Queue the callback for ``status`` if the job's subscriber asked for it."""
    event = EVENTS.get(status)
    url = (subscriber or {}).get(event[1]) if event else None
    if url:
        session.add(Notification(job_id=job_id, event=event[0], url=url))


@dataclass(frozen=True)
class NotifierOptions:
    timeout: float = 5.0
    max_attempts: int = 3
    backoff: float = 2.0  # seconds before the second attempt; doubles each time
    batch: int = 50
    interval: float = 0.5  # seconds between looks at the outbox


class Notifier:
    """Sends due notifications; run one alongside the active dispatcher."""

    def __init__(self, store: Store, policy: AddressPolicy, payload: Payload,
                 options: NotifierOptions | None = None) -> None:
        self.store = store
        self.policy = policy
        self.payload = payload
        self.options = options or NotifierOptions()
        # trust_env off: a proxy from the environment would connect elsewhere than the checked address
        self._client = httpx.Client(timeout=self.options.timeout, follow_redirects=False, trust_env=False)

    def run(self, stop: threading.Event) -> None:
        streak = FailureStreak(LOG, "notifier turn (the outbox is kept)", self.options.interval)
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                    streak.succeeded()
                except Exception as exc:  # the outbox is durable; try again next turn
                    streak.failed(exc)
                stop.wait(streak.delay)
        finally:
            self._client.close()

    def run_once(self) -> int:
        """Send what is due; returns how many were delivered."""
        with self.store.session() as session:
            due = session.scalars(select(Notification).where(
                Notification.status == "pending", Notification.next_attempt <= utcnow())
                .order_by(Notification.id).limit(self.options.batch)).all()
            work = [(n.id, n.url, n.event, self._body(session, n)) for n in due]
        delivered = 0
        for notification_id, url, event, body in work:
            error = body if isinstance(body, Exception) else self._send(url, body)
            self._record(notification_id, None if error is None else str(error))
            delivered += error is None
            LOG.info("callback %s to %s: %s", event, url, error or "delivered")
        return delivered

    def _body(self, session: Session, notification: Notification) -> str | Exception:
        """The JSON to send, or why it cannot be made (recorded like a failed delivery, never blocking others)."""
        try:
            return json.dumps(self.payload(session.get(Job, notification.job_id), notification.event))
        except Exception as exc:
            LOG.exception("callback %s of job %s: cannot build its body", notification.id, notification.job_id)
            return RuntimeError(f"cannot build the callback body: {type(exc).__name__}: {exc}")

    def _send(self, url: str, body: str) -> str | None:
        try:
            self.policy.check(url)
            target, headers, extensions = pinned_request(url, self.policy.pinned_address(url))
            response = self._client.post(target, content=body, extensions=extensions,
                                         headers={"Content-Type": "application/json", **headers})
        except ReferenceRefused as exc:
            return f"refused: {exc}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"

    def _record(self, notification_id: int, error: str | None) -> None:
        with self.store.session() as session:
            row = session.get(Notification, notification_id)
            row.attempts += 1
            if error is None:
                row.status, row.delivered, row.last_error = "delivered", utcnow(), ""
                return
            row.last_error = error[:2000]
            if error.startswith("refused") or row.attempts >= self.options.max_attempts:
                row.status = "failed"
            else:
                row.next_attempt = utcnow() + timedelta(seconds=self.options.backoff * 2 ** (row.attempts - 1))
