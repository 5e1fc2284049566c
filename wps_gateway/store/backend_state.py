"""The job store as a backend's durable key/value state (``mesos_backend.BackendState``)."""

from __future__ import annotations

from .db import Store
from .models import BackendStateEntry


class StoreBackendState:
    """Keys of one backend, kept in the ``backend_state`` table."""

    def __init__(self, store: Store, backend: str) -> None:
        self.store = store
        self.backend = backend

    def get(self, key: str) -> str | None:
        with self.store.session() as session:
            entry = session.get(BackendStateEntry, (self.backend, key))
            return entry.value if entry is not None else None

    def put(self, key: str, value: str | None) -> None:
        with self.store.session() as session:
            entry = session.get(BackendStateEntry, (self.backend, key))
            if value is None:
                if entry is not None:
                    session.delete(entry)
            elif entry is None:
                session.add(BackendStateEntry(backend=self.backend, key=key, value=value))
            else:
                entry.value = value
