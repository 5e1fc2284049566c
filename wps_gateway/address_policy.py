"""Which input references the gateway accepts.

An input by reference is fetched later by a task on a processing node, so a
careless gateway becomes a proxy into the cluster's network (SSRF) or a way
to read any file on the nodes. The policy: ``file://`` only below the
allow-listed folders; ``http(s)://`` only to public addresses, or to hosts
the operator named explicitly; nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

Resolver = Callable[[str], list[str]]


class ReferenceRefused(ValueError):
    """The reference points somewhere the gateway does not fetch from."""


def resolve_host(host: str) -> list[str]:
    """Addresses of ``host`` (DNS lookup only; no traffic to the host itself)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ReferenceRefused(f"host {host!r} cannot be resolved") from exc
    return sorted({info[4][0] for info in infos})


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass
class AddressPolicy:
    allowed_paths: list[Path] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)  # "host" or "host:port", lower case
    resolver: Resolver = resolve_host

    def check(self, url: str) -> str:
        """Return the normalised reference, or raise ``ReferenceRefused`` saying why."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:  # "Port out of range", "Invalid IPv6 URL": the detail may quote a password
            raise ReferenceRefused("the URL is malformed: its host or port cannot be read") from None
        scheme = parts.scheme.lower()
        if scheme in ("", "file"):
            return self._check_file(parts.path if scheme else url.strip())
        if scheme in ("http", "https"):
            self._check_host(parts.hostname or "", port)
            return url.strip()
        raise ReferenceRefused(f"URL scheme {scheme!r} is not supported (use http, https or file)")

    def _check_file(self, raw_path: str) -> str:
        path = Path(unquote(raw_path))
        if not path.is_absolute():
            raise ReferenceRefused("file references must be absolute paths")
        real = Path(os.path.realpath(path))
        if not any(_is_within(real, root) for root in self.allowed_paths):
            raise ReferenceRefused(f"file {path} is outside the folders this service reads inputs from")
        return real.as_uri()

    def pinned_address(self, url: str) -> str | None:
        """The checked address to connect to for an http(s) URL, so that a second DNS answer cannot
        redirect the request (rebinding); None when the host is an IP or named by the operator."""
        parts = urlsplit(url.strip())
        return self._check_host(parts.hostname or "", parts.port)

    def _check_host(self, host: str, port: int | None) -> str | None:
        if not host:
            raise ReferenceRefused("the URL has no host")
        host = host.lower()
        named = {host, f"{host}:{port}"} if port else {host}
        if named & set(self.allowed_hosts):
            return None
        addresses = [host] if _is_ip(host) else self.resolver(host)
        refused = [a for a in addresses if not is_public_address(a)]
        if refused or not addresses:
            raise ReferenceRefused(
                f"host {host!r} resolves to a loopback, private or link-local address "
                f"({', '.join(refused) or 'none'}); the gateway does not fetch from there")
        return None if _is_ip(host) else addresses[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_within(path: Path, root: Path) -> bool:
    root = Path(os.path.realpath(root))
    return path == root or root in path.parents


def policy_from(allowed_paths: Iterable[Path], allowed_hosts: Iterable[str]) -> AddressPolicy:
    return AddressPolicy(list(allowed_paths), [h.lower() for h in allowed_hosts])
