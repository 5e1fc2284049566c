"""Reading a literal input given by reference (WPS 2.0 and OGC API allow any input by reference).

A file is fetched by its task, but a literal value must be known when the job
is written (it is checked against the process, and tasks receive it typed).
So the gateway reads the few bytes itself: through the same address policy as
every reference (``file://`` below the allowed folders, ``http(s)://`` only to
public or named hosts, connecting to the address it checked), with a short
timeout and a size limit, and without following redirects.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from .address_policy import AddressPolicy, ReferenceRefused
from .notify import pinned_request

MAX_LITERAL_BYTES = 64 * 1024
TIMEOUT_SECONDS = 10.0


class ReferenceUnreadable(ValueError):
    """The reference could not be read (refused, missing, too large, not text); the text says why."""


def read_literal(url: str, policy: AddressPolicy, limit: int = MAX_LITERAL_BYTES,
                 timeout: float = TIMEOUT_SECONDS) -> str:
    """The text at ``url``, stripped of surrounding whitespace."""
    try:
        checked = policy.check(url)
    except ReferenceRefused as exc:
        raise ReferenceUnreadable(str(exc)) from None
    content = _read_file(checked, limit) if checked.startswith("file:") else _read_http(checked, policy, limit,
                                                                                          timeout)
    try:
        return content.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ReferenceUnreadable("the referenced content is not UTF-8 text") from None


def _read_file(url: str, limit: int) -> bytes:
    path = Path(unquote(urlsplit(url).path))
    try:
        with open(path, "rb") as source:
            content = source.read(limit + 1)
    except OSError as exc:
        raise ReferenceUnreadable(f"{path.name}: {exc.strerror or 'cannot be read'}") from None
    return _bounded(content, limit)


def _read_http(url: str, policy: AddressPolicy, limit: int, timeout: float) -> bytes:
    try:
        target, headers, extensions = pinned_request(url, policy.pinned_address(url))
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, \
                client.stream("GET", target, headers=headers, extensions=extensions) as response:
            if response.status_code != 200:
                raise ReferenceUnreadable(f"the reference answered HTTP {response.status_code}")
            content = b""
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > limit:
                    break
    except ReferenceRefused as exc:
        raise ReferenceUnreadable(str(exc)) from None
    except httpx.HTTPError as exc:
        raise ReferenceUnreadable(f"the reference cannot be read ({type(exc).__name__})") from None
    return _bounded(content, limit)


def _bounded(content: bytes, limit: int) -> bytes:
    if len(content) > limit:
        raise ReferenceUnreadable(f"a literal given by reference may hold at most {limit} bytes")
    return content
