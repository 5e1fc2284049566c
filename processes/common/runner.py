"""Entry point of every ``task.py``: dispatch on the step name, turn failures into exit 1.

The gateway shows the last stderr line to the user, so whatever goes wrong ends with one
readable line there; unexpected errors also print their traceback above it for operators.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from .descriptor import input_defaults, load_descriptor
from .errors import TaskError
from .taskenv import Task, load_task
from .usage import write_report

StepFn = Callable[[Task], None]
MAX_REASON = 500


def run(steps: Mapping[str, StepFn], descriptor: Path, argv: Sequence[str] | None = None) -> int:
    """Run the step named in ``argv`` (default ``sys.argv[1:]``); return the process exit code.

    Whatever the outcome, the task's usage report is written before the
    failure reason, so that the reason stays the last line of stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    task: Task | None = None
    reason: str | None = None
    try:
        if len(args) != 1 or args[0] not in steps:
            choices = ", ".join(steps)
            raise TaskError(f"usage: python -m <processor>.task STEP, where STEP is one of {choices}")
        task = load_task(defaults=input_defaults(load_descriptor(descriptor)))
        if task.step != args[0]:
            raise TaskError(f"step mismatch: command line says {args[0]!r}, WPS_TASK says {task.step!r}")
        steps[args[0]](task)
    except TaskError as exc:
        reason = str(exc)
    except Exception as exc:  # any crash must still end with a one-line reason
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}"
    _report_usage(task)
    if reason is not None:
        _fail(reason)
        return 1
    return 0


def _report_usage(task: Task | None) -> None:
    """Leave the usage report the gateway asked for (see ``usage.py``); never fail the task over it."""
    path = task.usage_report if task is not None else None
    if path is None:
        return
    try:
        write_report(path, task.attempt)
    except OSError as exc:
        print(f"warning: usage report {path} not written: {exc}", file=sys.stderr)


def main(steps: Mapping[str, StepFn], descriptor: Path) -> NoReturn:
    """``run`` then exit with its code; call from ``if __name__ == "__main__"``."""
    sys.exit(run(steps, descriptor))


def _fail(reason: str) -> None:
    sys.stdout.flush()
    line = " ".join(reason.split()) or "task failed"
    if len(line) > MAX_REASON:
        line = line[: MAX_REASON - 3] + "..."
    print(line, file=sys.stderr, flush=True)
