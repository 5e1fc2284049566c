"""The echo task; run as ``python -m processes.echo.task echo``. Writes back each input it was given."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from processes.common.atomic import atomic_target, write_json, write_text
from processes.common.fetch import local_input
from processes.common.runner import main
from processes.common.taskenv import Task

DESCRIPTOR = Path(__file__).with_name("descriptor.yaml")


def echo_step(task: Task) -> None:
    """Wait ``pause`` seconds, then write one output per input given, unchanged."""
    time.sleep(task.number("pause"))  # the process's own behaviour: a job that stays running a while
    literal = task.inputs.get("literalInput")
    if literal is not None:
        write_text(task.outputs_dir / "literalOutput.txt", str(literal))
    if task.inputs.get("complexInput") is not None:
        with local_input(task.urls("complexInput")[0], task.step_dir, task.fetch) as source, \
                atomic_target(task.outputs_dir / "complexOutput.xml") as tmp:
            shutil.copyfile(source, tmp)
    bbox = task.inputs.get("boundingboxInput")
    if bbox is not None:
        write_json(task.outputs_dir / "boundingboxOutput.json", bbox)


STEPS = {"echo": echo_step}

if __name__ == "__main__":
    main(STEPS, DESCRIPTOR)
