"""What every part of the gateway shares: settings, the store, the processors, the address policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from werkzeug.wrappers import Request

from processes.bundle import Bundle, build_bundle
from processes.descriptor import Processor
from processes.registry import discover

from .address_policy import AddressPolicy, policy_from
from .auth.authenticate import Authenticator
from .auth.identity import Identity, identity_of
from .auth.visibility import can_see, visible_clause
from .batch import BATCH_PROCESS
from .batch.submission import check_batch
from .config import Settings
from .deployment import catalog_state, deployed_processors
from .inputs import CheckedInputs, InputError
from .job_views import JobView, StatusViews
from .jobs import JobNotFound, ResponseForm, get_job, request_dismiss, submit_job, wait_for_job
from .limits import ClientLimits, SyncWaits, check_submission, client_of
from .planner import count_tasks
from .quotas import check_quota
from .results import results_store
from .store.db import Store
from .store.models import Job

CATALOG_RECHECK_SECONDS = 1.0  # how stale another replica's deploy may look here


@dataclass
class GatewayContext:
    settings: Settings
    store: Store
    address_policy: AddressPolicy
    authenticator: Authenticator | None = None
    on_job_submitted: Callable[[], None] = field(default=lambda: None)
    catalog_version: int = 0  # bumped whenever the set of processors changes
    _shipped: dict[str, Processor] = field(default_factory=dict)
    _processors: dict[str, Processor] = field(default_factory=dict)
    _catalog: tuple | None = None
    _checked: float = 0.0
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Server threads a synchronous Execute may hold while it waits for its job: the rest stay free
    # for polls, /health and asynchronous submissions however many slow synchronous requests come.
    _sync_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(4), repr=False)
    _sync_waits: SyncWaits = field(default_factory=lambda: SyncWaits(ClientLimits().max_sync), repr=False)
    status_views: StatusViews = field(init=False, repr=False)  # what pollers read (job_views.StatusViews)

    def __post_init__(self) -> None:
        self.status_views = StatusViews(self.store)

    @classmethod
    def create(cls, settings: Settings, store: Store | None = None) -> GatewayContext:
        context = cls(settings=settings, store=store or Store(settings.database_url),
                      address_policy=policy_from(settings.allowed_input_paths, settings.allowed_input_hosts),
                      _sync_slots=threading.BoundedSemaphore(settings.sync_max_waiting),
                      _sync_waits=SyncWaits(settings.client_limits.max_sync))
        context.authenticator = Authenticator(settings.auth, context.store, settings.deployers)
        results_store(settings)  # the outputs kept on HDFS are read through it
        context.reload_processors()
        return context

    def reload_processors(self) -> None:
        """Find the processors and pack each one's bundle; jobs record the bundle they were submitted with."""
        bundles = self.settings.data_dir / "bundles"
        self._shipped = {pid: with_bundle(p, build_bundle(p, bundles))
                         for pid, p in discover(self.settings.processors_paths).items()}
        self.catalog_changed()

    def processors(self) -> dict[str, Processor]:
        """The shipped processors and the deployed ones (as another replica may have changed them a moment ago)."""
        if time.monotonic() - self._checked >= CATALOG_RECHECK_SECONDS:
            self._refresh_deployed()
        return self._processors

    def catalogue(self) -> tuple[int, dict[str, Processor]]:
        """The processors with the catalogue version they are, for documents rendered once per version.

        The version is read before the processors (a refresh sets the processors, then the version): a
        document is never filed under a newer version than the processors it was rendered from.
        """
        self.processors()
        version = self.catalog_version
        return version, self._processors

    def shipped(self) -> set[str]:
        """Ids of processors that come from folders: offered, but not replaceable through the API."""
        return set(self._shipped)

    def catalog_changed(self) -> None:
        """Re-read the deployed processors now (this replica just changed them)."""
        self._catalog = None
        self._refresh_deployed()

    def _refresh_deployed(self) -> None:
        with self._catalog_lock:  # server threads: one refresh at a time, never an older one last
            self._checked = time.monotonic()
            state = catalog_state(self.store)
            if state == self._catalog:
                return
            deployed = deployed_processors(self.store)
            self._processors = {**deployed, **self._shipped}
            self._catalog = state
            self.catalog_version += 1

    def submit(self, request: Request | None, processor: Processor, checked: CheckedInputs, form: ResponseForm,
               protocol: str, subscriber: dict[str, str] | None = None, *, identity: Identity | None = None,
               job_id: str | None = None) -> Job:
        """Accept a job for the request's client (or ``identity``: the command line, schedules, sources) and
        wake the dispatcher.

        Refused before anything is written: a job over ``max_tasks_per_job``
        (InputError), a client over its limits (LimitExceeded), a task list
        (the ``batch`` process) from anybody but an operator or a deployer
        (IdentityRequired) or not fit to run here (InputError). ``job_id``
        makes a submission that may be repeated idempotent (IntegrityError
        when a job of that id exists).
        """
        identity = identity or identity_of(request)
        if processor.id == BATCH_PROCESS:
            checked, tasks = check_batch(identity, checked, self.settings)
            split = "tasks"
        else:
            tasks = count_tasks(processor, checked.values)
            split = next((s.split_input for s in processor.steps if s.split_input), "") or processor.id
        limit = self.settings.max_tasks_per_job
        if tasks > limit:
            raise InputError("InvalidParameterValue", split, f"the job would need {tasks} tasks, more than the "
                             f"{limit} one job may have; split the request", kind="too_many")
        client = client_of(request, identity.user)
        check_quota(self.store, identity)
        check_submission(self.store, client, tasks, self.settings.client_limits)
        job = submit_job(self.store, self.settings.jobs_dir, processor, checked, form, protocol,
                         user=identity.user, group=identity.group, subscriber=subscriber, client=client,
                         task_count=tasks, job_id=job_id)
        self.notify_dispatcher()
        return job

    def wait_for_job(self, job_id: str, timeout: float, request: Request | None = None) -> Job:
        """Wait, bounded, for a job to end; at once (with the job as it is) when all waiting slots are taken.

        Callers answer a job that is not final yet as after a timeout: with its
        status document, so the client polls. One client may hold only
        ``client_max_sync`` waits at once (LimitExceeded beyond).
        """
        if not self._sync_slots.acquire(blocking=False):
            return get_job(self.store, job_id)
        try:
            with self._sync_waits.slot(client_of(request, identity_of(request).user)):
                return wait_for_job(self.store, job_id, timeout)
        finally:
            self._sync_slots.release()

    def job_for(self, request: Request | None, job_id: str) -> Job:
        """The job, if the request's identity may see it; JobNotFound otherwise (never "forbidden")."""
        job = get_job(self.store, job_id)
        if not can_see(identity_of(request), job, self.settings.auth.group_visibility):
            raise JobNotFound(job_id)
        return job

    def job_view_for(self, request: Request | None, job_id: str) -> JobView:
        """The job's status columns (``job_views``), if the request's identity may see it; else JobNotFound."""
        job = self.status_views.read(job_id)
        if not can_see(identity_of(request), job, self.settings.auth.group_visibility):
            raise JobNotFound(job_id)
        return job

    def dismiss_for(self, request: Request | None, job_id: str) -> Job:
        """Dismiss a job the request's identity may see (JobNotFound otherwise), and wake the dispatcher."""
        self.job_for(request, job_id)
        job = request_dismiss(self.store, job_id)
        self.notify_dispatcher()
        return job

    def visible_jobs(self, identity: Identity):
        """The condition listings apply for ``identity`` (None: every job)."""
        return visible_clause(identity, self.settings.auth.group_visibility)

    def notify_dispatcher(self) -> None:
        """Wake an in-process dispatcher early; an external one finds the job on its next poll."""
        self.on_job_submitted()


def with_bundle(processor: Processor, bundle: Bundle) -> Processor:
    """The processor whose stored descriptor names its bundle (``bundle.uri``, ``bundle.digest``)."""
    return replace(processor, raw={**processor.raw, "bundle": {"uri": bundle.uri, "digest": bundle.digest}})
