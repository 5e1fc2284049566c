"""Pages of ``/jobs`` by key: the ``cursor`` of a next or previous link names where the page starts.

An ``offset`` makes the database count its way to a page, so a late page of
a big store costs as much as reading it all; a key (creation time and id of
the job next to the page, ``jobs.PageKey``) is an index range wherever the
page is. The cursor is opaque to clients: the direction and the key, base64.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from ..jobs import PageKey

NEXT, PREV = "next", "prev"


def cursor(direction: str, key: PageKey) -> str:
    """The ``cursor`` parameter of the page after (``next``) or before (``prev``) the job at ``key``."""
    text = f"{direction}|{key.created.isoformat()}|{key.id}"
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def read_cursor(text: str) -> tuple[str, PageKey]:
    """The direction and key of a ``cursor``; ValueError for anything this server did not write."""
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor of this server") from None
    direction, _, rest = decoded.partition("|")
    created, _, job_id = rest.partition("|")
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        raise ValueError("not a cursor of this server") from None
    if direction not in (NEXT, PREV) or when.tzinfo is None or not job_id:
        raise ValueError("not a cursor of this server")
    return direction, PageKey(when, job_id)
