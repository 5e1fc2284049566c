"""WPS 2.0 handlers over the same job store as WPS 1.0.0.

Every operation goes through ``jobs.py`` (submit, get, wait, dismiss) and
``inputs.check_inputs``, so a job submitted with one protocol version is seen
by the other under the same id. Execute only writes an accepted job; the
dispatcher runs it.
"""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.wrappers import Request, Response

from processes.descriptor import Processor

from ..auth.identity import IdentityRequired
from ..conditional import Document, DocumentCache, conditional, respond, state_etag
from ..context import GatewayContext
from ..inputs import CheckedInputs, InputError, RawInput, check_inputs
from ..job_views import JobView
from ..jobs import JobNotFound, ResponseForm
from ..limits import LimitExceeded
from ..outages import UNAVAILABLE_TEXT, store_unavailable
from ..outputs import raw_output
from ..store.models import Job, JobStatus
from . import render
from .errors import Wps2Error
from .requests import DescribeProcess, Execute, GetCapabilities, JobRequest, Wps2Request, parse_kvp, parse_posted

LOG = logging.getLogger(__name__)
XML_MIMETYPE = "text/xml"
DISMISS_WAIT_SECONDS = 5.0  # how long Dismiss waits for the dispatcher to stop the tasks

class Wps2Service:
    """Answers WPS 2.0 requests on the shared job store."""

    def __init__(self, context: GatewayContext) -> None:
        self.context = context
        self.documents = DocumentCache()

    def call(self, request: Request) -> Response:
        """Parse, handle, and turn any failure into an OWS 2.0 ExceptionReport (never an HTML error page)."""
        try:
            parsed = parse_posted(request) if request.method == "POST" else parse_kvp(request.args)
            return self.handle(parsed, request)
        except Wps2Error as exc:
            return exc.response()
        except Exception as exc:
            if store_unavailable(exc):
                LOG.warning("WPS 2.0 request answered 503: the job store is unreachable (%s)", type(exc).__name__)
                return Wps2Error("NoApplicableCode", UNAVAILABLE_TEXT, status=503).response()
            LOG.exception("WPS 2.0 request failed")
            return Wps2Error("NoApplicableCode", "internal error, see the server log").response()

    def handle(self, parsed: Wps2Request, http: Request | None = None) -> Response:
        if isinstance(parsed, GetCapabilities):
            version, processors = self.context.catalogue()
            return respond(http, self.documents.get(version, "capabilities", lambda: _document(
                render.capabilities(list(processors.values()), self.context.settings.url))))
        if isinstance(parsed, DescribeProcess):
            version, _ = self.context.catalogue()
            chosen = self._processors(parsed.identifiers)
            return respond(http, self.documents.get(version, ("describe", *parsed.identifiers), lambda: _document(
                render.process_offerings(chosen))))
        if isinstance(parsed, Execute):
            return self.execute(parsed, http)
        return {"GetStatus": self.get_status, "GetResult": self.get_result,
                "Dismiss": self.dismiss}[parsed.operation](parsed, http)

    # -- DescribeProcess -----------------------------------------------------

    def _processors(self, identifiers: list[str]) -> list[Processor]:
        known = self.context.processors()
        if [i.lower() for i in identifiers] == ["all"]:
            return list(known.values())
        missing = [i for i in identifiers if i not in known]
        if missing:
            raise Wps2Error("NoSuchProcess", f"no process {', '.join(missing)}; offered: {', '.join(known)}",
                            missing[0])
        return [known[i] for i in identifiers]

    # -- Execute -------------------------------------------------------------

    def execute(self, request: Execute, http: Request | None = None) -> Response:
        processor = self.context.processors().get(request.identifier)
        if processor is None:
            raise Wps2Error("NoSuchProcess", f"no process {request.identifier!r}", request.identifier)
        raw = request.response == "raw"
        # "auto": the server chooses; raw data can only come back on the same connection.
        asynchronous = request.mode == "async" or (request.mode == "auto" and not raw)
        form = ResponseForm(outputs=_requested_outputs(request, processor), raw=raw, asynchronous=asynchronous)
        checked = _check_inputs(processor, request.inputs, self.context)
        try:
            job = self.context.submit(http, processor, checked, form, protocol="wps2")
            if asynchronous:
                return _xml(render.status_info(job))
            job = self.context.wait_for_job(job.id, self.context.settings.sync_timeout, http)
        except InputError as exc:
            raise Wps2Error(INPUT_CODES[exc.kind], exc.message, exc.locator) from exc
        except LimitExceeded as exc:
            raise Wps2Error("NoApplicableCode", str(exc), status=exc.status) from exc
        except IdentityRequired as exc:  # a process only some roles may execute (batch)
            raise Wps2Error("NoApplicableCode", str(exc), status=exc.status) from exc
        if job.status not in JobStatus.FINAL:
            return _xml(render.status_info(job))  # past sync_timeout: the client polls with GetStatus
        return self._result(job, raw_allowed=True)

    def _result(self, job: Job, raw_allowed: bool = False) -> Response:
        """The outcome of a final job: Result document (or, answering a synchronous Execute with
        response=raw, the raw output), or the reason it has none. GetResult always answers a Result."""
        if job.status == JobStatus.DISMISSED:
            raise Wps2Error("NoSuchJob", f"job {job.id} was dismissed; it has no results", "JobID")
        if job.status == JobStatus.FAILED:
            raise Wps2Error("InternalServerError", f"job {job.id} failed: {job.message or 'no reason given'}",
                            "JobID")
        form = ResponseForm.from_dict(job.response_form)
        if form.raw and raw_allowed:
            output_id = next(iter(form.outputs))
            try:
                return raw_output(job, output_id, self.context.settings.jobs_dir)
            except LookupError:
                raise Wps2Error("InternalServerError", f"job {job.id} did not produce output {output_id!r}",
                                output_id) from None
        settings = self.context.settings
        return _xml(render.result(job, settings.base_url, settings.jobs_dir))

    # -- job operations --------------------------------------------------------

    def _job(self, job_id: str, http: Request | None, status_only: bool = False) -> Job | JobView:
        """A job the request's identity may see (``status_only``: its status columns); another user's is no
        such job."""
        try:
            return (self.context.job_view_for if status_only else self.context.job_for)(http, job_id)
        except JobNotFound:
            raise Wps2Error("NoSuchJob", f"no job {job_id}", "JobID") from None

    def get_status(self, request: JobRequest, http: Request | None = None) -> Response:
        """StatusInfo from the job's status columns; 304 for a poller that has it (its ETag covers the job's
        state, not the clock: ``NextPoll`` and ``EstimatedCompletion`` move on between polls)."""
        job = self._job(request.job_id, http, status_only=True)
        etag = job.derived("wps2-etag", lambda: state_etag("wps2-status", job.state()))
        parts = job.derived("wps2-parts", lambda: render.status_parts(job))
        return conditional(http, etag, lambda: _xml(render.status_info(job, parts=parts)),
                           {"Cache-Control": "no-cache"})

    def get_result(self, request: JobRequest, http: Request | None = None) -> Response:
        job = self._job(request.job_id, http)
        if job.status not in JobStatus.FINAL:
            raise Wps2Error("ResultNotReady", f"job {job.id} is {render.status_word(job).lower()}; "
                            "poll GetStatus until it has succeeded", "JobID")
        return self._result(job)

    def dismiss(self, request: JobRequest, http: Request | None = None) -> Response:
        """Ask the dispatcher to stop the job, and wait a little for its tasks to be killed."""
        try:
            job = self.context.dismiss_for(http, request.job_id)
        except JobNotFound:
            raise Wps2Error("NoSuchJob", f"no job {request.job_id}", "JobID") from None
        if job.status not in JobStatus.FINAL:
            job = self.context.wait_for_job(job.id, DISMISS_WAIT_SECONDS, http)
        return _xml(render.status_info(job))


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status, mimetype=XML_MIMETYPE)


def _document(body: bytes) -> Document:
    return Document.of(body, f"{XML_MIMETYPE}; charset=utf-8")


def _requested_outputs(request: Execute, processor: Processor) -> dict[str, dict[str, Any]]:
    """The wps:Output elements as a ResponseForm's outputs, checked against the process."""
    specs = {o.id: o for o in processor.outputs}
    requested: dict[str, dict[str, Any]] = {}
    for output in request.outputs:
        spec = specs.get(output.id)
        if spec is None:
            raise Wps2Error("NoSuchOutput", f"process {processor.id!r} has no output {output.id!r}; "
                            f"its outputs are: {', '.join(specs)}", output.id)
        if output.mime_type and not spec.offers(output.mime_type):
            raise Wps2Error("NoSuchFormat", f"output {output.id!r} comes as {' or '.join(spec.media_types)}, "
                            f"not {output.mime_type}", output.id)
        as_reference = None if output.transmission is None else output.transmission == "reference"
        requested[output.id] = {"as_reference": as_reference, "mime_type": output.mime_type}
    if request.response == "raw":
        count = len(requested) or len(specs)
        if count != 1:
            raise Wps2Error("TooManyOutputs", "response=raw returns exactly one output; name it with one "
                            f"wps:Output (the process has {', '.join(specs)})", "Output")
        if not requested:
            requested = {next(iter(specs)): {"as_reference": None, "mime_type": None}}
    return requested


# What is wrong with an input (inputs.InputError.kind) in WPS 2.0's words.
INPUT_CODES = {"unknown": "NoSuchInput", "missing": "MissingParameterValue", "too_many": "TooManyInputs",
               "format": "NoSuchFormat", "refused": "DataNotAccessible", "value": "WrongInputData"}


def _check_inputs(processor: Processor, given: dict[str, list[RawInput]], context: GatewayContext) -> CheckedInputs:
    """``inputs.check_inputs``, its errors in WPS 2.0's exception codes."""
    try:
        return check_inputs(processor, given, context.address_policy)
    except InputError as exc:
        raise Wps2Error(INPUT_CODES[exc.kind], exc.message, exc.locator) from exc
