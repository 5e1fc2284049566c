"""A job's produced outputs as HTTP answers, shared by every protocol front end."""

from __future__ import annotations

import mimetypes
from pathlib import Path

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
