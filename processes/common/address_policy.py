"""Which references may be read, and how to reach a checked address: one policy for gateway and tasks.

An input by reference is fetched by a task on a processing node, so a
careless gateway becomes a proxy into the cluster's network (SSRF) or a way
to read any file on the nodes. The policy: ``file://`` only below the
allow-listed folders; ``http(s)://`` only to public addresses, or to hosts
the operator named explicitly; nothing else.

The gateway applies it when a job is submitted (and to callbacks when they
are sent); the task's downloader (:mod:`processes.common.fetch`) applies it
again when it reads, to every redirect hop, and connects to the very address
it checked (:func:`pinned_request`), so that neither a second DNS answer nor
a redirect nor a symbolic link swapped in later leads anywhere else. This
module lives in ``processes/common`` because tasks carry it in their bundle
and know nothing of the gateway.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

Resolver = Callable[[str], list[str]]

# IPv6 ranges never taken as public, whatever they embed: IPv4-compatible (::a.b.c.d, deprecated; with
# :: and ::1), IPv4-translated (SIIT), NAT64 local-use (RFC 8215), Teredo, site-local (deprecated).
_NEVER_PUBLIC_V6 = tuple(ipaddress.IPv6Network(net) for net in (
    "::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2001::/32", "fec0::/10"))
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


class ReferenceRefused(ValueError):
    """The reference points somewhere the gateway does not fetch from."""


def resolve_host(host: str) -> list[str]:
    """Addresses of ``host`` (DNS lookup only; no traffic to the host itself)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ReferenceRefused(f"host {host!r} cannot be resolved") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))  # in the resolver's order of preference


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 (2002::/16) or NAT64 (64:ff9b::/96)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified addresses, and for
    IPv6 forms of them (an IPv6 address that embeds an IPv4 one is as public as the IPv4 one)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NEVER_PUBLIC_V6):
            return False
        ip = embedded_ipv4(ip) or ip
    return ip.is_global and not ip.is_multicast


def is_within(path: Path, root: Path) -> bool:
    """Whether the real ``path`` is ``root`` or below it (``root`` is made real here)."""
    root = Path(os.path.realpath(root))
    return path == root or root in path.parents


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
            if scheme and parts.netloc not in ("", "localhost"):
                raise ReferenceRefused("file URLs must not name a host")
            return self.allowed_file(Path(unquote(parts.path if scheme else url.strip()))).as_uri()
        if scheme in ("http", "https"):
            self._check_host(parts.hostname or "", port)
            return url.strip()
        raise ReferenceRefused(f"URL scheme {scheme!r} is not supported (use http, https or file)")

    def allowed_file(self, path: Path) -> Path:
        """The real path of ``path`` (symbolic links resolved) if it lies in an allowed folder."""
        if not path.is_absolute():
            raise ReferenceRefused("file references must be absolute paths")
        real = Path(os.path.realpath(path))
        if not any(is_within(real, root) for root in self.allowed_paths):
            raise ReferenceRefused(f"file {path} is outside the folders this service reads inputs from")
        return real

    def pinned_address(self, url: str) -> str | None:
        """The checked address to connect to for an http(s) URL, so that a second DNS answer cannot
        redirect the request (rebinding); None when the host is an IP or named by the operator."""
        addresses = self.checked_addresses(url)
        return addresses[0] if addresses else None

    def checked_addresses(self, url: str) -> list[str] | None:
        """Every address the host of an http(s) URL resolves to, all checked, in the resolver's order
        (to try one after the other); None when the host is an IP or named by the operator."""
        parts = urlsplit(url.strip())
        return self._check_host(parts.hostname or "", parts.port)

    def _check_host(self, host: str, port: int | None) -> list[str] | None:
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
        return None if _is_ip(host) else addresses


def pinned_request(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to request with the host replaced by the checked ``address``; the Host header and (for
    https) the TLS server name keep the original name, so virtual hosts and certificates still match."""
    if address is None:
        return url, {}, {}
    parsed = httpx.URL(url)
    netloc_host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return str(parsed.copy_with(host=address)), {"Host": netloc_host}, extensions


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def policy_from(allowed_paths: Iterable[Path], allowed_hosts: Iterable[str]) -> AddressPolicy:
    return AddressPolicy(list(allowed_paths), [h.lower() for h in allowed_hosts])
