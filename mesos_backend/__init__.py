"""Execution backends for the WPS gateway, behind one interface (``base.Backend``).

``create_backend(name, **options)`` builds one by name. Engine modules are
imported only when asked for, so a gateway using the local backend never
imports a Mesos or YARN client library.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import (
    Backend,
    BackendError,
    BackendState,
    EventCallback,
    FetchUri,
    MemoryState,
    PersistentVolume,
    Resources,
    SchedulingLimits,
    TaskEvent,
    TaskSpec,
    TaskState,
    Usage,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendState",
    "EventCallback",
    "FetchUri",
    "MemoryState",
    "PersistentVolume",
    "Resources",
    "SchedulingLimits",
    "TaskEvent",
    "TaskSpec",
    "TaskState",
    "Usage",
    "available_backends",
    "create_backend",
]

# name -> "module:class", imported on first use.
_ENGINES: dict[str, str] = {
    "local": "mesos_backend.local:LocalBackend",
    "mesos": "mesos_backend.mesos.backend:MesosBackend",
    "yarn": "mesos_backend.yarn.backend:YarnBackend",
    "slurm": "mesos_backend.slurm.backend:SlurmBackend",
}


def available_backends() -> list[str]:
    """Names ``create_backend`` knows, sorted."""
    return sorted(_ENGINES)


def create_backend(name: str, **options: Any) -> Backend:
    """Build the backend called ``name`` with its constructor ``options``.

    Raises BackendError for an unknown name (listing the known ones) or for
    options the engine's constructor does not take, so that a configuration
    mistake reads as one and not as a TypeError deep inside.
    """
    key = name.strip().lower()
    try:
        target = _ENGINES[key]
    except KeyError:
        raise BackendError(
            f"unknown backend {name!r}; known backends: {', '.join(available_backends())}"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise BackendError(f"bad options for backend {key!r}: {exc}") from None
    return cls(**options)
