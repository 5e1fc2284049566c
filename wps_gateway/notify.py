"""The job store's outbox, and callbacks to a job's subscriber (OGC API - Processes ``subscriber``).

The dispatcher writes a ``Notification`` row in the same transaction as the
job change it announces, so a crash between the two loses nothing. An
``Outbox`` loop, beside the active dispatcher, hands due rows to the
``Channel`` of their event: it sends them with a timeout, retries a bounded
number of times with backoff, and records why it gave up (at once for a
``Failure`` no retry can mend). Channels: subscriber callbacks (here), and a
job's STAC items and their push to the portal's catalogue
(``wps_gateway.stac.publish``). Every URL passes the address policy when it
is sent (``send_checked``: a name may resolve elsewhere by then), and the
request goes to the address that was checked.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from .address_policy import AddressPolicy, ReferenceRefused, pinned_request
from .redaction import redact
from .store.db import Store
from .store.models import Job, JobStatus, Notification, utcnow
from .streaks import FailureStreak

LOG = logging.getLogger(__name__)
# job status -> (notification event, subscriber key)
EVENTS = {JobStatus.SUCCESSFUL: ("success", "successUri"), JobStatus.FAILED: ("failed", "failedUri"),
          JobStatus.RUNNING: ("inProgress", "inProgressUri")}
CALLBACK_EVENTS = tuple(event for event, _ in EVENTS.values())
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
    backoff_max: float = 600.0  # longest wait between two attempts


@dataclass(frozen=True)
class Failure:
    """Why a row was not delivered; ``final`` when no retry can mend it (a refused address, a 4xx answer)."""

    reason: str
    final: bool = False


@dataclass(frozen=True)
class Due:
    """An outbox row as a channel delivers it (read in the outbox's transaction, sent outside it)."""

    id: int
    job_id: str
    event: str
    url: str


class Channel:
    """One kind of outbox row: what it needs from the store (``prepare``) and how it is sent (``deliver``)."""

    events: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: NotifierOptions) -> None:
        self.options = options

    def prepare(self, session: Session, due: Due) -> Any:
        """What ``deliver`` sends, read in the outbox's session; a ``Failure`` to record instead."""
        raise NotImplementedError

    def deliver(self, due: Due, prepared: Any) -> Failure | None:
        raise NotImplementedError

    def retry_delay(self, attempts: int) -> float:
        return min(self.options.backoff * 2 ** (attempts - 1), self.options.backoff_max)

    def close(self) -> None:
        """Release what the channel holds (HTTP connections)."""


def send_checked(client: httpx.Client, policy: AddressPolicy, method: str, url: str, *, content: str | None = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    """``method url`` once the address policy allows it, connected to the very address that was checked
    (ReferenceRefused or httpx.HTTPError otherwise)."""
    policy.check(url)
    target, host, extensions = pinned_request(url, policy.pinned_address(url))
    return client.request(method, target, content=content, extensions=extensions, headers={**(headers or {}), **host})


def http_client(timeout: float) -> httpx.Client:
    # trust_env off: a proxy from the environment would connect elsewhere than the checked address
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


class Outbox:
    """Delivers due outbox rows through their channels; run one alongside the active dispatcher."""

    def __init__(self, store: Store, channels: list[Channel], interval: float = 0.5, batch: int = 50,
                 name: str = "outbox") -> None:
        self.store = store
        self.channels = {event: channel for channel in channels for event in channel.events}
        self.interval = interval
        self.batch = batch
        self.name = name

    def run(self, stop: threading.Event) -> None:
        streak = FailureStreak(LOG, f"{self.name} turn (the outbox is kept)", self.interval)
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                    streak.succeeded()
                except Exception as exc:  # the outbox is durable; try again next turn
                    streak.failed(exc)
                stop.wait(streak.delay)
        finally:
            for channel in set(self.channels.values()):
                channel.close()

    def run_once(self) -> int:
        """Deliver what is due; returns how many were delivered."""
        with self.store.session() as session:
            due = session.scalars(select(Notification).where(
                Notification.status == "pending", Notification.next_attempt <= utcnow(),
                Notification.event.in_(list(self.channels)))
                .order_by(Notification.id).limit(self.batch)).all()
            work = [(Due(n.id, n.job_id, n.event, n.url), self._prepare(session, n)) for n in due]
        delivered = 0
        for row, prepared in work:
            channel = self.channels[row.event]
            outcome = prepared if isinstance(prepared, Failure) else self._deliver(channel, row, prepared)
            self._record(row.id, channel, outcome)
            delivered += outcome is None
            LOG.info("%s %s of job %s%s: %s", self.name, row.event, row.job_id, f" to {row.url}" if row.url else "",
                     outcome.reason if outcome else "delivered")
        return delivered

    def _prepare(self, session: Session, row: Notification) -> Any:
        """What to send, or why it cannot be made (recorded like a failed delivery, never blocking others)."""
        try:
            return self.channels[row.event].prepare(session, Due(row.id, row.job_id, row.event, row.url))
        except Exception as exc:
            LOG.exception("%s %s of job %s: cannot prepare it", self.name, row.event, row.job_id)
            return Failure(f"cannot build the {row.event} message: {type(exc).__name__}: {exc}")

    def _deliver(self, channel: Channel, row: Due, prepared: Any) -> Failure | None:
        try:
            return channel.deliver(row, prepared)
        except Exception as exc:  # a channel's bug is one row's failure, recorded, not the loop's
            LOG.exception("%s %s of job %s failed", self.name, row.event, row.job_id)
            return Failure(f"{type(exc).__name__}: {exc}")

    def _record(self, row_id: int, channel: Channel, outcome: Failure | None) -> None:
        with self.store.session() as session:
            row = session.get(Notification, row_id)
            if row is None:
                return  # the job (and its outbox) went meanwhile
            row.attempts += 1
            if outcome is None:
                row.status, row.delivered, row.last_error = "delivered", utcnow(), ""
                return
            row.last_error = redact(outcome.reason)[:2000]
            if outcome.final or row.attempts >= channel.options.max_attempts:
                row.status = "failed"
            else:
                row.next_attempt = utcnow() + timedelta(seconds=channel.retry_delay(row.attempts))


class Callbacks(Channel):
    """POSTs the subscriber's JSON (``payload``) to its callback URL."""

    events = CALLBACK_EVENTS

    def __init__(self, policy: AddressPolicy, payload: Payload, options: NotifierOptions) -> None:
        super().__init__(options)
        self.policy = policy
        self.payload = payload
        self._client = http_client(options.timeout)

    def prepare(self, session: Session, due: Due) -> str:
        return json.dumps(self.payload(session.get(Job, due.job_id), due.event))

    def deliver(self, due: Due, body: str) -> Failure | None:
        try:
            response = send_checked(self._client, self.policy, "POST", due.url, content=body,
                                    headers={"Content-Type": "application/json"})
        except ReferenceRefused as exc:
            return Failure(f"refused: {exc}", final=True)
        except httpx.HTTPError as exc:
            return Failure(f"{type(exc).__name__}: {exc}")
        return None if response.is_success else Failure(f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class Notifier(Outbox):
    """The subscriber callbacks' outbox loop."""

    def __init__(self, store: Store, policy: AddressPolicy, payload: Payload,
                 options: NotifierOptions | None = None) -> None:
        options = options or NotifierOptions()
        super().__init__(store, [Callbacks(policy, payload, options)], options.interval, options.batch, "callback")
