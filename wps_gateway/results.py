"""Where a successful job's output files live: its outputs folder, or HDFS (``[yarn] results_dir``).

With a results directory, the dispatcher puts the files on HDFS when it
collects the outputs and removes the local copies; an output entry then
records its ``location`` (the ``hdfs://`` URI). Whoever reads an output's
bytes (``/outputs``, inline values, the STAC builder) asks ``output_bytes``
or ``open_output``, which go to the outputs folder or to WebHDFS. The HDFS
clients are made once per set of ``[yarn]`` settings and kept here, so the
protocol front ends, which know only the jobs folder, reach the same ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mesos_backend import BackendError
from mesos_backend.yarn.results import HdfsResults, ResultsUnavailable

from .config import Settings
from .planner import job_paths

_stores: dict[tuple, HdfsResults] = {}
_lock = threading.Lock()


def results_store(settings: Settings) -> HdfsResults | None:
    """The HDFS results directory of these settings, None unless the backend is yarn with ``results_dir``;
    BackendError for a bad setting."""
    if settings.backend != "yarn" or not (settings.yarn.get("results_dir") or "").strip():
        return None
    key = tuple(sorted(settings.yarn.items()))
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _make(settings)
        return store


def _make(settings: Settings) -> HdfsResults:
    from mesos_backend.yarn.backend import backend_options
    from mesos_backend.yarn.http import HadoopHttp
    from mesos_backend.yarn.results import results_dir_setting

    try:
        options = backend_options(settings.yarn, staging_default=(settings.data_dir / "yarn").as_uri())
        directory = results_dir_setting(settings.yarn)
    except ValueError as exc:
        raise BackendError(f"yarn backend: {exc}") from None
    http = HadoopHttp(options["webhdfs"], user=options["user"], auth=options["auth"], verify=options["verify"],
                      name="NameNode")
    return HdfsResults(directory, http)


def _store_of(location: str) -> HdfsResults:
    with _lock:
        for store in reversed(list(_stores.values())):
            if store.holds(location):
                return store
    raise ResultsUnavailable(f"{location}: no [yarn] results_dir of this gateway holds it (was it changed?)")


def put_outputs(store: HdfsResults, job_id: str, outputs_dir: Path, outputs: dict[str, Any]) -> None:
    """Put the files of ``outputs`` (entries of ``collect_outputs``) on HDFS, record where, remove the local copies.

    A file already gone locally was put there by an earlier try (its entry is checked on HDFS by the caller).
    Raises what WebHDFS raises; the local files stay until every one of them is on HDFS.
    """
    for entry in outputs.values():
        path = outputs_dir / entry["file"]
        if path.is_file():
            entry["location"] = store.put(job_id, path)
        else:
            entry["location"] = store.location(job_id, entry["file"])
    for entry in outputs.values():
        (outputs_dir / entry["file"]).unlink(missing_ok=True)


def output_bytes(jobs_dir: Path, job_id: str, entry: dict[str, Any]) -> bytes:
    """The bytes of an output file, wherever it lives."""
    location = entry.get("location")
    if location:
        return _store_of(location).read(location)
    return (job_paths(jobs_dir, job_id)["outputs"] / entry["file"]).read_bytes()


def open_output(location: str) -> tuple[Iterator[bytes], int | None]:
    """An output file on HDFS, streamed: its chunks and its length."""
    return _store_of(location).open(location)


def copy_output(location: str, target: Path) -> None:
    """An output file on HDFS written to a local file."""
    _store_of(location).copy(location, target)
