"""Shared pieces of the Slurm tests: a gateway or a bare backend on the test cluster, outputs read both ways."""

from __future__ import annotations

import io
from pathlib import Path

import rasterio

from mesos_backend import BackendState, EventCallback, TaskEvent
from mesos_backend.slurm.backend import PollOptions, SlurmBackend
from mesos_backend.slurm.commands import SlurmCommands
from mesos_backend.slurm.script import SubmitOptions

from .conftest import Gateway, build_gateway
from .jobs_support import wait_for
from .ogcapi_support import path_of, validate_official
from .servers.slurm import SlurmCluster

POLL = "0.2"  # seconds between squeue calls in the tests


def slurm_gateway(data_dir: Path, sample_data: Path, cluster: SlurmCluster, dispatcher: bool = True,
                  **extra: str) -> Gateway:
    """A gateway with ``backend = slurm`` on the test cluster, configured the way an operator would."""
    return build_gateway(data_dir, sample_data, dispatcher=dispatcher, **slurm_environ(cluster, **extra))


def slurm_environ(cluster: SlurmCluster, **extra: str) -> dict[str, str]:
    """The settings of a gateway (or a ``wps-gateway`` command) on the test cluster."""
    return {"GATEWAY_BACKEND": "slurm", "SLURM_CONF": str(cluster.conf), "SLURM_POLL_INTERVAL": POLL, **extra}


def slurm_backend(cluster: SlurmCluster, root: Path, state: BackendState | None = None,
                  submit: SubmitOptions | None = None, **poll: object) -> SlurmBackend:
    """The backend alone (no dispatcher), for what the gateway cannot show."""
    poll.setdefault("poll_interval", float(POLL))
    return SlurmBackend(root / "sandboxes", state=state, submit=submit, poll=PollOptions(**poll),
                        commands=SlurmCommands(conf=str(cluster.conf)))


class Events:
    """Collects a backend's events; ``terminal(id)`` waits for a task's end."""

    def __init__(self) -> None:
        self.seen: list[TaskEvent] = []

    @property
    def callback(self) -> EventCallback:
        return self.seen.append

    def of(self, task_id: str) -> list[TaskEvent]:
        return [e for e in list(self.seen) if e.task_id == task_id]

    def terminal(self, task_id: str, timeout: float = 60) -> TaskEvent:
        wait_for(lambda: any(e.state.is_terminal for e in self.of(task_id)), timeout)
        (event,) = [e for e in self.of(task_id) if e.state.is_terminal]
        return event


def ogcapi_outputs(gateway: Gateway, job_id: str) -> dict[str, object]:
    """The job's results through OGC API - Processes, in the form ``mesos_support.outputs_of`` gives."""
    results = validate_official("results", gateway.client.get(f"/jobs/{job_id}/results").json)
    outputs: dict[str, object] = {}
    for name, value in results.items():
        if not (isinstance(value, dict) and "href" in value):
            outputs[name] = value if not isinstance(value, dict) else value.get("value")
            continue
        body = gateway.client.get(path_of(value["href"])).body
        if "tiff" in value.get("type", ""):
            with rasterio.open(io.BytesIO(body)) as dataset:
                outputs[name] = dataset.read()
        else:
            outputs[name] = body
    return outputs


def literals_as_numbers(outputs: dict[str, object]) -> dict[str, object]:
    """WPS 1.0.0 gives literal outputs as text, OGC API as JSON numbers: compare them as numbers."""
    normal: dict[str, object] = {}
    for name, value in outputs.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                value = float(value)
            except ValueError:
                pass
        normal[name] = value
    return normal
