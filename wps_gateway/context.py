"""What every part of the gateway shares: settings, the store, the processors, the address policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from processes.bundle import Bundle, build_bundle
from processes.descriptor import Processor
from processes.registry import discover

from .address_policy import AddressPolicy, policy_from
from .config import Settings
from .store.db import Store


@dataclass
class GatewayContext:
    settings: Settings
    store: Store
    address_policy: AddressPolicy
    on_job_submitted: Callable[[], None] = field(default=lambda: None)
    _processors: dict[str, Processor] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, store: Store | None = None) -> GatewayContext:
        context = cls(settings=settings, store=store or Store(settings.database_url),
                      address_policy=policy_from(settings.allowed_input_paths, settings.allowed_input_hosts))
        context.reload_processors()
        return context

    def reload_processors(self) -> None:
        """Find the processors and pack each one's bundle; jobs record the bundle they were submitted with."""
        bundles = self.settings.data_dir / "bundles"
        self._processors = {pid: with_bundle(p, build_bundle(p, bundles))
                            for pid, p in discover(self.settings.processors_paths).items()}

    def processors(self) -> dict[str, Processor]:
        return self._processors

    def notify_dispatcher(self) -> None:
        """Wake an in-process dispatcher early; an external one finds the job on its next poll."""
        self.on_job_submitted()


def with_bundle(processor: Processor, bundle: Bundle) -> Processor:
    """The processor whose stored descriptor names its bundle (``bundle.uri``, ``bundle.digest``)."""
    return replace(processor, raw={**processor.raw, "bundle": {"uri": bundle.uri, "digest": bundle.digest}})
