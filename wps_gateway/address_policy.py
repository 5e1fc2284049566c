"""The gateway's side of the address policy (the rules are in ``processes/common/address_policy.py``).

The gateway checks references when a job is submitted and callbacks when they
are sent; tasks check the same references again when they read them, with the
folders, hosts and limits the gateway hands them in the task contract
(:func:`fetch_policy`, the ``fetch`` member of ``WPS_TASK``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from processes.common.address_policy import (
    AddressPolicy,
    ReferenceRefused,
    Resolver,
    is_public_address,
    pinned_request,
    policy_from,
    resolve_host,
)
from processes.common.fetch import FetchPolicy

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["AddressPolicy", "FetchPolicy", "ReferenceRefused", "Resolver", "fetch_policy", "is_public_address",
           "pinned_request", "policy_from", "resolve_host"]


def fetch_policy(settings: Settings) -> FetchPolicy:
    """What the tasks of any job may read, and how much: the submission policy's folders and hosts, with
    the download limits. ``FetchPolicy.for_job`` adds the job's own inputs folder (inline inputs)."""
    return FetchPolicy(allowed_paths=tuple(str(p) for p in settings.allowed_input_paths),
                       allowed_hosts=tuple(settings.allowed_input_hosts),
                       max_bytes=settings.input_max_bytes,
                       connect_timeout=settings.input_connect_timeout,
                       read_timeout=settings.input_read_timeout,
                       max_redirects=settings.input_max_redirects)
