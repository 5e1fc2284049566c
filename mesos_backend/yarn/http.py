"""HTTP to Hadoop's REST services (ResourceManager, WebHDFS) with failover between addresses.

Both services are run in pairs (RM HA, NameNode HA): the client keeps the
address that answered last, moves to the next on a connection error, and
where a standby says where the active one is (a 307 ``Location``) goes
there. Errors come back as ``RemoteException`` JSON and are raised as
``HadoopError`` with Hadoop's exception name and message. Authentication is
Hadoop's simple auth (``user.name`` on every call) or any httpx ``Auth``
(SPNEGO for Kerberos clusters). Only addresses are logged, never
credentials.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from ..base import BackendError

LOG = logging.getLogger(__name__)


class HadoopError(BackendError):
    """A Hadoop service refused a call: HTTP ``status``, Java ``exception`` name, Hadoop's ``message``."""

    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(f"{status} {exception}: {message}")
        self.status = status
        self.exception = exception
        self.message = message


class Unavailable(BackendError):
    """No address of the service answered."""


def base_urls(addresses: str | list[str], default_scheme: str = "http") -> list[str]:
    """``host:port,https://host2:port`` as base URLs; a bare host:port gets ``default_scheme``."""
    items = addresses.split(",") if isinstance(addresses, str) else addresses
    urls = []
    for item in (i.strip().rstrip("/") for i in items):
        if not item:
            continue
        url = item if "://" in item else f"{default_scheme}://{item}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{item!r} is not a host:port or http(s):// address")
        urls.append(f"{parts.scheme}://{parts.netloc}")
    if not urls:
        raise ValueError("no address given")
    return urls


class HadoopHttp:
    """Calls to one Hadoop REST service over its addresses; thread-safe. ``calls`` counts them by kind."""

    def __init__(self, urls: list[str], *, user: str | None = None, auth: httpx.Auth | None = None,
                 verify: bool | str = True, timeout: float = 10.0, name: str = "service") -> None:
        self.urls = list(urls)
        self.user = user
        self.name = name
        self.calls: Counter[str] = Counter()  # logical calls by kind
        self.requests = 0  # HTTP requests sent (retries and redirects included)
        self._current = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(auth=auth, verify=verify, timeout=timeout, follow_redirects=False,
                                    headers={"Accept": "application/json"},
                                    event_hooks={"request": [self._sent]})

    @property
    def current(self) -> str:
        return self.urls[self._current]

    def close(self) -> None:
        self._client.close()

    def _sent(self, _: httpx.Request) -> None:
        with self._lock:
            self.requests += 1

    def use(self, url: str) -> None:
        """Make ``url`` (one of ``urls``, or the address a standby pointed to) the one asked first."""
        with self._lock:
            if url not in self.urls:
                self.urls.append(url)
            self._current = self.urls.index(url)

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
             content: bytes | None = None, kind: str | None = None, standby_error: str | None = None) -> httpx.Response:
        """One call, on the current address or the next ones; HadoopError for a refusal, Unavailable if none answers.

        ``standby_error`` names the exception a standby answers with instead of a redirect (WebHDFS's
        StandbyException): it moves on to the next address too.
        """
        params = dict(params or {})
        if self.user:
            params.setdefault("user.name", self.user)
        self.calls[kind or f"{method} {path}"] += 1
        tried = 0
        url = self.current
        last: Exception | None = None
        while tried < 2 * len(self.urls) + 1:
            tried += 1
            try:
                response = self._client.request(method, url + path, params=params, json=json, content=content)
            except httpx.TransportError as exc:
                last = exc
                url = self._next(url)
                continue
            if response.status_code == 307 and "location" in response.headers and not path.startswith("/webhdfs"):
                target = urlsplit(response.headers["location"])
                url = f"{target.scheme}://{target.netloc}"
                self.use(url)
                continue
            if response.status_code >= 400:
                error = _error(response)
                if standby_error and error.exception == standby_error:
                    last = error
                    url = self._next(url)
                    continue
                raise error
            if url != self.current:
                self.use(url)
            return response
        raise Unavailable(f"no {self.name} answered at {', '.join(self.urls)}: {last}")

    def follow(self, method: str, location: str, *, content: bytes | BinaryIO | None = None, kind: str,
               stream: bool = False) -> httpx.Response:
        """A call to where a service redirected (a WebHDFS DataNode): the URL is taken as it is.

        With ``stream`` the body is not read: the caller iterates it and closes the response.
        """
        self.calls[kind] += 1
        try:
            response = self._client.send(self._client.build_request(method, location, content=content), stream=stream)
        except httpx.TransportError as exc:
            raise Unavailable(f"{self.name} redirect target {urlsplit(location).netloc} did not answer: {exc}") from exc
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error(response)
        return response

    def _next(self, url: str) -> str:
        index = self.urls.index(url) if url in self.urls else -1
        return self.urls[(index + 1) % len(self.urls)]


def _error(response: httpx.Response) -> HadoopError:
    try:
        remote = response.json()["RemoteException"]
        return HadoopError(response.status_code, str(remote.get("exception", "")), str(remote.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return HadoopError(response.status_code, "", response.text[:500].strip())


def kerberos_auth() -> httpx.Auth:
    """SPNEGO for Kerberos clusters, from the optional ``httpx-gssapi`` package (the ``yarn-kerberos`` extra)."""
    try:
        from httpx_gssapi import HTTPSPNEGOAuth
    except ImportError:
        raise ValueError("auth = kerberos needs the httpx-gssapi package: pip install 'wps-gateway[yarn-kerberos]'"
                         ) from None
    return HTTPSPNEGOAuth()
