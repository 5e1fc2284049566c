"""The WPS service: PyWPS for parsing, capabilities and descriptions; the store for Execute.

Stock PyWPS runs an Execute in the serving process (or one process per async
job). Here Execute only checks the request, writes an accepted job, and
either answers at once with a ``statusLocation`` (async) or waits, bounded,
for the dispatcher to finish the job (sync).
"""

from __future__ import annotations

from typing import Any

from pywps import Service
from pywps.exceptions import InvalidParameterValue, MissingParameterValue, NoApplicableCode, ServerBusy
from werkzeug.wrappers import Request, Response

from processes.registry import to_pywps_process

from ..auth.identity import IdentityRequired
from ..context import GatewayContext
from ..inputs import InputError, RawInput, check_inputs
from ..jobs import ResponseForm
from ..limits import LimitExceeded
from ..outages import UNAVAILABLE_TEXT, store_unavailable
from ..outputs import raw_output
from ..store.models import JobStatus
from ..wps2.requests import is_wps2_kvp, is_wps2_xml
from ..wps2.service import Wps2Service
from .render import execute_response

XML_MIMETYPE = "text/xml"
ERRORS = {"MissingParameterValue": MissingParameterValue, "InvalidParameterValue": InvalidParameterValue}


class GatewayService(Service):
    """PyWPS ``Service`` whose Execute goes through the job store."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        super().__init__(processes=[to_pywps_process(p) for p in context.processors().values()])
        self._catalog_version = context.catalog_version
        self.wps2 = Wps2Service(context)

    def call(self, http_request: Request) -> Response:
        """WPS 2.0 requests (2.0 namespace, version=2.0.0, GetStatus/GetResult/Dismiss) go to ``wps2``."""
        if http_request.method == "POST":
            is_wps2 = "json" not in (http_request.content_type or "") and is_wps2_xml(http_request.get_data())
        else:
            is_wps2 = http_request.method == "GET" and is_wps2_kvp(http_request.args)
        if is_wps2:
            return self.wps2.call(http_request)
        self.context.processors()  # picks up what another replica deployed
        if self._catalog_version != self.context.catalog_version:
            self.refresh_processes()
        return super().call(http_request)

    def refresh_processes(self) -> None:
        """Pick up processors deployed since start."""
        from collections import OrderedDict

        version = self.context.catalog_version  # read first: a change while building is seen next time
        self.processes = OrderedDict(
            (p.id, to_pywps_process(p)) for p in self.context.processors().values())
        self._catalog_version = version

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
        form = _response_form(wps_request, {o.id for o in processor.outputs})
        http_request = getattr(wps_request, "http_request", None)
        try:
            checked = check_inputs(processor, _raw_inputs(wps_request.inputs), self.context.address_policy)
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




def server_busy() -> ServerBusy:
    """The WPS 1.0.0 answer while the job store is unreachable."""
    return ServerBusy(UNAVAILABLE_TEXT, code=503)


def _raw_inputs(inputs: dict[str, list[dict]]) -> dict[str, list[RawInput]]:
    out: dict[str, list[RawInput]] = {}
    for name, items in (inputs or {}).items():
        out[name] = [RawInput(value=item.get("data"), href=item.get("href") or None,
                              media_type=item.get("mimeType") or item.get("mimetype") or None,
                              encoding=item.get("encoding") or None) for item in items]
    return out


def _flag(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _response_form(wps_request: Any, output_ids: set[str]) -> ResponseForm:
    store = _flag(wps_request.store_execute)
    status = _flag(wps_request.status)
    if status and not store:
        raise InvalidParameterValue("status=true requires storeExecuteResponse=true", "status")
    requested: dict[str, dict[str, Any]] = {}
    for name, spec in (wps_request.outputs or {}).items():
        if name not in output_ids:
            raise InvalidParameterValue(f"the process has no output '{name}'", name)
        as_reference = spec.get("asReference") if isinstance(spec, dict) else None
        requested[name] = {"as_reference": None if as_reference in (None, "") else _flag(as_reference),
                           "mime_type": spec.get("mimetype") if isinstance(spec, dict) else None}
    raw = bool(wps_request.raw)
    if raw and len(requested) != 1:
        raise InvalidParameterValue("RawDataOutput names exactly one output", "RawDataOutput")
    if raw and store:
        raise InvalidParameterValue("RawDataOutput cannot be stored; drop storeExecuteResponse", "RawDataOutput")
    return ResponseForm(outputs=requested, raw=raw, lineage=_flag(wps_request.lineage), asynchronous=store)
