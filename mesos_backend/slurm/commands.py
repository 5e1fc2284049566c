"""The Slurm client commands (``sbatch``, ``squeue``, ``sacct``, ``scancel``), run as subprocesses.

The backend talks to Slurm only through these, as Toil's and dask-jobqueue's
Slurm support do: whatever the site's ``slurm.conf`` says (controller, auth,
default partition) applies, and nothing links against a Slurm library.

Every call has a timeout and counts itself in ``calls`` (the benchmark reports
queries per task from it). Output formats are given explicitly, times come as
epoch seconds (``SLURM_TIME_FORMAT=%s``), and the ``SQUEUE_*``/``SACCT_*``
variables that change what those commands print are removed from their
environment, so a site's or a user's formatting defaults cannot break parsing.

Errors: ``SlurmUnavailable`` when the controller (or slurmdbd) cannot be
reached or a command timed out, which is worth another try later;
``SlurmError`` when Slurm refused (bad partition, unknown account, ...), with
Slurm's own message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ..base import BackendError

# The client commands the backend needs; sacct only when accounting is used.
REQUIRED = ("sbatch", "squeue", "scancel")
SQUEUE_FIELDS = "JobID:|,State:|,Reason:|,exit_code:|,StartTime:|,EndTime:|,NodeList:|,Name:|,Comment:|"
SACCT_FIELDS = "JobIDRaw,State,ExitCode,ElapsedRaw,TotalCPU,MaxRSS,AllocTRES,NodeList,Start,End"
# What Slurm's clients print when the controller or slurmdbd is down or busy (slurm_strerror texts).
_TRANSIENT = (
    "unable to contact slurm controller",
    "socket timed out",
    "zero bytes were transmitted",
    "transport endpoint is not connected",
    "connection refused",
    "connection reset",
    "temporarily unable",
    "resource temporarily unavailable",
    "standby mode",
    "slurmdbd",
    "persistent connection",
    "communication connection failure",
    "timed out",
)
_ACCOUNTING_OFF = "accounting storage is disabled"
_INVALID_JOB = "invalid job id"
_FORMAT_VARIABLES = ("SQUEUE_", "SACCT_", "SCANCEL_")
_SUBMIT_VARIABLES = ("PATH", "SLURM_CONF", "SLURM_JWT")


class SlurmError(BackendError):
    """Slurm refused a request; the message is Slurm's own."""


class SlurmUnavailable(SlurmError):
    """The controller (or slurmdbd) could not be reached, or did not answer in time: try again later."""


@dataclass(frozen=True)
class JobRow:
    """One job as ``squeue`` shows it (running, pending, or ended less than MinJobAge ago)."""

    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, NODE_FAIL, ...
    reason: str  # Slurm's reason code: None, Resources, Priority, NonZeroExitCode, NodeDown, ...
    wait_status: int | None  # the batch script's wait status (exit code << 8 | signal)
    start: float | None  # epoch seconds
    end: float | None
    node: str | None
    name: str
    comment: str


@dataclass(frozen=True)
class AccountingRow:
    """One line of ``sacct``: the job itself or one of its steps (``123.batch``, ``123.0``)."""

    job_step: str
    state: str
    exit_code: str  # "code:signal"
    elapsed: str
    total_cpu: str
    max_rss: str
    alloc_tres: str
    node: str
    start: str
    end: str

    @property
    def job_id(self) -> str:
        return self.job_step.split(".", 1)[0]

    @property
    def is_step(self) -> bool:
        return "." in self.job_step


class SlurmCommands:
    """Runs the client commands with one environment, one timeout and a call counter."""

    def __init__(self, bin_dir: str | None = None, conf: str | None = None, timeout: float = 30.0) -> None:
        self.bin_dir = bin_dir or None
        self.conf = conf or None
        self.timeout = timeout
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FORMAT_VARIABLES)}
        if self.conf:
            env["SLURM_CONF"] = self.conf
        # What sbatch exports to the job (--export=ALL): nothing but what it needs itself, never the gateway's.
        self._submit_env = {k: v for k, v in env.items() if k in _SUBMIT_VARIABLES}
        self._submit_env.setdefault("PATH", os.defpath)
        self._env = {**env, "SLURM_TIME_FORMAT": "%s"}

    def path(self, command: str) -> str | None:
        """Where ``command`` is, or None."""
        if self.bin_dir:
            candidate = os.path.join(self.bin_dir, command)
            return candidate if os.access(candidate, os.X_OK) else None
        return shutil.which(command, path=self._env.get("PATH"))

    def check_installed(self) -> None:
        """BackendError naming what is missing, so a bad setting fails at start-up."""
        missing = [c for c in REQUIRED if self.path(c) is None]
        if missing:
            where = f"in {self.bin_dir}" if self.bin_dir else "on PATH"
            raise BackendError(f"slurm backend: {', '.join(missing)} not found {where} "
                               "(install Debian's slurm-client or set [slurm] bin_dir)")
        if self.conf and not os.path.isfile(self.conf):
            raise BackendError(f"slurm backend: [slurm] conf (SLURM_CONF) {self.conf} is not a file")

    def run(self, command: str, args: list[str], stdin: str | None = None, cwd: str | None = None) -> str:
        """Run one command; its stdout, or SlurmUnavailable / SlurmError with its last stderr line."""
        with self._calls_lock:
            self.calls[command] += 1
        executable = self.path(command) or command
        try:
            done = subprocess.run([executable, *args], input=stdin, capture_output=True, text=True,
                                  env=self._submit_env if command == "sbatch" else self._env,
                                  timeout=self.timeout, check=False, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{command} did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise SlurmError(f"cannot run {command}: {exc}") from exc
        if done.returncode != 0:
            message = _last_line(done.stderr).removeprefix(f"{command}: ") or f"exited with code {done.returncode}"
            if any(text in message.lower() for text in _TRANSIENT) and _ACCOUNTING_OFF not in message.lower():
                raise SlurmUnavailable(f"{command}: {message}")
            raise SlurmError(f"{command}: {message}")
        return done.stdout

    # -- the four commands ------------------------------------------------------

    def sbatch(self, args: list[str], script: str, cwd: str | None = None) -> str:
        """Submit a batch script (read from stdin) from ``cwd`` (the job's SLURM_SUBMIT_DIR); returns the job id."""
        out = self.run("sbatch", ["--parsable", *args], stdin=script, cwd=cwd).strip()
        job_id = out.splitlines()[-1].split(";", 1)[0].strip() if out else ""
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out!r} instead of a job id")
        return job_id

    def squeue(self, job_ids: Iterable[str] = (), *, mine: bool = False, names: Iterable[str] = ()) -> list[JobRow]:
        """Jobs the controller still knows, in any state: by id, by name, or all of this user's."""
        args = ["--noheader", "--states=all", f"--Format={SQUEUE_FIELDS}"]
        ids = sorted(set(job_ids), key=int)
        if ids:
            args.append("--jobs=" + ",".join(ids))
        if names:
            args.append("--name=" + ",".join(sorted(set(names))))
        if mine:
            args.append("--me")
        try:
            out = self.run("squeue", args)
        except SlurmError as exc:
            if isinstance(exc, SlurmUnavailable) or _INVALID_JOB not in str(exc).lower():
                raise
            return []  # one id that the controller no longer knows
        return [row for line in out.splitlines() if (row := _job_row(line)) is not None]

    def sacct(self, job_ids: Iterable[str]) -> list[AccountingRow]:
        """Accounting lines of these jobs and their steps, from slurmdbd."""
        ids = sorted(set(job_ids), key=int)
        if not ids:
            return []
        out = self.run("sacct", ["--noheader", "--parsable2", f"--format={SACCT_FIELDS}",
                                 "--jobs=" + ",".join(ids)])
        rows = []
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) >= 10 and parts[0]:
                rows.append(AccountingRow(*parts[:10]))
        return rows

    def scancel(self, job_ids: Iterable[str]) -> None:
        """Cancel jobs (ids Slurm no longer knows are ignored)."""
        ids = sorted(set(job_ids), key=int)
        if ids:
            self.run("scancel", ids)

    def accounting_enabled(self) -> bool:
        """True when sacct answers (slurmdbd configured and up); False when Slurm says accounting is off.

        SlurmUnavailable when slurmdbd is configured but does not answer now.
        """
        if self.path("sacct") is None:
            return False
        try:
            self.run("sacct", ["--noheader", "--parsable2", "--allocations", "--format=JobIDRaw",
                               "--starttime=now", "--endtime=now"])
        except SlurmUnavailable:
            raise
        except SlurmError as exc:
            if _ACCOUNTING_OFF in str(exc).lower():
                return False
            raise
        return True


def _job_row(line: str) -> JobRow | None:
    parts = line.rstrip("\n").split("|")
    if len(parts) < 9 or not parts[0].strip():
        return None
    job_id, state, reason, status, start, end, node, name = (p.strip() for p in parts[:8])
    comment = "|".join(parts[8:]).removesuffix("|").strip()
    return JobRow(job_id=job_id, state=state.split()[0] if state else "", reason=reason,
                  wait_status=_int(status), start=_epoch(start), end=_epoch(end),
                  node=node if node and node not in ("(null)", "N/A") else None, name=name,
                  comment="" if comment == "(null)" else comment)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _epoch(text: str) -> float | None:
    """Times print as epoch seconds (SLURM_TIME_FORMAT=%s); "N/A", "NONE", "Unknown" and 0 are no time."""
    value = _int(text)
    return float(value) if value else None


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:1000]
    return ""
