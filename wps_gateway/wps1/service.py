"""The WPS service: PyWPS for parsing, capabilities and descriptions; the store for Execute.

Stock PyWPS runs an Execute in the serving process (or one process per async
job). Here Execute only checks the request, writes an accepted job, and
either answers at once with a ``statusLocation`` (async) or waits, bounded,
for the dispatcher to finish the job (sync).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

from lxml import etree
from pywps import Service
from pywps.app.basic import get_default_response_mimetype, get_response_type
from pywps.app.WPSRequest import WPSRequest
from pywps.exceptions import (
    InvalidParameterValue,
    MissingParameterValue,
    NoApplicableCode,
    OperationNotSupported,
    ServerBusy,
    VersionNegotiationFailed,
)
from pywps.response.capabilities import CapabilitiesResponse
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from processes.descriptor import IOSpec, Processor
from processes.registry import to_pywps_process

from ..auth.identity import IdentityRequired
from ..conditional import Document, DocumentCache, respond
from ..context import GatewayContext
from ..inputs import InputError, RawInput, check_inputs
from ..jobs import ResponseForm
from ..limits import LimitExceeded
from ..outages import UNAVAILABLE_TEXT, store_unavailable
from ..outputs import raw_output
from ..store.models import JobStatus
from ..wps2.requests import is_wps2_kvp, is_wps2_posted
from ..wps2.service import Wps2Service
from ..xml_body import SAFE_XML, body_root
from . import requests
from .render import execute_response
from .request_log import RequestLog

LOG = logging.getLogger(__name__)
XML_MIMETYPE = "text/xml"
CATALOGUE_OPERATIONS = ("getcapabilities", "describeprocess")
ERRORS = {"MissingParameterValue": MissingParameterValue, "InvalidParameterValue": InvalidParameterValue}


class GatewayService(Service):
    """PyWPS ``Service`` whose Execute goes through the job store."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        super().__init__(processes=[to_pywps_process(p) for p in context.processors().values()])
        self._catalog_version = context.catalog_version
        self.wps2 = Wps2Service(context)
        self.documents = DocumentCache()
        self.request_log = RequestLog(context.settings.request_log) if context.settings.request_log else None
        self._templates: Any = None  # PyWPS's Jinja2 templates, compiled once (PyWPS compiles them per answer)

    def call(self, http_request: Request) -> Response:
        """WPS 2.0 requests (2.0 namespace, version=2.0.0, GetStatus/GetResult/Dismiss) go to ``wps2``."""
        if http_request.method == "POST" and "json" in (http_request.content_type or ""):
            return InvalidParameterValue(  # PyWPS would read it in an undocumented JSON dialect of its own
                "/wps takes WPS 1.0.0 or 2.0 requests in XML (POST) or KVP (GET); JSON execute requests go to "
                "OGC API - Processes: POST /processes/{processId}/execution", "request")
        if http_request.method == "POST":
            is_wps2 = is_wps2_posted(http_request)
        else:
            is_wps2 = http_request.method == "GET" and is_wps2_kvp(http_request.args)
        if is_wps2:
            return self.wps2.call(http_request)
        try:
            check_request(http_request)
        except NoApplicableCode as exc:
            return exc
        self.context.processors()  # picks up what another replica deployed
        if self._catalog_version != self.context.catalog_version:
            self.refresh_processes()
        return self._call_wps1(http_request)

    def _call_wps1(self, http_request: Request) -> Response:
        """PyWPS's request handling (its parser and error answers), without its request log: capabilities
        and descriptions come from the document cache, Execute goes to the job store."""
        started = datetime.now()
        wps_request: Any = None
        try:
            wps_request = WPSRequest(http_request)
            if wps_request.operation in CATALOGUE_OPERATIONS:
                response = self._catalogue(wps_request, http_request)
            elif wps_request.operation == "execute":
                response = self.execute(wps_request.identifier, wps_request, None)
            else:
                raise OperationNotSupported(f"Unknown request {wps_request.operation}", "request")
        except NoApplicableCode as exc:
            response = exc
        except HTTPException as exc:
            response = NoApplicableCode(exc.description, code=exc.code)
        except Exception:
            LOG.exception("WPS 1.0.0 request failed")
            response = NoApplicableCode("No applicable error code, please check error log.", code=500)
        if self.request_log is not None and wps_request is not None and wps_request.operation:
            failed = isinstance(response, HTTPException) or response.status_code >= 400
            self.request_log.record(wps_request, started, not failed,
                                    getattr(response, "description", "") if failed else "")
        return response

    def _catalogue(self, wps_request: Any, http_request: Request) -> Response:
        """GetCapabilities or DescribeProcess, rendered once per catalogue version and what else the document
        depends on (language, identifiers, JSON or XML as the Accept header and ``f`` choose)."""
        as_json, mimetype = get_response_type(http_request.accept_mimetypes, wps_request.default_mimetype)
        key = (wps_request.operation, wps_request.version, wps_request.language,
               tuple(wps_request.identifiers or ()), as_json, mimetype)
        document = self.documents.get(self._catalog_version, key, lambda: self._render_catalogue(wps_request))
        return respond(http_request, document)

    def _render_catalogue(self, wps_request: Any) -> Document:
        if wps_request.operation == "getcapabilities":
            response = self.get_capabilities(wps_request, None)
        else:
            response = self.describe(wps_request, None, wps_request.identifiers)
        if self._templates is None:
            self._templates = response.template_env
        response.template_env = self._templates
        doc, mimetype = response._construct_doc()  # not get_response_doc: that writes the request log
        return Document.of(doc, mimetype or get_default_response_mimetype(), {"Vary": "Accept"})

    def refresh_processes(self) -> None:
        """Pick up processors deployed since start."""
        version = self.context.catalog_version  # read first: a change while building is seen next time
        self.processes = OrderedDict(
            (p.id, to_pywps_process(p)) for p in self.context.processors().values())
        self._catalog_version = version

    def get_capabilities(self, wps_request: Any, uuid: Any) -> CapabilitiesResponse:
        """Always the 1.0.0 document: 2.0 requests never reach PyWPS (``call`` routed them)."""
        wps_request.set_version(requests.VERSION)
        return Capabilities100(wps_request, uuid, version=requests.VERSION, processes=self.processes)

    def execute(self, identifier: str, wps_request: Any, uuid: Any) -> Response:
        """Execute, with a store outage answered as ServerBusy (503) instead of PyWPS's generic 500."""
        try:
            return self._execute(identifier, wps_request)
        except Exception as exc:
            if store_unavailable(exc):
                raise server_busy() from exc
            raise

    def _execute(self, identifier: str, wps_request: Any) -> Response:
        processor = self.context.processors().get(identifier)
        if processor is None:
            raise InvalidParameterValue(f"Unknown process '{identifier}'", "Identifier")
        raw = _raw_inputs(processor, wps_request.inputs, getattr(wps_request, "http_request", None))
        form = _response_form(wps_request, processor, list(raw))
        http_request = getattr(wps_request, "http_request", None)
        try:
            checked = check_inputs(processor, raw, self.context.address_policy)
            job = self.context.submit(http_request, processor, checked, form, protocol="wps1")
            if not form.asynchronous:
                job = self.context.wait_for_job(job.id, self.context.settings.sync_timeout, http_request)
        except InputError as exc:
            raise ERRORS.get(exc.code, InvalidParameterValue)(exc.message, exc.locator) from exc
        except LimitExceeded as exc:
            raise (ServerBusy if exc.status == 429 else NoApplicableCode)(str(exc), code=exc.status) from exc
        except IdentityRequired as exc:  # a process only some roles may execute (batch)
            raise NoApplicableCode(str(exc), code=exc.status) from exc
        settings = self.context.settings
        if not form.asynchronous:
            if form.raw and job.status == JobStatus.SUCCESSFUL:
                return self._raw_output(job, form)
            if form.raw and job.status in JobStatus.FINAL:
                raise NoApplicableCode(job.message or "Process failed", code=500)
        body = execute_response(job, settings.base_url, settings.url, settings.jobs_dir)
        return Response(body, 200, mimetype=XML_MIMETYPE)

    def _raw_output(self, job, form: ResponseForm) -> Response:
        output_id = next(iter(form.outputs))
        try:
            return raw_output(job, output_id, self.context.settings.jobs_dir)
        except LookupError:
            raise NoApplicableCode(f"output {output_id!r} was not produced", code=500) from None


class Capabilities100(CapabilitiesResponse):
    """PyWPS's 1.0.0 capabilities, listing only the version the document is (its template lists 2.0.0 too,
    and OWS Common makes a client expect the answer in the highest version listed)."""

    def _construct_doc(self):
        doc, mimetype = super()._construct_doc()
        if not isinstance(doc, str) or not doc.lstrip().startswith("<"):
            return doc, mimetype
        root = etree.fromstring(doc.encode("utf-8"), SAFE_XML)
        for element in root.iterfind(f".//{{{requests.OWS_NS}}}ServiceTypeVersion"):
            if (element.text or "").strip() != requests.VERSION:
                element.getparent().remove(element)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8"), mimetype


def check_request(http_request: Request) -> None:
    """The WPS 1.0.0 checks PyWPS does not make (see ``requests``), and version negotiation."""
    if http_request.method == "GET":
        args = http_request.args
        requests.check_kvp(args)
        accept = next((v for k, v in args.items() if k.lower() == "acceptversions"), "")
        _negotiated(requests.kvp_versions(accept))
        return
    root = body_root(http_request)  # well-formed: app.guard_xml_body checked
    requests.check_xml(root)
    if etree.QName(root).localname == "GetCapabilities":
        _negotiated(requests.xml_versions(root))


def _negotiated(accept_versions: list[str]) -> None:
    if requests.negotiate(accept_versions) is None:
        raise VersionNegotiationFailed(f"this server speaks WPS {' and '.join(requests.SUPPORTED_VERSIONS)}, "
                                       f"not {', '.join(accept_versions)}", "AcceptVersions")


def server_busy() -> ServerBusy:
    """The WPS 1.0.0 answer while the job store is unreachable."""
    return ServerBusy(UNAVAILABLE_TEXT, code=503)


def _raw_inputs(processor: Processor, inputs: dict[str, list[dict]], http_request: Request | None
                ) -> dict[str, list[RawInput]]:
    specs = {spec.id: spec for spec in processor.inputs}
    posted = _posted_bboxes(http_request) if any(spec.is_bbox for spec in processor.inputs) else {}
    out: dict[str, list[RawInput]] = {}
    for name, items in (inputs or {}).items():
        if isinstance(items, dict):  # PyWPS's KVP parser gives an input written without "=" as one item, not a list
            items = [items]
        spec = specs.get(name)
        boxes = iter(posted.get(name, []))
        out[name] = [_raw_input(spec, item, next(boxes, None)) for item in items]
    return out


def _posted_bboxes(http_request: Request | None) -> dict[str, list[dict[str, Any]]]:
    """The bounding boxes of a POST Execute, corners as written (PyWPS reads them through OWSLib, which
    swaps the axes of some CRS): ``{"bbox": lower + upper, "crs": ...}`` per input, in order."""
    if http_request is None or http_request.method != "POST":
        return {}
    boxes: dict[str, list[dict[str, Any]]] = {}
    root = body_root(http_request)
    for element in root.iterfind(f"{{{requests.WPS_NS}}}DataInputs/{{{requests.WPS_NS}}}Input"):
        box = element.find(f"{{{requests.WPS_NS}}}Data/{{{requests.WPS_NS}}}BoundingBoxData")
        if box is not None:
            corners = [*(box.findtext(f"{{{requests.OWS_NS}}}LowerCorner") or "").split(),
                       *(box.findtext(f"{{{requests.OWS_NS}}}UpperCorner") or "").split()]
            value = {"bbox": corners, **({"crs": box.get("crs")} if box.get("crs") else {})}
            boxes.setdefault((element.findtext(f"{{{requests.OWS_NS}}}Identifier") or "").strip(), []).append(value)
    return boxes


def _raw_input(spec: IOSpec | None, item: dict, posted_bbox: dict[str, Any] | None = None) -> RawInput:
    """One input as PyWPS parsed it. PyWPS already decoded inline base64 (to bytes; text when it could not):
    only undecoded content keeps its encoding, so that ``check_inputs`` reports it as invalid base64."""
    encoding = item.get("encoding") or None
    data = item.get("data")
    if encoding and encoding.lower() == "base64" and isinstance(data, bytes):
        encoding = None
    if spec is not None and spec.is_bbox and not item.get("href"):
        data = posted_bbox or _bbox(data, item.get("crs"))
    return RawInput(value=data, href=item.get("href") or None,
                    media_type=item.get("mimeType") or item.get("mimetype") or None, encoding=encoding)


def _bbox(data: Any, crs: str | None) -> Any:
    """A bounding box as PyWPS hands it over: four corner values from XML, or the KVP text
    ``minx,miny,maxx,maxy[,crs]``; anything else goes on to be refused by ``check_inputs``."""
    if isinstance(data, str):
        parts = [p.strip() for p in data.split(",")]
        if len(parts) in (5, 7):
            crs = parts.pop()
        data = parts
    if not isinstance(data, list):
        return data
    return {"bbox": data, **({"crs": crs} if crs else {})}


def _flag(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _requested_outputs(wps_request: Any) -> tuple[dict[str, dict[str, Any]], bool]:
    """The outputs asked for and whether raw: from the KVP parameters (which PyWPS misreads), else the XML."""
    http_request = getattr(wps_request, "http_request", None)
    if http_request is not None and http_request.method == "GET":
        params = {k.lower(): v for k, v in http_request.args.items()}
        for key, raw in (("responsedocument", False), ("rawdataoutput", True)):
            if params.get(key):
                return {o.id: {"asReference": o.attributes.get("asReference"),
                               "mimetype": o.attributes.get("mimeType")}
                        for o in requests.kvp_outputs(params[key])}, raw
        return {}, False
    outputs = {name: spec if isinstance(spec, dict) else {} for name, spec in (wps_request.outputs or {}).items()}
    return outputs, bool(wps_request.raw)


def _response_form(wps_request: Any, processor: Processor, given: list[str]) -> ResponseForm:
    store = _flag(wps_request.store_execute)
    status = _flag(wps_request.status)
    if status and not store:
        raise InvalidParameterValue("status=true requires storeExecuteResponse=true", "status")
    outputs, raw = _requested_outputs(wps_request)
    specs = {o.id: o for o in processor.outputs}
    requested: dict[str, dict[str, Any]] = {}
    for name, spec in outputs.items():
        output = specs.get(name)
        if output is None:
            raise InvalidParameterValue(f"the process has no output '{name}'", name)
        mime_type = spec.get("mimetype") or None
        if mime_type and not output.offers(mime_type):
            raise InvalidParameterValue(f"output '{name}' comes as {' or '.join(output.media_types)}, not "
                                        f"{mime_type}", name)
        as_reference = spec.get("asReference")
        requested[name] = {"as_reference": None if as_reference in (None, "") else _flag(as_reference),
                           "mime_type": mime_type}
    if raw and len(requested) != 1:
        raise InvalidParameterValue("RawDataOutput names exactly one output", "RawDataOutput")
    if raw and store:
        raise InvalidParameterValue("RawDataOutput cannot be stored; drop storeExecuteResponse", "RawDataOutput")
    lineage = _flag(wps_request.lineage)
    return ResponseForm(outputs=requested, raw=raw, lineage=lineage, asynchronous=store,
                        given=given if lineage else None)
