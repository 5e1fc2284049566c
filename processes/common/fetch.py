"""Turn an input reference into a local file path.

``file://`` URLs were already checked against the allow-list by the gateway and are read
in place; ``http(s)://`` URLs are downloaded into the task sandbox (the working directory).
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from .atomic import atomic_target
from .errors import InputError

DEFAULT_TIMEOUT = 120.0
USER_AGENT = "wps-gateway-processor/1.0"


def localize(url: str, download_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Return a local path holding the content of ``url``, downloading it if needed."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InputError(f"{url}: file URLs must not name a host")
        path = Path(url2pathname(unquote(parsed.path)))
        if not path.is_file():
            raise InputError(f"{url}: input file not found")
        return path
    if parsed.scheme in ("http", "https"):
        return _download(url, download_dir, timeout)
    raise InputError(f"{url}: unsupported URL scheme {parsed.scheme or '(none)'!r}; use file:// or http(s)://")


def _download(url: str, download_dir: Path, timeout: float) -> Path:
    """Download once per URL: a retried task finds the finished file and skips the transfer."""
    name = PurePosixPath(unquote(urlparse(url).path)).name or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    dest = Path(download_dir) / f"{digest}_{name}"
    if dest.is_file():
        return dest
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, atomic_target(dest) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: download failed with HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{url}: download failed ({reason})") from None
    return dest
