"""Running the dispatcher: take the leader lock, then loop until told to stop.

Used both by ``wps-gateway dispatch`` (its own process) and by ``serve`` with
the embedded dispatcher (a thread). A standby waits for the lock, so extra
gateway replicas take over when the active one dies; a standby rides out
database restarts. An active dispatcher that finds another one took over
(``LeadershipLost``) stops its backend and stands by again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from mesos_backend import Backend, BackendError, create_backend

from .address_policy import fetch_policy
from .config import Settings
from .dispatcher import Dispatcher, DispatcherOptions
from .gc import Collector, Retention
from .leader_lock import LeaderLock, Leadership, LeadershipLost, leader_lock_for
from .metrics.publisher import StatusPublisher
from .notify import Notifier, NotifierOptions, callback_policy
from .results import results_store
from .schedules.rounds import ScheduleRounds
from .sources.poller import SourcePoller
from .stac.publish import publisher_for
from .store.backend_state import StoreBackendState
from .store.db import Store
from .store.models import Job, JobStatus

if TYPE_CHECKING:
    from .context import GatewayContext

LOG = logging.getLogger(__name__)
STANDBY_RETRY_SECONDS = 2.0


def backend_for(settings: Settings, store: Store | None = None) -> Backend:
    """The configured backend with its engine-specific options.

    Engines that keep state across restarts (the Mesos framework id) keep it
    in the job store when one is given.
    """
    if settings.backend == "local":
        return create_backend("local", sandbox_root=settings.sandbox_dir, cpus=settings.local_cpus,
                              mem=settings.local_mem, gpus=settings.local_gpus, environment=settings.local_environment,
                              run_as=settings.local_run_as or None, cache_dir=settings.cache_dir)
    if settings.backend == "mesos":
        from mesos_backend.mesos.backend import backend_options
        try:
            options = backend_options(settings.mesos)
        except ValueError as exc:
            raise BackendError(f"mesos backend: {exc}") from None
        state = StoreBackendState(store, "mesos") if store is not None else None
        return create_backend("mesos", state=state, **options)
    if settings.backend == "yarn":
        from mesos_backend.yarn.backend import backend_options as yarn_options
        try:
            options = yarn_options(settings.yarn, staging_default=(settings.data_dir / "yarn").as_uri())
        except ValueError as exc:
            raise BackendError(f"yarn backend: {exc}") from None
        return create_backend("yarn", **options)
    if settings.backend == "slurm":
        from mesos_backend.slurm.backend import backend_options as slurm_options
        try:
            options = slurm_options(settings.slurm)
        except ValueError as exc:
            raise BackendError(f"slurm backend: {exc}") from None
        return create_backend("slurm", sandbox_root=settings.sandbox_dir, cache_dir=settings.cache_dir,
                              state=StoreBackendState(store, "slurm") if store is not None else None, **options)
    return create_backend(settings.backend)


def dispatcher_options(settings: Settings) -> DispatcherOptions:
    return DispatcherOptions(jobs_dir=settings.jobs_dir, poll_interval=settings.poll_interval,
                             retry_backoff=settings.retry_backoff, retry_backoff_max=settings.retry_backoff_max,
                             max_tasks_per_job=settings.max_tasks_per_job,
                             locality_rules=settings.locality_rules,
                             reconcile_interval=settings.reconcile_interval,
                             shutdown_grace=settings.shutdown_grace,
                             fetch_policy=fetch_policy(settings), results=results_store(settings))


def retention_for(settings: Settings, store: Store) -> Retention:
    return Retention(store, settings.jobs_dir, settings.sandbox_dir, settings.cache_dir, settings.retention,
                     results_store(settings))


def notifier_for(settings: Settings, store: Store) -> Notifier:
    """Callbacks carry what a client would GET: the results on success, the status otherwise."""
    from .ogcapi.encode import results_document, status_info

    def payload(job: Job, event: str) -> dict:
        if event == "success":
            return results_document(job, settings.base_url, settings.jobs_dir)
        if event == "inProgress":  # the job may have moved on before the callback went out
            info = status_info(job, settings.base_url, settings.url, JobStatus.RUNNING)
            info.pop("finished", None)
            return info
        return status_info(job, settings.base_url, settings.url)

    options = NotifierOptions(timeout=settings.callback_timeout, max_attempts=settings.callback_attempts)
    return Notifier(store, callback_policy(settings.allowed_callback_hosts), payload, options)


class DispatcherRunner:
    """Holds the leadership while a dispatcher runs; stands by while another holds it.

    Each term of leadership gets a fresh backend (a stopped backend does not
    start again), unless the caller handed in one: then a lost leadership
    ends ``run``.
    """

    def __init__(self, settings: Settings, store: Store, backend: Backend | None = None,
                 lock: LeaderLock | None = None, context: GatewayContext | None = None) -> None:
        self.settings = settings
        self.store = store
        self._context = context  # jobs of schedules and sources are submitted through it (made on first need)
        self.schedules = ScheduleRounds(store, self.gateway_context, settings.poll_interval, settings.retry_backoff)
        self.sources = SourcePoller(store, self.gateway_context, settings.sources)
        self.leadership = Leadership(store, lock or leader_lock_for(store.engine, settings.data_dir))
        self._given_backend = backend is not None
        self.dispatcher = self._new_dispatcher(backend)
        self.stop_event = threading.Event()
        self.is_leader = threading.Event()
        self.tries = 0  # attempts to take the leadership (tests wait for a refused one)
        self._thread: threading.Thread | None = None

    @property
    def lock(self) -> LeaderLock:
        return self.leadership.lock

    def _new_dispatcher(self, backend: Backend | None = None) -> Dispatcher:
        return Dispatcher(self.store, backend or backend_for(self.settings, self.store),
                          dispatcher_options(self.settings), self.leadership)

    def run(self) -> None:
        """Block: wait for leadership, then dispatch until ``stop``; stand by again if it is lost."""
        while self._stand_by():
            if not self._term():
                return

    def _stand_by(self) -> bool:
        """Wait until this runner holds the leadership (True) or is stopped (False)."""
        announced = False
        while not self.stop_event.is_set():
            acquired = self.leadership.acquire()
            self.tries += 1
            if acquired:
                return True
            if not announced:
                LOG.info("another dispatcher is active (or the store is unreachable); standing by")
                announced = True
            self.stop_event.wait(STANDBY_RETRY_SECONDS)
        return False

    def _term(self) -> bool:
        """One term as the active dispatcher; True if it ended by a lost leadership and may begin again."""
        self.is_leader.set()
        LOG.info("dispatcher active (backend %s, epoch %s)", self.dispatcher.backend.name, self.leadership.epoch)
        term_over = threading.Event()  # these loops work for the active dispatcher only (failover hands them over)
        loops = [("notifier", notifier_for(self.settings, self.store).run),
                 ("stac", publisher_for(self.settings, self.store).run),
                 ("retention", Collector(retention_for(self.settings, self.store)).run),
                 ("status", StatusPublisher(self.store, self.dispatcher).run),
                 ("schedules", self.schedules.run)] + ([("sources", self.sources.run)] if self.settings.sources else [])
        for name, loop in loops:
            threading.Thread(target=loop, args=(term_over,), name=name, daemon=True).start()
        try:
            self.dispatcher.run(self.stop_event)
            return False
        except LeadershipLost:
            if self._given_backend:
                return False
            self.dispatcher = self._new_dispatcher()
            return True
        finally:
            term_over.set()
            self.is_leader.clear()
            self.leadership.release()

    def gateway_context(self) -> GatewayContext:
        """What schedules and sources submit jobs through: the server's, or one of the runner's own."""
        if self._context is None:
            from .context import GatewayContext

            self._context = GatewayContext.create(self.settings, self.store)
            self._context.on_job_submitted = self.wake
        return self._context

    def start_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)
        self._thread.start()
        return self._thread

    def wake(self) -> None:
        self.dispatcher.wake()

    def hurry(self) -> None:
        """Cut a graceful shutdown short: stop the running tasks now."""
        self.stop_event.set()
        self.dispatcher.hurry()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the dispatcher to shut down gracefully and wait for it (its grace period and a margin)."""
        self.stop_event.set()
        self.dispatcher.wake()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.settings.shutdown_grace + 15)
