"""Turn an input reference into a local file, under the address policy, when the task reads it.

The gateway checked every reference when the job was submitted, but a task
reads it later, perhaps on another machine: a name may resolve elsewhere by
then, a server may redirect, a file may have been swapped for a symbolic
link. So the task applies the policy again (:mod:`.address_policy`, with the
folders, hosts and limits of the ``fetch`` member of ``WPS_TASK``):

- ``file://``: the real path must lie in an allowed folder; the file is
  opened walking the path one folder at a time without following any
  symbolic link, and read through that open descriptor, so the file checked
  is the file read.
- ``http(s)://``: downloaded into the sandbox. Every hop, each redirect
  included (at most ``max_redirects``), passes the policy and is connected to
  at the address checked (one DNS lookup per hop); the body may not exceed
  ``max_bytes``; connecting and every read have timeouts; no proxy from the
  environment is used.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from .address_policy import AddressPolicy, ReferenceRefused, Resolver, pinned_request, resolve_host
from .atomic import atomic_target
from .errors import InputError

USER_AGENT = "wps-gateway-processor/1.0"
# The gateway's defaults ([gateway] input_max_size and friends); a task told nothing uses them too.
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_REDIRECTS = 5
_CHUNK = 1 << 20
# Folders are opened only to walk through them (O_PATH needs no read permission on them).
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", 0)
# O_NONBLOCK: a FIFO put in the file's place cannot block the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True)
class FetchPolicy:
    """What a task may read and how much: the ``fetch`` member of ``WPS_TASK``.

    ``allowed_paths`` None means the task was not told the folders (a task planned before the
    gateway passed them): a ``file://`` path must then still be exactly the real path the gateway
    checked, with no symbolic link in it.
    """

    allowed_paths: tuple[str, ...] | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS

    def for_job(self, inputs_dir: Path) -> FetchPolicy:
        """This policy plus the job's own inputs folder, where the gateway writes inline inputs."""
        return replace(self, allowed_paths=(*(self.allowed_paths or ()), str(inputs_dir)))

    def to_document(self) -> dict[str, Any]:
        """The JSON members of ``WPS_TASK["fetch"]``."""
        document: dict[str, Any] = {
            "allowed_hosts": list(self.allowed_hosts), "max_bytes": self.max_bytes,
            "connect_timeout": self.connect_timeout, "read_timeout": self.read_timeout,
            "max_redirects": self.max_redirects}
        if self.allowed_paths is not None:
            document["allowed_paths"] = list(self.allowed_paths)
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> FetchPolicy:
        """The policy ``WPS_TASK["fetch"]`` describes (None: the defaults); ValueError saying what is wrong."""
        if document is None:
            return cls()
        if not isinstance(document, Mapping):
            raise ValueError("fetch must be an object")
        paths = document.get("allowed_paths")
        hosts = document.get("allowed_hosts", [])
        if paths is not None and not _strings(paths):
            raise ValueError("fetch.allowed_paths must be a list of folders")
        if not _strings(hosts):
            raise ValueError("fetch.allowed_hosts must be a list of host or host:port")
        return cls(allowed_paths=None if paths is None else tuple(paths),
                   allowed_hosts=tuple(h.lower() for h in hosts),
                   max_bytes=_number(document, "max_bytes", DEFAULT_MAX_BYTES, int, 1),
                   connect_timeout=_number(document, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, float, 1e-3),
                   read_timeout=_number(document, "read_timeout", DEFAULT_READ_TIMEOUT, float, 1e-3),
                   max_redirects=_number(document, "max_redirects", DEFAULT_MAX_REDIRECTS, int, 0))

    def addresses(self, resolver: Resolver = resolve_host) -> AddressPolicy:
        return AddressPolicy([Path(p) for p in self.allowed_paths or ()], list(self.allowed_hosts), resolver)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _number(document: Mapping[str, Any], key: str, default: float, kind: type, least: float) -> Any:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < least or \
            (kind is int and value != int(value)):
        raise ValueError(f"fetch.{key} must be a number of at least {least:g}, not {value!r}")
    return kind(value)


def reference_name(url: str) -> str:
    """The file name a reference ends with (``download`` when it ends with none)."""
    return PurePosixPath(unquote(urlsplit(url).path)).name or "download"


@contextmanager
def local_input(url: str, download_dir: Path, policy: FetchPolicy) -> Iterator[Path]:
    """A path to read the content of ``url`` from, valid inside the block; InputError when the
    reference is refused or cannot be read."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        with open_checked_file(url, policy) as path:
            yield path
    elif scheme in ("http", "https"):
        yield download(url, download_dir, policy)
    else:
        raise InputError(f"{url}: unsupported URL scheme {scheme or '(none)'!r}; use file:// or http(s)://")


@contextmanager
def open_checked_file(url: str, policy: FetchPolicy) -> Iterator[Path]:
    """The file of a ``file://`` URL, checked now and opened without following a symbolic link, as a
    path to its open descriptor (``/proc/self/fd/N``): whatever happens to the name afterwards, the
    file read is the file checked."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InputError(f"{url}: file URLs must not name a host")
    path = Path(unquote(parts.path))
    try:
        if policy.allowed_paths is None:
            real = Path(os.path.realpath(path))
            if real != path:
                raise ReferenceRefused(f"{path} is not the path that was checked (a symbolic link is in it now)")
        else:
            real = policy.addresses().allowed_file(path)
    except ReferenceRefused as exc:
        raise InputError(f"{url}: refused: {exc}") from None
    fd = _open_without_symlinks(real, url)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{url}: not a regular file")
        yield _descriptor_path(fd)
    finally:
        os.close(fd)


def _open_without_symlinks(path: Path, url: str) -> int:
    """Open ``path`` (absolute, real) from ``/`` one component at a time, following no symbolic link."""
    folder = os.open("/", _FOLDER_FLAGS)
    try:
        for name in path.parts[1:-1]:
            inner = os.open(name, _FOLDER_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(path.name, _FILE_FLAGS, dir_fd=folder)
    except FileNotFoundError:
        raise InputError(f"{url}: input file not found") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise InputError(f"{url}: refused: {path} changed while it was opened "
                             "(a symbolic link is in it now)") from None
        raise InputError(f"{url}: cannot open the input file ({exc.strerror})") from None
    finally:
        os.close(folder)


def _descriptor_path(fd: int) -> Path:
    """A name that opens the file behind ``fd`` itself (Linux: /proc/self/fd; elsewhere /dev/fd)."""
    proc = Path("/proc/self/fd")
    return (proc if proc.is_dir() else Path("/dev/fd")) / str(fd)


def download(url: str, download_dir: Path, policy: FetchPolicy, *, resolver: Resolver = resolve_host,
             transport: httpx.BaseTransport | None = None) -> Path:
    """Download ``url`` into ``download_dir`` once: a retried task finds the finished file and skips the
    transfer. ``resolver`` and ``transport`` stand in for DNS and the network in tests."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    dest = Path(download_dir) / f"{digest}_{reference_name(url)}"
    if dest.is_file():
        return dest
    addresses = policy.addresses(resolver)
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    hop = url
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, transport=transport) as client:
            for _ in range(policy.max_redirects + 1):
                with closing(_get(client, hop, addresses.checked_addresses(_followable(hop)))) as response:
                    if response.is_redirect:
                        hop = str(httpx.URL(hop).join(response.headers["location"]))
                        continue
                    if not response.is_success:
                        raise InputError(f"{url}: download failed with HTTP {response.status_code} "
                                         f"{response.reason_phrase}")
                    _save(response, dest, policy.max_bytes, url)
                    return dest
    except ReferenceRefused as exc:
        where = "" if hop == url else f" (redirected to {hop})"
        raise InputError(f"{url}: refused{where}: {exc}") from None
    except httpx.TimeoutException as exc:
        raise InputError(f"{url}: download failed: {_timeout_kind(exc, policy)}") from None
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise InputError(f"{url}: download failed ({type(exc).__name__}: {exc})") from None
    raise InputError(f"{url}: refused: more than {policy.max_redirects} redirects")


def _followable(url: str) -> str:
    """``url`` if a download may go there at all (http or https), else ReferenceRefused."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ReferenceRefused(f"URL scheme {scheme!r} is not followed (only http and https)")
    return url


def _get(client: httpx.Client, url: str, addresses: list[str] | None) -> httpx.Response:
    """A streamed GET of ``url`` at its checked ``addresses``, one after the other until one connects
    (None: connect to the host as the URL names it, an IP or a host the operator allowed)."""
    *others, last = addresses or [None]
    for address in others:
        try:
            return _send(client, url, address)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            continue  # e.g. no IPv6 route from this node: the next checked address
    return _send(client, url, last)


def _send(client: httpx.Client, url: str, address: str | None) -> httpx.Response:
    target, headers, extensions = pinned_request(url, address)
    request = client.build_request("GET", target, extensions=extensions,
                                   headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers})
    return client.send(request, stream=True)


def _save(response: httpx.Response, dest: Path, max_bytes: int, url: str) -> None:
    """Write the body to ``dest`` atomically; InputError (nothing kept) past ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InputError(f"{url}: refused: {declared} bytes, more than the limit of {max_bytes} bytes")
    received = 0
    with atomic_target(dest) as tmp, open(tmp, "wb") as out:
        for chunk in response.iter_bytes(_CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise InputError(f"{url}: refused: more than the limit of {max_bytes} bytes")
            out.write(chunk)


def _timeout_kind(exc: httpx.TimeoutException, policy: FetchPolicy) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {policy.connect_timeout:g} s"
    return f"the server sent nothing for {policy.read_timeout:g} s"
