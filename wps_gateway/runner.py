"""Running the dispatcher: take the leader lock, then loop until told to stop.

Used both by ``wps-gateway dispatch`` (its own process) and by ``serve`` with
the embedded dispatcher (a thread). A standby waits for the lock, so extra
gateway replicas take over when the active one dies.
"""

from __future__ import annotations

import logging
import threading

from mesos_backend import Backend, BackendError, create_backend

from .config import Settings
from .dispatcher import Dispatcher, DispatcherOptions
from .leader_lock import LeaderLock, leader_lock_for
from .notify import Notifier, NotifierOptions, callback_policy
from .store.backend_state import StoreBackendState
from .store.db import Store
from .store.models import Job, JobStatus

LOG = logging.getLogger(__name__)
STANDBY_RETRY_SECONDS = 2.0


def backend_for(settings: Settings, store: Store | None = None) -> Backend:
    """The configured backend with its engine-specific options.

    Engines that keep state across restarts (the Mesos framework id) keep it
    in the job store when one is given.
    """
    if settings.backend == "local":
        return create_backend("local", sandbox_root=settings.sandbox_dir, cpus=settings.local_cpus,
                              mem=settings.local_mem)
    if settings.backend == "mesos":
        from mesos_backend.mesos.backend import backend_options
        try:
            options = backend_options(settings.mesos)
        except ValueError as exc:
            raise BackendError(f"mesos backend: {exc}") from None
        state = StoreBackendState(store, "mesos") if store is not None else None
        return create_backend("mesos", state=state, **options)
    if settings.backend == "slurm":
        from mesos_backend.slurm.backend import backend_options as slurm_options
        try:
            options = slurm_options(settings.slurm)
        except ValueError as exc:
            raise BackendError(f"slurm backend: {exc}") from None
        return create_backend("slurm", sandbox_root=settings.sandbox_dir,
                              state=StoreBackendState(store, "slurm") if store is not None else None, **options)
    return create_backend(settings.backend)


def dispatcher_options(settings: Settings) -> DispatcherOptions:
    return DispatcherOptions(jobs_dir=settings.jobs_dir, poll_interval=settings.poll_interval,
                             retry_backoff=settings.retry_backoff, retry_backoff_max=settings.retry_backoff_max,
                             max_tasks_per_job=settings.max_tasks_per_job,
                             locality_rules=settings.locality_rules)


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
    """Holds the leader lock while a dispatcher runs; stands by while another holds it."""

    def __init__(self, settings: Settings, store: Store, backend: Backend | None = None,
                 lock: LeaderLock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.lock = lock or leader_lock_for(store.engine, settings.data_dir)
        self.dispatcher = Dispatcher(store, backend or backend_for(settings, store), dispatcher_options(settings))
        self.stop_event = threading.Event()
        self.is_leader = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Block: wait for leadership, then dispatch until ``stop``."""
        announced = False
        while not self.stop_event.is_set():
            if self.lock.try_acquire():
                break
            if not announced:
                LOG.info("another dispatcher is active; standing by")
                announced = True
            self.stop_event.wait(STANDBY_RETRY_SECONDS)
        else:
            return
        self.is_leader.set()
        LOG.info("dispatcher active (backend %s)", self.dispatcher.backend.name)
        notifier = threading.Thread(target=notifier_for(self.settings, self.store).run, args=(self.stop_event,),
                                    name="notifier", daemon=True)
        notifier.start()
        try:
            self.dispatcher.run(self.stop_event)
        finally:
            self.is_leader.clear()
            self.lock.release()

    def start_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)
        self._thread.start()
        return self._thread

    def wake(self) -> None:
        self.dispatcher.wake()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.dispatcher.wake()
        if self._thread is not None:
            self._thread.join(timeout)
