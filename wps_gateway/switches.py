"""Operator switches kept in the job store, so every gateway replica and the
active dispatcher see the same setting, and it survives restarts."""

from __future__ import annotations

from .store.backend_state import StoreBackendState
from .store.db import Store

NAMESPACE = "dispatcher"
PAUSED = "paused"


class DispatchSwitch:
    """Pause and resume launching tasks; queued work is kept, running tasks carry on."""

    def __init__(self, store: Store) -> None:
        self._state = StoreBackendState(store, NAMESPACE)

    def pause(self, reason: str = "") -> None:
        self._state.put(PAUSED, reason or "paused by operator")

    def resume(self) -> None:
        self._state.put(PAUSED, None)

    def paused_reason(self) -> str | None:
        """Why dispatching is paused, or None while it runs."""
        return self._state.get(PAUSED)
