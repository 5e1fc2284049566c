"""``[auth]``: how the gateway learns who is asking, and what roles people have."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

MODES = ("none", "header", "oidc")

DEFAULTS: dict[str, str] = {
    "mode": "none",  # none | header | oidc (API keys work in every mode but none)
    "user_header": "X-Forwarded-User",
    "groups_header": "X-Forwarded-Groups",
    "trusted_proxies": "",  # addresses or CIDRs whose identity headers are believed (mode header)
    "group_header": "X-Wps-Group",  # the group a request acts for (or the query parameter ``group``)
    "oidc_issuer": "",
    "oidc_audience": "",
    "oidc_jwks_url": "",  # fetched, cached, fetched again for an unknown key id
    "oidc_jwks_file": "",  # or read from a file
    "oidc_user_claim": "preferred_username",
    "oidc_groups_claim": "groups",
    "oidc_algorithms": "RS256, ES256",
    "oidc_leeway": "60",  # seconds of clock skew tolerated on exp and nbf
    "oidc_jwks_cooldown": "30",  # seconds between fetches for unknown key ids (spares the identity provider)
    "operators": "",  # user:NAME or group:NAME, comma-separated
    "deployers": "",
    "group_visibility": "false",  # users also see (and dismiss) their groups' jobs
    "protect_catalogue": "false",  # capabilities, process descriptions, landing page need an identity too
    "protect_status": "false",  # WPS 1.0.0 status documents and outputs need an identity (default: the URL is the key)
}


@dataclass(frozen=True)
class Principals:
    """``user:NAME, group:NAME, ...``: who has a role."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def include(self, user: str, groups: tuple[str, ...]) -> bool:
        return user in self.users or bool(self.groups.intersection(groups))


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "none"
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    group_header: str = "X-Wps-Group"
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_jwks_file: str = ""
    oidc_user_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    oidc_leeway: float = 60.0
    oidc_jwks_cooldown: float = 30.0
    operators: Principals = field(default_factory=Principals)
    deployers: Principals = field(default_factory=Principals)
    group_visibility: bool = False
    protect_catalogue: bool = False
    protect_status: bool = False


def parse_auth(raw: Mapping[str, str]) -> AuthSettings:
    """The ``[auth]`` section; ValueError naming the setting that is wrong."""
    mode = raw["mode"].strip().lower()
    if mode not in MODES:
        raise ValueError(f"[auth] mode must be one of {', '.join(MODES)}, not {mode!r}")
    settings = AuthSettings(
        mode=mode,
        user_header=raw["user_header"].strip(),
        groups_header=raw["groups_header"].strip(),
        trusted_proxies=tuple(_network(n) for n in _items(raw["trusted_proxies"])),
        group_header=raw["group_header"].strip(),
        oidc_issuer=raw["oidc_issuer"].strip(),
        oidc_audience=raw["oidc_audience"].strip(),
        oidc_jwks_url=raw["oidc_jwks_url"].strip(),
        oidc_jwks_file=raw["oidc_jwks_file"].strip(),
        oidc_user_claim=raw["oidc_user_claim"].strip(),
        oidc_groups_claim=raw["oidc_groups_claim"].strip(),
        oidc_algorithms=tuple(_items(raw["oidc_algorithms"])),
        oidc_leeway=float(raw["oidc_leeway"]),
        oidc_jwks_cooldown=float(raw["oidc_jwks_cooldown"]),
        operators=_principals(raw["operators"], "operators"),
        deployers=_principals(raw["deployers"], "deployers"),
        group_visibility=_flag(raw["group_visibility"], "group_visibility"),
        protect_catalogue=_flag(raw["protect_catalogue"], "protect_catalogue"),
        protect_status=_flag(raw["protect_status"], "protect_status"),
    )
    if mode == "header" and not settings.trusted_proxies:
        raise ValueError("[auth] mode = header needs trusted_proxies (the proxies whose headers are believed)")
    if mode == "oidc":
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("[auth] mode = oidc needs oidc_issuer and oidc_audience")
        if bool(settings.oidc_jwks_url) == bool(settings.oidc_jwks_file):
            raise ValueError("[auth] mode = oidc needs one of oidc_jwks_url and oidc_jwks_file")
        if not settings.oidc_algorithms or any(a.lower() == "none" or a.upper().startswith("HS")
                                               for a in settings.oidc_algorithms):
            raise ValueError("[auth] oidc_algorithms must name asymmetric algorithms (RS256, ES256, ...)")
    return settings


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"[auth] trusted_proxies: {text!r} is not an address or a CIDR") from None


def _principals(text: str, name: str) -> Principals:
    users, groups = set(), set()
    for item in _items(text):
        kind, sep, who = item.partition(":")
        if not sep or kind not in ("user", "group") or not who.strip():
            raise ValueError(f"[auth] {name}: {item!r} must be user:NAME or group:NAME")
        (users if kind == "user" else groups).add(who.strip())
    return Principals(frozenset(users), frozenset(groups))


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ValueError(f"[auth] {name} must be true or false, not {text!r}")
    return value in ("true", "yes", "1", "on")
