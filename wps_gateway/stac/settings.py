"""``[catalogue]``: where STAC items are pushed, with which credentials, and what asset hrefs are."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..setting_numbers import above_zero

DEFAULTS: dict[str, str] = {
    "url": "",  # a STAC API with the Transactions extension; empty: items are only served under /stac
    "token": "",  # Authorization: Bearer <token> on every push
    "username": "",  # or HTTP basic authentication
    "password": "",
    "timeout": "10",  # seconds one request to the catalogue may take
    "attempts": "20",  # attempts per job before its push is given up (backoff from retry_backoff, doubling)
    "retry_backoff": "2",
    "retry_backoff_max": "600",
    "asset_base": "",  # PREFIX URL, ...: a product stored under PREFIX is fetched from URL + the rest
}


@dataclass(frozen=True)
class CatalogueSettings:
    url: str = ""
    token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0
    attempts: int = 20
    retry_backoff: float = 2.0
    retry_backoff_max: float = 600.0
    asset_base: tuple[tuple[str, str], ...] = ()  # (storage prefix, public URL), longest prefix first

    def headers(self) -> dict[str, str]:
        """The credentials of every push (never logged: they travel only in these headers)."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username or self.password:
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {pair}"}
        return {}


def parse_catalogue(section: Mapping[str, str]) -> CatalogueSettings:
    """The ``[catalogue]`` section, or ValueError saying which setting is wrong and how."""
    url = section.get("url", "").strip().rstrip("/")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"[catalogue] url must be an http or https URL of a STAC API, not {url!r}")
        if parts.username or parts.password or parts.query:
            raise ValueError("[catalogue] url must carry no credentials and no query: put them in "
                             "[catalogue] token, or username and password")
    token = section.get("token", "").strip()
    if token and (section.get("username", "").strip() or section.get("password", "")):
        raise ValueError("[catalogue] token and username/password exclude each other: set one of them")
    return CatalogueSettings(
        url=url, token=token, username=section.get("username", "").strip(), password=section.get("password", ""),
        timeout=_above_zero(section, "timeout", float), attempts=int(_above_zero(section, "attempts", int)),
        retry_backoff=_above_zero(section, "retry_backoff", float),
        retry_backoff_max=_above_zero(section, "retry_backoff_max", float),
        asset_base=parse_asset_base(section.get("asset_base", "")))


def parse_asset_base(text: str) -> tuple[tuple[str, str], ...]:
    """``"file:///srv/wps/var/jobs/ https://data.example.org/jobs/, ..."`` as (prefix, URL), longest prefix first."""
    rules = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        fields = part.split()
        if len(fields) != 2 or urlsplit(fields[1]).scheme not in ("http", "https"):
            raise ValueError(f"[catalogue] asset_base rule {part!r} is not 'STORAGE_PREFIX PUBLIC_URL' "
                             "(e.g. file:///srv/wps/var/jobs/ https://data.example.org/jobs/)")
        rules.append((fields[0], fields[1]))
    return tuple(sorted(rules, key=lambda rule: len(rule[0]), reverse=True))


def public_url(location: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    """The public URL ``asset_base`` gives a storage location, or None when no rule maps it."""
    for prefix, base in rules:
        if location.startswith(prefix):
            return base + location[len(prefix):]
    return None


def _above_zero(section: Mapping[str, str], key: str, kind: type[float] | type[int]) -> float:
    return above_zero(section.get(key, DEFAULTS[key]), kind, f"[catalogue] {key}", "a number above 0")
