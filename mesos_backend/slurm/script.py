"""TaskSpec → the batch script and ``sbatch`` options of one Slurm job.

The environment. By default sbatch exports its own environment to the job,
and the gateway's (its secrets) must never reach a task. ``--export=NONE``
would keep it out, but then ``slurmd`` builds the job owner's login
environment on the node for every job (a login shell per job: here 100 no-op
jobs took 40 s instead of 27 s, and a broken login script fails the job).
So ``sbatch`` itself runs with an environment of nothing but ``PATH``,
``SLURM_CONF`` and, on auth/jwt sites, ``SLURM_JWT`` (see ``commands``), and
exports that (``--export=ALL``). The script then clears whatever it was given
anyway (a site may force another export mode), keeping only Slurm's own job
variables (``SLURM_*`` but ``SLURM_JWT``, ``SLURMD_NODENAME``) and ``TMPDIR``
(the node's scratch, as the site set it); it exports the task's variables,
quoted for the shell, and ``SLURM_EXPORT_ENV=ALL`` so that an ``srun`` in the
container prefix passes exactly this environment on. A task without a
``PATH`` of its own gets ``path`` (see ``SubmitOptions``). The variables
travel inside the script, which Slurm keeps in its state directory and shows
only to the job's owner and administrators.

The command runs with ``exec`` (no shell in between, so signals from
``scancel`` reach it), in the sandbox (``--chdir``) or in ``spec.workdir``,
with ``stdout`` and ``stderr`` files in the sandbox. A task with an image (its
own or ``image``) runs behind ``container_prefix``, e.g. ``srun apptainer exec
docker://{image}``, where ``{image}`` becomes the image.

Resources: ``--cpus-per-task`` (whole cpus, rounded up), ``--mem`` in MiB,
``--gres=gpu:N``, and ``--time`` from the step's timeout in whole minutes
(Slurm's unit, rounded up). Disk is not requested: Slurm's ``--tmp`` is node
scratch, which many sites do not configure; ``extra_args`` can ask for it.
Each attempt is one job with ``--no-requeue``: the dispatcher, not Slurm,
decides about reruns.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..base import BackendError, TaskSpec

KEPT_VARIABLES = ("SLURM_*", "SLURMD_NODENAME", "TMPDIR")
DROPPED_VARIABLES = ("SLURM_JWT",)  # a submitter's credential (auth/jwt sites), never the task's
IMAGE_PLACEHOLDER = "{image}"
COMMENT_PREFIX = "wps-gateway:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Only builtins run after the first line, so a PATH cleared by the loop cannot break it.
_CLEAR_ENVIRONMENT = """\
for name in $(PATH=/usr/bin:/bin env | PATH=/usr/bin:/bin sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do
  case $name in {dropped}) unset "$name" ;; {kept}) ;; *) unset "$name" ;; esac
done
"""


@dataclass(frozen=True)
class SubmitOptions:
    """How every job of this gateway is submitted (the ``[slurm]`` settings that shape a job)."""

    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    extra_args: tuple[str, ...] = ()  # more sbatch options, as the site needs (--constraint, --reservation)
    container_prefix: tuple[str, ...] = ()  # argv put before the command of a task with an image
    image: str | None = None  # overrides every task's image
    path: str = "/usr/local/bin:/usr/bin:/bin"  # PATH of a task that does not set its own


def job_name(spec: TaskSpec) -> str:
    """The attempt's id: what ``recover`` looks jobs up by."""
    return spec.task_id


def comment(instance: str, spec: TaskSpec) -> str:
    """``wps-gateway:<instance> job=<id> task=<id> step=<id>``: whose job this is, for recovery and operators."""
    labels = " ".join(f"{name}={spec.labels[key]}" for key, name in (("job_id", "job"), ("task_id", "task"),
                                                                     ("step", "step")) if spec.labels.get(key))
    return f"{COMMENT_PREFIX}{instance}" + (f" {labels}" if labels else "")


def instance_of(job_comment: str) -> str | None:
    """The gateway instance a job's comment names, or None for somebody else's job."""
    first = job_comment.split(" ", 1)[0]
    return first[len(COMMENT_PREFIX):] if first.startswith(COMMENT_PREFIX) else None


def sbatch_args(spec: TaskSpec, sandbox: Path, instance: str, options: SubmitOptions) -> list[str]:
    """Options for ``sbatch --parsable`` (which reads the script from stdin)."""
    res = spec.resources
    args = [
        "--export=ALL", "--no-requeue", "--nodes=1", "--ntasks=1",
        f"--job-name={job_name(spec)}", f"--comment={comment(instance, spec)}",
        f"--chdir={sandbox}", f"--output={sandbox / 'stdout'}", f"--error={sandbox / 'stderr'}",
        f"--cpus-per-task={max(1, math.ceil(res.cpus - 1e-9))}",
    ]
    if res.mem > 0:
        args.append(f"--mem={max(1, math.ceil(res.mem - 1e-9))}M")
    if res.gpus:
        args.append(f"--gres=gpu:{int(res.gpus)}")
    if spec.timeout:
        args.append(f"--time={time_limit_minutes(spec.timeout)}")
    for flag, value in (("partition", options.partition), ("account", options.account), ("qos", options.qos)):
        if value:
            args.append(f"--{flag}={value}")
    return args + list(options.extra_args)


def time_limit_minutes(timeout: float) -> int:
    """Slurm's time limits are whole minutes: the step's timeout, rounded up."""
    return max(1, math.ceil(timeout / 60.0 - 1e-9))


def batch_script(spec: TaskSpec, options: SubmitOptions) -> str:
    """The script: clear the environment, set the task's, change to its workdir, exec its command."""
    if not spec.command:
        raise BackendError(f"task {spec.task_id!r} has an empty command")
    environment = dict(spec.environment)
    environment.setdefault("PATH", options.path)
    environment["SLURM_EXPORT_ENV"] = "ALL"
    bad = sorted(name for name in environment if not _NAME.match(name))
    if bad:
        raise BackendError(f"task {spec.task_id!r}: environment variable names {bad} are not valid")
    lines = ["#!/bin/sh", f"# wps-gateway task {_one_line(spec.task_id)}",
             _CLEAR_ENVIRONMENT.format(dropped="|".join(DROPPED_VARIABLES), kept="|".join(KEPT_VARIABLES)).rstrip("\n")]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(environment.items())]
    if spec.workdir:
        lines.append(f"mkdir -p {shlex.quote(spec.workdir)} && cd {shlex.quote(spec.workdir)} || exit 1")
    lines.append("exec " + shlex.join(command_line(spec, options)))
    return "\n".join(lines) + "\n"


def command_line(spec: TaskSpec, options: SubmitOptions) -> list[str]:
    """The task's argv, behind the container prefix when it has an image."""
    image = options.image or spec.image
    if not (image and options.container_prefix):
        return list(spec.command)
    return [part.replace(IMAGE_PLACEHOLDER, image) for part in options.container_prefix] + list(spec.command)


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")
