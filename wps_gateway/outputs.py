"""A job's produced outputs as HTTP answers, shared by every protocol front end."""

from __future__ import annotations

import base64
import json
import mimetypes
import uuid
from collections.abc import Callable
from pathlib import Path

from lxml import etree
from werkzeug.wrappers import Response

from .results import output_bytes
from .store.models import Job


def raw_output(job: Job, output_id: str, jobs_dir: Path) -> Response:
    """One output of a succeeded job as the whole HTTP answer (WPS 1.0.0 RawDataOutput, WPS 2.0 and
    OGC API ``response=raw``). Raises ``LookupError`` if the job did not produce that output."""
    content, media_type, filename = raw_content(job, output_id, jobs_dir)
    response = Response(content, 200, content_type=media_type)
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def raw_content(job: Job, output_id: str, jobs_dir: Path) -> tuple[bytes, str, str | None]:
    """An output's bytes, media type, and file name (None for a value: a literal's text, a bounding box's JSON)."""
    produced = job.outputs.get(output_id)
    if produced is None:
        raise LookupError(output_id)
    if "value" in produced:
        value = produced["value"]
        if isinstance(value, dict):
            return json.dumps(value).encode(), "application/json", None
        return literal_text(value).encode("utf-8"), "text/plain; charset=utf-8", None
    name = produced["file"]
    media_type = produced.get("media_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return output_bytes(jobs_dir, job.id, produced), media_type, name


def multipart_outputs(job: Job, parts: list[tuple[str, str | None]], jobs_dir: Path) -> Response:
    """Several outputs as one ``multipart/related`` answer (OGC API ``response=raw``, RFC 2387): a part per
    output, named by its ``Content-ID``; ``parts`` are (output id, URL) pairs, an output with a URL going
    by reference (an empty part whose ``Content-Location`` points at it)."""
    boundary = f"wps-gateway-{uuid.uuid4().hex}"
    body = b""
    for output_id, url in parts:
        headers = [f"Content-ID: <{output_id}>"]
        if url is not None:
            content = b""
            headers.append(f"Content-Location: {url}")
        else:
            content, media_type, _ = raw_content(job, output_id, jobs_dir)
            headers.insert(0, f"Content-Type: {media_type}")
        body += "\r\n".join([f"--{boundary}", *headers, "", ""]).encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return Response(body, 200, content_type=f'multipart/related; boundary="{boundary}"')


def literal_text(value: object) -> str:
    """A literal as text: booleans as XML Schema writes them (true/false), everything else as Python would."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
    """A complex output inside a WPS document; ``make`` builds the protocol's element (ComplexData, Data),
    with text XML can hold (``xml_text.SAFE_TEXT``)."""
    kind = inline_kind(media_type)
    as_text = content.decode("utf-8", errors="replace")  # what a process wrote, whatever it is
    if kind == "json":
        try:
            return make({"mimeType": media_type}, json.dumps(json.loads(content)))
        except ValueError:  # not JSON after all: send it as text
            return make({"mimeType": media_type}, as_text)
    if kind == "xml":
        try:
            parsed = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:  # a process may write text its format calls XML: send it as text
            return make({"mimeType": media_type}, as_text)
        element = make({"mimeType": media_type})
        element.append(parsed)
        return element
    if kind == "text":
        return make({"mimeType": media_type}, as_text)
    return make({"mimeType": media_type, "encoding": "base64"}, base64.b64encode(content).decode("ascii"))
