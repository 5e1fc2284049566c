"""Task lists for the tests, in the shape mesos-batch takes (Mesos TaskGroupInfo JSON), and ``batch run`` as a
separate process, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from wps_gateway.store.db import Store
from wps_gateway.store.models import Job, Task

from .conftest import gateway_environ

# The mean NDVI of one scene (bands B04 and B08 of the sample tiles), written as OUT.txt into DEST (by default
# the task's step folder): real work on real rasters, checked against numpy in the tests.
NDVI_MEAN = ("import json, os, pathlib, sys, numpy, rasterio; t = json.loads(os.environ['WPS_TASK']); "
             "d = rasterio.open(sys.argv[1]); names = list(d.descriptions); "
             "red = d.read(names.index('B04') + 1).astype('float64'); nir = d.read(names.index('B08') + 1)"
             ".astype('float64'); v = float(numpy.nanmean((nir - red) / (nir + red))); "
             "pathlib.Path(os.environ.get('DEST') or t['step_dir'], os.environ['OUT'] + '.txt').write_text(repr(v))")


def task(name: str, command: str, *, cpus: float = 0.2, mem: float = 64, env: dict[str, str] | None = None,
         uris: list[dict[str, Any]] | None = None, shell: bool = True, arguments: list[str] | None = None,
         **extra: Any) -> dict[str, Any]:
    """One TaskInfo as mesos-batch's examples write it (an empty agent_id, resources with a role)."""
    command_info: dict[str, Any] = {"value": command}
    if not shell:
        command_info.update(shell=False, arguments=arguments or [command])
    if env:
        command_info["environment"] = {"variables": [{"name": k, "value": v} for k, v in env.items()]}
    if uris:
        command_info["uris"] = uris
    return {"name": name, "task_id": {"value": name}, "agent_id": {"value": ""},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*"},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*"}],
            "command": command_info, **extra}


def task_list(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": list(tasks)}


def write_list(path: Path, *tasks: dict[str, Any]) -> Path:
    path.write_text(json.dumps(task_list(*tasks), indent=2))
    return path


def ndvi_tasks(scenes: list[Path], dest: str = "", name: str = "ndvi") -> list[dict[str, Any]]:
    """One task per scene: the scene fetched into the sandbox (a URI), its mean NDVI computed there."""
    env = {"DEST": dest} if dest else {}
    return [task(f"{name}-{n}", f"python -c \"{NDVI_MEAN}\" {scene.name}", env={"OUT": scene.stem, **env},
                 uris=[{"value": scene.as_uri(), "extract": False}]) for n, scene in enumerate(scenes)]


def environ(data_dir: Path, sample_data: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **gateway_environ(data_dir, sample_data, "http://localhost/wps"), **extra}


def batch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wps_gateway.cli", "--log-level", "WARNING", "batch", "run", *args]


def batch_run(data_dir: Path, sample_data: Path, *args: str, timeout: float = 180,
              **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(*args), env=environ(data_dir, sample_data, **extra), capture_output=True,
                          text=True, timeout=timeout)


def jobs_in(data_dir: Path) -> list[Job]:
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        with store.sessions() as session:
            return list(session.scalars(select(Job).order_by(Job.created)))
    finally:
        store.dispose()


def tasks_of(data_dir: Path, job_id: str) -> list[Task]:
    store = Store(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        with store.sessions() as session:
            rows = list(session.scalars(select(Task).where(Task.job_id == job_id).order_by(Task.seq)))
            for row in rows:
                _ = row.spec, row.attempt_rows  # loaded before the session closes
            return rows
    finally:
        store.dispose()
