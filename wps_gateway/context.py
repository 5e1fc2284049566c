"""What every part of the gateway shares: settings, the store, the processors, the address policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
        self._processors = discover(self.settings.processors_paths)

    def processors(self) -> dict[str, Processor]:
        return self._processors

    def notify_dispatcher(self) -> None:
        """Wake an in-process dispatcher early; an external one finds the job on its next poll."""
        self.on_job_submitted()
