"""One redaction for every URL that reaches a log or a response.

Credentials travel inside URLs more often than anyone likes: ``user:password@``
in a callback or database URL, a token or a signature in a query string (a
presigned object-store URL, an API key). ``redact`` masks both wherever they
appear in a text; ``RedactingFilter`` applies it to every log record of the
process (our own loggers, httpx's request log, kazoo's, ...), so no code path
has to remember to.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s?#]*):(?P<secret>[^@/\s?#]*)@")
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;](?:[^=&;\s#]*?)(?:token|secret|password|passwd|pwd|key|signature|sig|credential|auth)"
    r"[^=&;\s#]*=)(?P<value>[^&;\s#\"'<]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with passwords in URLs and secret-looking query parameter values masked."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@" if m["secret"] else m[0], text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['name']}{MASK}" if m["value"] else m[0], text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message (and the traceback) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Redact everything the handlers of ``logger`` (default: the root logger) write."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
