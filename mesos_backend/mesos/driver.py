"""A client of the Mesos v1 scheduler HTTP API (JSON), on httpx.

It keeps one SUBSCRIBE stream open to the leading master and turns its
RecordIO events into ``Scheduler`` callbacks; other calls go out on a second
connection with the stream's ``Mesos-Stream-Id``. Implicit acknowledgements
of status updates go out from ``ACK_SENDERS`` threads of their own (each on its
own connection), as libmesos sends calls without waiting for their answers: the
stream is read on while they travel, so a busy cluster's updates cost no
round trip each to the thread that reads them. At most ``ACK_BACKLOG`` wait to
go out; beyond, the stream waits for them: an agent sends a task's next update
only once the last one is acknowledged, so a backlog that grew without bound
would hold back every task's end (and the offers read meanwhile would launch
ever more tasks into it). It follows 307 redirects
to the leader, retries 503s and connection errors with capped exponential
backoff (reset once a subscription succeeds), watches heartbeats (a stream
silent for ``missed_heartbeats`` intervals is dead: it is cut and the driver
re-subscribes with the same framework id), and re-detects the leader through
its detector on every reconnect.

An ERROR event ends the driver, never a retry loop: two instances with one
framework id would evict each other forever. ``error_kind`` tells the
scheduler what it was (removed, failed over to another instance, refused).

The secret is held only by httpx's auth object and never logged; it is sent
only to the configured or ZooKeeper-announced masters, never over a
redirect to another host or from https down to http.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .detector import DetectorError, MasterDetector
from .recordio import RecordIODecoder, RecordIOError
from .scheduler import Scheduler

LOG = logging.getLogger(__name__)
API_PATH = "/api/v1/scheduler"
MAX_REDIRECTS = 5
ACK_SENDERS = 2  # threads (connections) the implicit acknowledgements go out on
ACK_BACKLOG = 256  # acknowledgements waiting to go out before the stream waits for them


class MesosError(Exception):
    """Base of the driver's errors."""


class MesosCallError(MesosError):
    """The master refused a call (4xx other than redirects); the text is the master's."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status = status
        self.text = text


class NoLeaderError(MesosError):
    """No master answered as (or pointed to) the leader."""


class FrameworkError(MesosError):
    """The master sent ERROR: this subscription is over for good (see ``error_kind``)."""


# What an ERROR event means for the framework (``error_kind``).
REMOVED = "removed"  # torn down or its failover timeout passed: the id is dead, its tasks were killed
FAILED_OVER = "failed_over"  # another connection subscribed with this id: that instance owns it now
REFUSED = "refused"  # roles, principal, user, failover timeout...: a configuration an operator must fix


def error_kind(message: str) -> str:
    """Classify a master's ERROR message."""
    if message.startswith("Framework has been removed"):
        return REMOVED
    if message.startswith("Framework failed over"):
        return FAILED_OVER
    return REFUSED


class _StreamDead(MesosError):  # noqa: N818 (internal signal)
    """The event stream ended or went silent."""


@dataclass(frozen=True)
class DriverTimeouts:
    connect: float = 5.0
    call: float = 10.0  # each non-stream call
    missed_heartbeats: float = 3.0  # intervals of silence before the stream counts as dead
    default_heartbeat: float = 15.0  # until SUBSCRIBED says otherwise
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    call_attempts: int = 3  # per call, on 503 and connection errors


class MesosSchedulerDriver:
    """Runs a ``Scheduler`` against the leading master; call methods are thread-safe."""

    def __init__(self, scheduler: Scheduler, framework_info: dict[str, Any], detector: MasterDetector, *,
                 principal: str | None = None, secret: str | None = None,
                 verify: bool | str | ssl.SSLContext = True,
                 timeouts: DriverTimeouts | None = None, implicit_acknowledgements: bool = True) -> None:
        self.scheduler = scheduler
        self.framework_info = dict(framework_info)
        self.detector = detector
        self.timeouts = timeouts or DriverTimeouts()
        self.implicit_acknowledgements = implicit_acknowledgements
        auth = httpx.BasicAuth(principal, secret or "") if principal else None
        if principal:
            self.framework_info.setdefault("principal", principal)
        if isinstance(verify, str):  # a CA bundle for the masters' certificates
            verify = ssl.create_default_context(cafile=verify)
        common = {"auth": auth, "verify": verify, "follow_redirects": False,
                  "headers": {"Accept": "application/json"}}
        self._stream_client = httpx.Client(timeout=httpx.Timeout(self.timeouts.call, connect=self.timeouts.connect,
                                                                 read=None), **common)
        self._call_client = httpx.Client(timeout=httpx.Timeout(self.timeouts.call, connect=self.timeouts.connect),
                                         **common)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acks: queue.Queue[dict[str, Any]] = queue.Queue(ACK_BACKLOG)  # statuses to acknowledge
        self._ack_threads: list[threading.Thread] = []
        self._leader: str | None = None  # base URL of the master holding our stream
        self._stream_id: str | None = None
        self._connected = threading.Event()
        self._heartbeat = self.timeouts.default_heartbeat
        self._last_activity = time.monotonic()
        self._socket: socket.socket | None = None
        self._secret_sent = principal is not None
        self._got_subscribed = False  # during the current attempt
        self.ended: str | None = None  # the ERROR message that ended the driver

    def __repr__(self) -> str:
        return f"<MesosSchedulerDriver framework={self.framework_id} leader={self._leader}>"

    # -- life cycle ---------------------------------------------------------

    @property
    def framework_id(self) -> str | None:
        return (self.framework_info.get("id") or {}).get("value")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def master(self) -> str | None:
        """The base URL of the master the stream was last opened to (the leader, while connected)."""
        return self._leader

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Connect in the background: a master or ZooKeeper that is down now is retried, not fatal."""
        if self._secret_sent and self.detector.scheme == "http":
            LOG.warning("the Mesos secret of principal %r will travel over plain HTTP: use https masters "
                        "([mesos] tls = true, https:// masters or a ca_file)", self.framework_info.get("principal"))
        self._thread = threading.Thread(target=self._run, name="mesos-driver", daemon=True)
        self._thread.start()
        if self.implicit_acknowledgements:
            self._ack_threads = [threading.Thread(target=self._send_acks, name=f"mesos-ack-{n}", daemon=True)
                                 for n in range(ACK_SENDERS)]
            for thread in self._ack_threads:
                thread.start()

    def stop(self, failover: bool = True) -> None:
        """Disconnect. ``failover=False`` tears the framework down (its tasks are killed)."""
        if not failover and self.connected:
            self._call({"type": "TEARDOWN"})
        self._stop.set()
        self._cut_stream()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for thread in self._ack_threads:
            thread.join(timeout=10)
        self.detector.stop()
        self._stream_client.close()
        self._call_client.close()

    def leader_changed(self, address: str | None) -> None:
        """The detector saw a new leader (``host:port``): leave the old one now, not at the next timeout."""
        current = self._leader
        if current is not None and address is not None and not current.endswith(f"//{address}"):
            LOG.info("leading master is now %s; re-subscribing", address)
            self._cut_stream()

    def abort(self) -> None:
        """Stop without joining (from a callback)."""
        self._stop.set()
        self._cut_stream()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- calls (pymesos names) ----------------------------------------------

    def launchTasks(self, offer_ids: list[dict[str, str]], tasks: list[dict[str, Any]],  # noqa: N802
                    filters: dict[str, Any] | None = None) -> bool:
        operations = [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]
        return self.acceptOffers(offer_ids, operations, filters)

    def acceptOffers(self, offer_ids: list[dict[str, str]], operations: list[dict[str, Any]],  # noqa: N802
                     filters: dict[str, Any] | None = None) -> bool:
        body: dict[str, Any] = {"offer_ids": offer_ids, "operations": operations}
        if filters:
            body["filters"] = filters
        return self._call({"type": "ACCEPT", "accept": body})

    def declineOffer(self, offer_ids: list[dict[str, str]], filters: dict[str, Any] | None = None) -> bool:  # noqa: N802
        body: dict[str, Any] = {"offer_ids": offer_ids}
        if filters:
            body["filters"] = filters
        return self._call({"type": "DECLINE", "decline": body})

    def reviveOffers(self) -> bool:  # noqa: N802
        return self._call({"type": "REVIVE"})

    def suppressOffers(self) -> bool:  # noqa: N802
        return self._call({"type": "SUPPRESS"})

    def killTask(self, task_id: dict[str, str], agent_id: dict[str, str] | None = None,  # noqa: N802
                 kill_policy: dict[str, Any] | None = None) -> bool:
        body: dict[str, Any] = {"task_id": task_id}
        if agent_id:
            body["agent_id"] = agent_id
        if kill_policy:
            body["kill_policy"] = kill_policy
        return self._call({"type": "KILL", "kill": body})

    def acknowledgeStatusUpdate(self, status: dict[str, Any]) -> bool:  # noqa: N802
        if not status.get("uuid") or not status.get("agent_id"):
            return True  # master-generated updates are not acknowledged
        return self._call({"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})

    def acknowledgeOperationStatus(self, status: dict[str, Any]) -> bool:  # noqa: N802
        """An offer operation's status from an agent (it carries a uuid): acknowledged, or it is resent."""
        uuid = (status.get("uuid") or {}).get("value")
        if not uuid or not status.get("agent_id") or not status.get("operation_id"):
            return True  # the master's own word (OPERATION_ERROR, reconciliation) is not acknowledged
        return self._call({"type": "ACKNOWLEDGE_OPERATION_STATUS", "acknowledge_operation_status": {
            "agent_id": status["agent_id"], "operation_id": status["operation_id"], "uuid": uuid}})

    def reconcileTasks(self, tasks: list[dict[str, Any]]) -> bool:  # noqa: N802
        """``tasks``: ``[{"task_id": {...}, "agent_id": {...}}]``; empty for implicit reconciliation."""
        return self._call({"type": "RECONCILE", "reconcile": {"tasks": tasks}})

    def _call(self, call: dict[str, Any]) -> bool:
        """Send one call on the current stream. False when there is no stream or the call failed."""
        with self._lock:
            leader, stream_id, framework_id = self._leader, self._stream_id, self.framework_id
        if not (leader and stream_id and framework_id):
            LOG.debug("not subscribed; %s dropped", call["type"])
            return False
        call = {"framework_id": {"value": framework_id}, **call}
        delay = self.timeouts.backoff_initial
        for attempt in range(self.timeouts.call_attempts):
            try:
                response = self._call_client.post(leader + API_PATH, json=call,
                                                  headers={"Mesos-Stream-Id": stream_id})
            except httpx.TransportError as exc:
                LOG.warning("%s to %s failed: %s", call["type"], leader, exc)
            else:
                if response.status_code == 202:
                    return True
                if response.status_code == 307:
                    LOG.info("%s redirected: the leading master changed; re-subscribing", call["type"])
                    self._cut_stream()
                    return False
                if _subscription_lost(response):
                    LOG.warning("%s refused (%s %s): the master lost our subscription; re-subscribing",
                                call["type"], response.status_code, response.text[:200])
                    self._cut_stream()
                    return False
                if response.status_code != 503:
                    LOG.error("master refused %s: %s %s", call["type"], response.status_code, response.text[:500])
                    return False
            if attempt + 1 < self.timeouts.call_attempts and not self._stop.wait(delay):
                delay = min(delay * 2, self.timeouts.backoff_max)
        return False

    def _send_acks(self) -> None:
        """Acknowledge queued statuses until stopped. One the master does not take (no stream, refused) is
        dropped: the agent resends an unacknowledged update, after a re-subscription at once."""
        while not self._stop.is_set():
            try:
                status = self._acks.get(timeout=0.5)
            except queue.Empty:
                continue
            self.acknowledgeStatusUpdate(status)

    # -- the subscription loop ----------------------------------------------

    def _start_detector(self) -> bool:
        delay = self.timeouts.backoff_initial
        while not self._stop.is_set():
            try:
                self.detector.start()
                return True
            except DetectorError as exc:
                LOG.warning("cannot find the Mesos masters yet: %s", exc)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.timeouts.backoff_max)
        return False

    def _run(self) -> None:
        if not self._start_detector():
            return
        delay = self.timeouts.backoff_initial
        while not self._stop.is_set():
            self._got_subscribed = False
            try:
                self._subscribe()
            except FrameworkError as exc:
                self.ended = str(exc)
                self._stop.set()
                LOG.error("the master ended framework %s: %s", self.framework_id, exc)
                self._call_scheduler(self.scheduler.error, str(exc))
            except MesosCallError as exc:
                # 401/403: wrong credentials or principal; an operator must fix them; keep trying meanwhile.
                LOG.error("the master refused the subscription: %s", exc)
            except (MesosError, httpx.HTTPError, RecordIOError, OSError) as exc:
                if not self._stop.is_set():
                    LOG.warning("mesos stream: %s", exc)
            except Exception:  # a bug in a callback must not end the framework: reconnect
                LOG.exception("mesos driver: unexpected error; reconnecting")
            finally:
                was_connected = self._connected.is_set()
                self._connected.clear()
                with self._lock:
                    self._stream_id = None
                if was_connected and not self._stop.is_set():
                    self.scheduler.disconnected(self)
            if self._got_subscribed:  # the master was there a moment ago: come back quickly
                delay = self.timeouts.backoff_initial
            if self._pause(delay * random.uniform(0.8, 1.2)):
                break
            delay = min(delay * 2, self.timeouts.backoff_max)

    def _pause(self, seconds: float) -> bool:
        """Wait before the next subscription attempt; True if the driver was stopped meanwhile."""
        return self._stop.wait(seconds)

    def _subscribe(self) -> bool:
        """Subscribe to the leader and process events until the stream ends. True if it got SUBSCRIBED."""
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.framework_info}}
        if self.framework_id:
            call["framework_id"] = {"value": self.framework_id}
        candidates = ([self._leader] if self._leader else []) + self.detector.candidates()
        last_error: Exception | None = None
        for base in dict.fromkeys(candidates):
            try:
                return self._subscribe_to(base, call)
            except (httpx.TransportError, NoLeaderError) as exc:
                last_error = exc
                self._leader = None
        raise NoLeaderError(f"no leading master among {list(dict.fromkeys(candidates))}: {last_error}")

    def _subscribe_to(self, base: str, call: dict[str, Any]) -> bool:
        for _ in range(MAX_REDIRECTS):
            with self._stream_client.stream("POST", base + API_PATH, json=call) as response:
                if response.status_code == 307:
                    base = self._follow(base, response.headers.get("Location", ""))
                    LOG.info("redirected to the leading master at %s", base)
                    continue
                if response.status_code == 503:
                    raise NoLeaderError(f"{base}: 503 {response.read().decode(errors='replace')[:200]}")
                if response.status_code != 200:
                    raise MesosCallError(response.status_code, response.read().decode(errors="replace")[:500])
                self._leader = base
                return self._consume(response)
        raise NoLeaderError(f"more than {MAX_REDIRECTS} redirects")

    def _consume(self, response: httpx.Response) -> bool:
        stream_id = response.headers.get("Mesos-Stream-Id")
        if not stream_id:
            raise MesosError("SUBSCRIBE answer without a Mesos-Stream-Id header")
        network = response.extensions.get("network_stream")
        self._socket = network.get_extra_info("socket") if network is not None else None
        self._last_activity = time.monotonic()
        watchdog = threading.Thread(target=self._watch, args=(response,), name="mesos-heartbeat-watch", daemon=True)
        watchdog.start()
        decoder = RecordIODecoder()
        subscribed = False
        try:
            for chunk in response.iter_raw():
                self._last_activity = time.monotonic()
                for record in decoder.feed(chunk):
                    event = json.loads(record)
                    if event.get("type") == "SUBSCRIBED":
                        subscribed = self._got_subscribed = True
                        with self._lock:
                            self._stream_id = stream_id
                    self._dispatch(event)
                if self._stop.is_set():
                    break
        finally:
            self._socket = None
        if not self._stop.is_set():
            raise _StreamDead("the master closed the event stream")
        return subscribed

    def _watch(self, response: httpx.Response) -> None:
        """Cut the stream when it has been silent for too many heartbeat intervals."""
        while not response.is_closed and not self._stop.is_set():
            silent = time.monotonic() - self._last_activity
            if silent > self._heartbeat * self.timeouts.missed_heartbeats:
                LOG.warning("no heartbeat from the master for %.1f s; reconnecting", silent)
                self._cut_stream()
                return
            time.sleep(min(self._heartbeat / 4, 1.0))

    def _cut_stream(self) -> None:
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- events -------------------------------------------------------------

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get(str(kind).lower()) or {}
        handler = self._handlers().get(kind)
        if handler is None:
            LOG.debug("event %s ignored", kind)
            return
        try:
            handler(body)
        except FrameworkError:
            raise
        except Exception:  # one bad event (or a callback's bug) must not cost the stream
            LOG.exception("mesos driver: handling a %s event failed", kind)
        finally:
            self._last_activity = time.monotonic()  # time spent in callbacks is not the master's silence

    def _call_scheduler(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(self, *args)
        except Exception:
            LOG.exception("mesos driver: scheduler callback %s failed", getattr(callback, "__name__", callback))

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {
            "SUBSCRIBED": self._on_subscribed,
            "OFFERS": lambda b: self.scheduler.resourceOffers(self, b.get("offers", [])),
            "INVERSE_OFFERS": lambda b: self.scheduler.inverseOffers(self, b.get("inverse_offers", [])),
            "RESCIND": lambda b: self.scheduler.offerRescinded(self, b["offer_id"]),
            "RESCIND_INVERSE_OFFER": lambda b: self.scheduler.inverseOfferRescinded(self, b["inverse_offer_id"]),
            "UPDATE": self._on_update,
            "UPDATE_OPERATION_STATUS": self._on_operation_status,
            "MESSAGE": lambda b: self.scheduler.frameworkMessage(
                self, b.get("executor_id", {}), b.get("agent_id", {}), base64.b64decode(b.get("data", ""))),
            "FAILURE": self._on_failure,
            "ERROR": self._on_error,
            "HEARTBEAT": lambda b: self.scheduler.processHeartBeat(self),
        }

    def _on_subscribed(self, body: dict[str, Any]) -> None:
        self._heartbeat = float(body.get("heartbeat_interval_seconds") or self.timeouts.default_heartbeat)
        master_info = body.get("master_info", {})
        known = self.framework_id
        self.framework_info["id"] = body["framework_id"]
        self._connected.set()
        LOG.info("subscribed to %s as framework %s", self._leader, body["framework_id"]["value"])
        if known == body["framework_id"]["value"]:
            self.scheduler.reregistered(self, master_info)
        else:
            self.scheduler.registered(self, body["framework_id"], master_info)

    def _on_update(self, body: dict[str, Any]) -> None:
        status = body["status"]
        self.scheduler.statusUpdate(self, status)
        if self.implicit_acknowledgements:  # after the scheduler has it, as libmesos does; sent by _send_acks
            while not self._stop.is_set():
                try:
                    self._acks.put(status, timeout=0.5)
                    return
                except queue.Full:
                    self._last_activity = time.monotonic()  # waiting on our own backlog is not the master's silence

    def _on_operation_status(self, body: dict[str, Any]) -> None:
        status = body["status"]
        self.scheduler.operationStatus(self, status)
        if self.implicit_acknowledgements:
            self.acknowledgeOperationStatus(status)

    def _on_failure(self, body: dict[str, Any]) -> None:
        if body.get("executor_id"):
            self.scheduler.executorLost(self, body["executor_id"], body.get("agent_id", {}), body.get("status"))
        elif body.get("agent_id"):
            self.scheduler.slaveLost(self, body["agent_id"])

    def _on_error(self, body: dict[str, Any]) -> None:
        raise FrameworkError(body.get("message", "framework removed"))

    def _follow(self, current: str, location: str) -> str:
        """Where a 307 leads, if the driver may go there: never from https to http, and with credentials only
        to a master it was configured with or that ZooKeeper announces."""
        target = redirect_base(current, location)
        if current.startswith("https:") and not target.startswith("https:"):
            raise NoLeaderError(f"refusing a redirect from {current} down to {target}")
        address = target.split("://", 1)[1]
        if self._secret_sent and address not in self.detector.known_masters():
            raise NoLeaderError(f"refusing to send credentials to {target}: not a configured or announced master")
        return target


def redirect_base(current: str, location: str) -> str:
    """A master's ``Location: //host:port/path`` as a base URL (the current scheme unless it names one)."""
    if not location:
        raise NoLeaderError("307 without a Location header")
    scheme = current.split("://", 1)[0]
    try:
        url = httpx.URL(f"{scheme}:{location}" if location.startswith("//") else location)
    except httpx.InvalidURL as exc:
        raise NoLeaderError(f"bad Location {location!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise NoLeaderError(f"bad Location {location!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{port}"


def _subscription_lost(response: httpx.Response) -> bool:
    """403, or 400 for an unknown framework or another stream: the master (a new leader, say) does not hold
    this subscription; the stream must be re-subscribed before further calls."""
    if response.status_code == 403:
        return True
    return response.status_code == 400 and any(
        text in response.text for text in ("Framework cannot be found", "didn't match the stream ID"))
