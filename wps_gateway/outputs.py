"""A job's produced outputs as HTTP answers, shared by every protocol front end."""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Callable
from pathlib import Path

from lxml import etree
from werkzeug.wrappers import Response

from .planner import job_paths
from .store.models import Job


def raw_output(job: Job, output_id: str, jobs_dir: Path) -> Response:
    """One output of a succeeded job as the whole HTTP answer (WPS 1.0.0 RawDataOutput, WPS 2.0 and
    OGC API ``response=raw``). Raises ``LookupError`` if the job did not produce that output."""
    produced = job.outputs.get(output_id)
    if produced is None:
        raise LookupError(output_id)
    if "value" in produced:
        return Response(str(produced["value"]), 200, content_type="text/plain; charset=utf-8")
    path = job_paths(jobs_dir, job.id)["outputs"] / produced["file"]
    media_type = produced.get("media_type") or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = Response(path.read_bytes(), 200, content_type=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
    return response


def inline_kind(media_type: str) -> str:
    """How a complex output goes inline: ``json`` (parsed), ``xml`` (as elements), ``text``, or ``binary`` (base64).
    One rule for every protocol, so a client sees the same output the same way through each."""
    main = media_type.split(";", 1)[0].strip().lower()
    if main.endswith("json"):
        return "json"
    if main.endswith("xml"):
        return "xml"
    return "text" if main.startswith("text/") else "binary"


def xml_inline(make: Callable[..., etree._Element], media_type: str, content: bytes) -> etree._Element:
    """A complex output inside a WPS document; ``make`` builds the protocol's element (ComplexData, Data)."""
    kind = inline_kind(media_type)
    if kind == "json":
        return make({"mimeType": media_type}, json.dumps(json.loads(content)))
    if kind == "xml":
        element = make({"mimeType": media_type})
        element.append(etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True)))
        return element
    if kind == "text":
        return make({"mimeType": media_type}, content.decode("utf-8"))
    return make({"mimeType": media_type, "encoding": "base64"}, base64.b64encode(content).decode("ascii"))
