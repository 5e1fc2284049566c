"""``GET /metrics``: the Prometheus text format, written by ``prometheus_client``.

Two sources, both in the job store, so that any replica answers the same:
figures counted at scrape time (jobs by process and status, tasks waiting
and running, the callback outbox), and the active dispatcher's published
status (its histograms and counters, the backend's health and capacity).
Names follow Prometheus' conventions: the ``wps_gateway_`` prefix, base
units in the name (``_seconds``), ``_total`` for counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ..health import health_report
from ..store.db import Store
from ..switches import DispatchSwitch
from .dispatch import DispatchMetrics
from .job_counts import job_counts
from .publisher import read_status
from .store_figures import active_attempts, open_requests, outbox_depth, task_counts

__all__ = ["metrics_text"]


def metrics_text(store: Store, accept: str | None = None) -> tuple[bytes, str]:
    """One scrape, and its media type: the text format (0.0.4), or OpenMetrics if ``accept`` asks for it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store))
    encode, media_type = choose_encoder(accept or "")
    return encode(registry), media_type


class _StoreCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._store_figures()
        status = read_status(self.store)
        yield from self._dispatcher(status)
        if status is not None:
            yield from _published_metrics(status.get("metrics") or {})
            yield from _engine(status)

    def _store_figures(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("wps_gateway_jobs", "Jobs in the job store, by process and status",
                                 labels=["process", "status"])
        for (process, status), n in sorted(job_counts(self.store).items()):
            jobs.add_metric([process, status], n)
        yield jobs
        tasks = GaugeMetricFamily("wps_gateway_tasks", "Tasks of unfinished jobs: pending (waiting for earlier "
                                  "steps), queued (ready to run), running (handed to a backend)", labels=["status"])
        counts = task_counts(self.store)
        for status, n in counts.items():
            tasks.add_metric([status], n)
        yield tasks
        yield GaugeMetricFamily("wps_gateway_queue_depth", "Tasks ready to run and not handed to a backend yet "
                                "(plus those a backend holds queued: see wps_gateway_backend_queued_tasks)",
                                value=counts["queued"])
        attempts = GaugeMetricFamily("wps_gateway_running_tasks", "Task attempts handed to each backend: launched "
                                     "(waiting there) or running", labels=["backend", "state"])
        for (backend, state), n in sorted(active_attempts(self.store).items()):
            attempts.add_metric([backend, state], n)
        yield attempts
        outbox = outbox_depth(self.store)
        yield GaugeMetricFamily("wps_gateway_callbacks_pending", "Subscriber callbacks waiting to be delivered "
                                "(the outbox)", value=outbox["callbacks"])
        pending = GaugeMetricFamily("wps_gateway_outbox_pending", "Outbox rows waiting to be delivered, by "
                                    "channel: callbacks, stac (items to describe), catalogue (pushes)",
                                    labels=["channel"])
        for channel, n in outbox.items():
            pending.add_metric([channel], n)
        yield pending
        yield GaugeMetricFamily("wps_gateway_operator_requests_pending", "Operators' retries and priority changes "
                                "the dispatcher has not carried out yet", value=open_requests(self.store))
        yield GaugeMetricFamily("wps_gateway_dispatching_paused", "1 while an operator has paused dispatching",
                                value=float(DispatchSwitch(self.store).paused_reason() is not None))

    def _dispatcher(self, status: dict[str, Any] | None) -> Iterator[Metric]:
        lease = health_report(self.store)["dispatcher"]
        yield GaugeMetricFamily("wps_gateway_dispatcher_up", "1 while a dispatcher renews its lease in the store",
                                value=float(lease["status"] == "active"))
        if lease.get("seconds_since") is not None:
            yield GaugeMetricFamily("wps_gateway_dispatcher_lease_age_seconds",
                                    "Seconds since the active dispatcher last renewed its lease",
                                    value=lease["seconds_since"])
        if status is not None:
            yield GaugeMetricFamily("wps_gateway_dispatcher_status_age_seconds", "Seconds since the active "
                                    "dispatcher last published its status (and the figures below)",
                                    value=status["age"])


def _published_metrics(snapshot: dict[str, Any]) -> Iterator[Metric]:
    """The dispatcher's histograms and counters, as it last published them."""
    empty = DispatchMetrics()
    empty.restore(snapshot)
    for histogram in empty.histograms:
        family = HistogramMetricFamily(histogram.name, histogram.help, labels=list(histogram.labels))
        for labels, counts in sorted(histogram.series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*histogram.buckets, float("inf")), counts[:-1], strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            family.add_metric(list(labels), buckets, counts[-1])
        yield family
    retries = CounterMetricFamily(empty.retries.name.removesuffix("_total"), empty.retries.help,
                                  labels=list(empty.retries.labels))
    for labels, value in sorted(empty.retries.series.items()):
        retries.add_metric(list(labels), value)
    yield retries


def _engine(status: dict[str, Any]) -> Iterator[Metric]:
    """The backend's health and capacity; 0 for "up" once the published status is stale."""
    engine = status.get("engine") or {}
    name = status.get("backend", "")
    fresh = not status.get("stale")
    if name == "mesos":
        healthy = bool(engine.get("subscribed"))
    elif name == "yarn":
        healthy = bool(engine.get("rm_reachable"))
    elif name == "slurm":
        healthy = bool(engine.get("slurm_reachable"))
    else:
        healthy = "error" not in engine
    up = GaugeMetricFamily("wps_gateway_backend_up", "1 while the backend can run tasks (Mesos: subscribed; "
                           "YARN: a ResourceManager answers; Slurm: squeue answers) and its dispatcher's status "
                           "is fresh", labels=["backend"])
    up.add_metric([name], float(fresh and healthy))
    yield up
    queued = GaugeMetricFamily("wps_gateway_backend_queued_tasks", "Tasks the backend holds that have not started",
                               labels=["backend"])
    queued.add_metric([name], float(engine.get("queued") or 0))
    yield queued
    for figure, text in (("capacity", "Resources the backend can give this gateway"),
                         ("used", "Resources this gateway's tasks hold")):
        family = GaugeMetricFamily(f"wps_gateway_backend_{figure}", text + " (cpus; mem in MiB)",
                                   labels=["backend", "resource"])
        for resource in ("cpus", "mem"):
            value = (engine.get(figure) or {}).get(resource)
            if value is not None:
                family.add_metric([name, resource], float(value))
        yield family
    if name == "mesos":
        yield GaugeMetricFamily("wps_gateway_mesos_subscribed", "1 while the framework is subscribed to a master",
                                value=float(bool(engine.get("subscribed")) and fresh))
        yield GaugeMetricFamily("wps_gateway_mesos_offers_held", "Offers received and not answered yet",
                                value=float(engine.get("offers_held") or 0))
        yield CounterMetricFamily("wps_gateway_mesos_offers_received", "Offers received since the framework "
                                  "started", value=float(engine.get("offers_received") or 0))
        yield GaugeMetricFamily("wps_gateway_mesos_agents", "Agents offers came from",
                                value=float(engine.get("agents_total") or len(engine.get("agents") or [])))
        if engine.get("reconciliation_age") is not None:
            yield GaugeMetricFamily("wps_gateway_mesos_reconciliation_age_seconds", "Seconds since the framework "
                                    "last asked the master to reconcile its tasks",
                                    value=float(engine["reconciliation_age"]))
    if name == "yarn":
        yield GaugeMetricFamily("wps_gateway_yarn_resourcemanager_reachable", "1 while a ResourceManager answers",
                                value=float(bool(engine.get("rm_reachable")) and fresh))
        nodes = GaugeMetricFamily("wps_gateway_yarn_nodes", "NodeManagers by state", labels=["state"])
        by_state: dict[str, int] = {}
        for node in engine.get("nodes") or []:
            by_state[str(node.get("state"))] = by_state.get(str(node.get("state")), 0) + 1
        for state, n in sorted(by_state.items()):
            nodes.add_metric([state], n)
        yield nodes


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))
