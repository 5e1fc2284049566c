"""API keys for service accounts: made and revoked with the CLI, kept as hashes in the job store.

A key reads ``wpsg_<id>.<secret>``: the id finds the row, the SHA-256 of the
whole key is compared, and the key itself is printed once, when it is made.
Clients send it as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from ..store.db import Store
from ..store.models import ApiKey, utcnow

PREFIX = "wpsg_"


class KeyNotFound(LookupError):
    """No key with that id."""


@dataclass(frozen=True)
class KeyHolder:
    user: str
    groups: tuple[str, ...]


def create_key(store: Store, user: str, groups: list[str], note: str = "") -> tuple[str, str]:
    """A new key for ``user``; returns (key id, the key) — the key cannot be shown again."""
    if not user.strip():
        raise ValueError("an API key needs the user it acts as")
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    with store.session() as session:
        session.add(ApiKey(id=key_id, key_hash=_hash(key), user=user.strip(),
                           groups=[g.strip() for g in groups if g.strip()], note=note))
    return key_id, key


def revoke_key(store: Store, key_id: str) -> None:
    with store.session() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise KeyNotFound(key_id)
        row.revoked = row.revoked or utcnow()


def list_keys(store: Store) -> list[ApiKey]:
    with store.sessions() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created)))


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


def holder_of(store: Store, key: str) -> KeyHolder | None:
    """Who a presented key acts for; None for an unknown, revoked or wrong key."""
    key_id = key[len(PREFIX):].partition(".")[0]
    if not key_id or len(key_id) > 16:
        return None
    with store.sessions() as session:
        row = session.get(ApiKey, key_id)
    if row is None or row.revoked is not None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return KeyHolder(row.user, tuple(row.groups or ()))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
