"""Tokens that prove a console form was filled in on a console page, not posted by another site.

A token is ``<time>.<HMAC of the user and the time>`` under a key kept in the
job store (made once, by whichever replica needs it first), so a page served
by one replica may be posted to any other; it is good for ``MAX_AGE``.
Another site can make an operator's browser post a form, but cannot read a
console page to learn a token. (Changes through ``/admin/api`` are JSON,
which another site's page cannot send: see ``admin.http``.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from sqlalchemy.exc import IntegrityError

from ..store.db import Store
from ..store.models import BackendStateEntry

FIELD = "csrf_token"
MAX_AGE = 12 * 3600
NAMESPACE, KEY = "console", "csrf_key"


class CsrfTokens:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def issue(self, user: str) -> str:
        stamp = str(int(time.time()))
        return f"{stamp}.{self._mac(user, stamp)}"

    def valid(self, user: str, token: str | None) -> bool:
        stamp, _, mac = (token or "").partition(".")
        if not (stamp.isascii() and stamp.isdigit()) or not 0 <= time.time() - int(stamp) <= MAX_AGE:
            return False  # (str.isdigit says yes to "²", which int() refuses)
        return hmac.compare_digest(mac.encode(), self._mac(user, stamp).encode())  # str: ASCII only

    def _mac(self, user: str, stamp: str) -> str:
        return hmac.new(self._secret(), f"{user}\n{stamp}".encode(), hashlib.sha256).hexdigest()

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = bytes.fromhex(self._stored_key())
            return self._key

    def _stored_key(self) -> str:
        """The key in the store; the first replica to need one makes it (a second one's insert fails: it reads)."""
        for _ in range(3):
            with self.store.sessions() as session:
                entry = session.get(BackendStateEntry, (NAMESPACE, KEY))
                if entry is not None:
                    return entry.value
                session.add(BackendStateEntry(backend=NAMESPACE, key=KEY, value=secrets.token_hex(32)))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
        raise RuntimeError("the console's form key could not be stored")
