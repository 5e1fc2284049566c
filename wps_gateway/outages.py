"""When the job store cannot answer (down, locked, disk full): a 503 with ``Retry-After``, not a bare 500.

One rule decides what counts as an outage; each protocol says it in its own
words (an OWS ExceptionReport, an OGC API problem document).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_SECONDS = 5
UNAVAILABLE_TEXT = "The job store cannot be reached right now; try again in a few seconds"


def store_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) says the store is unreachable rather than that a request is wrong."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
