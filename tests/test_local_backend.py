"""The local backend, with real subprocesses: what a user of the gateway relies on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from mesos_backend import BackendError, FetchUri, Resources, TaskEvent, TaskSpec, TaskState, create_backend
from mesos_backend.local import TASK_ID_ENV, LocalBackend
from mesos_backend.task_keeper import MARKER as KEEPER_MARKER
from mesos_backend.task_keeper import Keeper, KeeperGone

from .conftest import require
from .jobs_support import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and Linux rusage")

PY = sys.executable


class Recorder:
    """Collects events and lets a test wait for them (no sleeps)."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: TaskEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, task_id: str) -> list[TaskEvent]:
        with self._cond:
            return [e for e in self.events if e.task_id == task_id]

    def wait(self, task_id: str, state: TaskState | None = None, timeout: float = 10.0) -> TaskEvent:
        """The first event of ``task_id`` in ``state`` (default: its terminal one)."""

        def match() -> TaskEvent | None:
            for e in self.events:
                if e.task_id == task_id and (e.state is state if state else e.state.is_terminal):
                    return e
            return None

        with self._cond:
            assert self._cond.wait_for(lambda: match() is not None, timeout), (
                f"no {state or 'terminal'} event for {task_id} in {timeout} s; got {self.of(task_id)}")
            event = match()
            assert event is not None
            return event

    def wait_count(self, n: int, timeout: float) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(e.state.is_terminal for e in self.events) >= n, timeout)
            assert ok, f"only {sum(e.state.is_terminal for e in self.events)} of {n} tasks ended"


@pytest.fixture
def make_backend(tmp_path):
    started: list[LocalBackend] = []

    def make(**options) -> tuple[LocalBackend, Recorder]:
        options.setdefault("cpus", 4)
        options.setdefault("mem", 4096)
        options.setdefault("kill_grace", 0.5)
        backend = LocalBackend(tmp_path / "sandboxes", **options)
        recorder = Recorder()
        backend.start(recorder)
        started.append(backend)
        return backend, recorder

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture
def backend(make_backend):
    return make_backend()


def sh(task_id: str, script: str, **kw) -> TaskSpec:
    return TaskSpec(task_id=task_id, command=["sh", "-c", script], **kw)


def alive(pid: int) -> bool:
    """The pid exists and is not a zombie (orphans may stay zombies in containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # not our child: nothing to wait on
    return True


def read_pid_file(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


# ------------------------------------------------------------------ results


def test_exit_code_output_and_failure_message(backend):
    b, rec = backend
    b.launch(sh("ok", "echo hello; echo note >&2"))
    b.launch(sh("bad", "echo partial; printf 'warning: x\\nERROR: band 4 missing\\n\\n  \\n' >&2; exit 3"))

    ok = rec.wait("ok")
    assert ok.succeeded and ok.exit_code == 0 and ok.message == ""
    started = rec.wait("ok", TaskState.STARTED)
    assert rec.of("ok") == [started, ok]
    sandbox = Path(ok.sandbox)
    assert sandbox == b.sandbox_root / "ok" and started.sandbox == ok.sandbox
    assert started.agent == socket.gethostname() and started.pid and ok.pid == started.pid
    assert (sandbox / "stdout").read_text() == "hello\n"
    assert (sandbox / "stderr").read_text() == "note\n"

    bad = rec.wait("bad")
    assert bad.state is TaskState.FINISHED and bad.exit_code == 3 and not bad.succeeded
    assert bad.message == "ERROR: band 4 missing"
    assert (Path(bad.sandbox) / "stdout").read_text() == "partial\n"


def test_non_zero_exit_without_stderr_and_death_by_signal(backend):
    b, rec = backend
    b.launch(sh("quiet", "exit 7"))
    b.launch(sh("segv", "kill -SEGV $$"))
    assert rec.wait("quiet").message == "exited with code 7"
    segv = rec.wait("segv")
    assert segv.state is TaskState.FINISHED and segv.exit_code == -11
    assert "SIGSEGV" in segv.message


def test_environment_is_explicit_never_the_gateways(make_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("MESOS_SECRET", "gateway-secret")  # the gateway's own environment holds secrets
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    workdir = tmp_path / "work"
    workdir.mkdir()
    b, rec = make_backend(environment={"OPERATOR_SET": "yes"})
    b.launch(sh("env", 'env | sort > "$LOCAL_BACKEND_SANDBOX/env.txt"; pwd', environment={"FOO": "bar baz"},
                workdir=str(workdir)))
    ev = rec.wait("env")
    assert ev.succeeded
    env = dict(line.split("=", 1) for line in (Path(ev.sandbox) / "env.txt").read_text().splitlines())
    assert env.pop("PWD") == str(workdir)
    env.pop("SHLVL", None)  # the shells' own
    assert env.pop("PATH").endswith(":/usr/sbin:/usr/bin:/sbin:/bin")
    assert env == {"FOO": "bar baz", "OPERATOR_SET": "yes", "HOME": ev.sandbox, "TMPDIR": ev.sandbox,
                   "LANG": "C.UTF-8", "LOCAL_BACKEND_TASK_ID": "env", "LOCAL_BACKEND_SANDBOX": ev.sandbox}
    assert (Path(ev.sandbox) / "stdout").read_text() == f"{workdir}\n"
    assert not (workdir / "stdout").exists()


def test_tasks_run_as_another_user(make_backend, tmp_path):
    require(os.geteuid() == 0, "running tasks as another user needs root")
    for folder in (tmp_path, *tmp_path.parents):  # the data dir must be reachable by the task's user
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    secret = tmp_path / "gateway-only"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    writable = tmp_path / "step"
    writable.mkdir()
    b, rec = make_backend(run_as="nobody")
    b.launch(TaskSpec("as-nobody", ["sh", "-c", f'id -u > {writable}/uid; id -G; cat {secret}'],
                      writable_paths=[str(writable)]))
    ev = rec.wait("as-nobody")
    import pwd
    nobody = pwd.getpwnam("nobody")
    assert (writable / "uid").read_text().strip() == str(nobody.pw_uid)
    assert (Path(ev.sandbox) / "stdout").read_text().split() == [str(nobody.pw_gid)]  # no root groups
    assert ev.state is TaskState.FINISHED and ev.exit_code != 0 and "Permission denied" in ev.message
    assert (Path(ev.sandbox) / "exit_status").exists()  # the wrapper, as that user, still records the end


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the gateway is not in a virtualenv")
def test_tasks_find_the_gateway_python_first(backend):
    b, rec = backend
    b.launch(sh("py", "command -v python"))
    b.launch(sh("own-path", 'echo "$PATH"', environment={"PATH": "/usr/bin:/bin"}))
    assert (Path(rec.wait("py").sandbox) / "stdout").read_text() == str(Path(PY).parent / "python") + "\n"
    assert (Path(rec.wait("own-path").sandbox) / "stdout").read_text() == "/usr/bin:/bin\n"


def test_missing_executable_is_launch_failed(backend):
    b, rec = backend
    b.launch(TaskSpec("nope", ["/nonexistent/processor", "--in", "x"]))
    ev = rec.wait("nope")
    assert ev.state is TaskState.FAILED and ev.reason == "launch_failed"
    assert "/nonexistent/processor" in ev.message
    assert [e.state for e in rec.of("nope")] == [TaskState.FAILED]


def test_invalid_specs_are_refused(backend):
    b, _ = backend
    for spec in (TaskSpec("../escape", ["true"]), TaskSpec("empty", []),
                 TaskSpec("t", ["true"], timeout=0), TaskSpec("u", ["true"], uris=[FetchUri("http://x/y")])):
        with pytest.raises(BackendError):
            b.launch(spec)
    b.launch(sh("dup", "sleep 5"))
    with pytest.raises(BackendError):
        b.launch(sh("dup", "true"))
    b.kill("dup")


# ------------------------------------------------------------ kill, timeout


def test_timeout_kills_the_process_group(backend):
    b, rec = backend
    b.launch(sh("slow", "sleep 30 & echo $! > child.pid; echo working >&2; wait", timeout=0.5))
    child = read_pid_file(b.sandbox_root / "slow" / "child.pid")
    ev = rec.wait("slow")
    assert ev.state is TaskState.FAILED and ev.reason == "timeout"
    assert "timed out after 0.5 s" in ev.message and "working" in ev.message
    assert ev.usage is not None and ev.usage.wall_seconds > 0.4
    assert wait_gone(child), "the task's child survived the timeout"


def test_timeout_escalates_to_sigkill(backend):
    b, rec = backend
    b.launch(sh("stubborn", "trap '' TERM; sleep 30", timeout=0.3))
    ev = rec.wait("stubborn")
    assert ev.state is TaskState.FAILED and ev.reason == "timeout" and ev.exit_code == -9  # not its 30 s


def test_leftovers_of_a_finished_task_are_killed(backend):
    b, rec = backend
    b.launch(sh("daemonish", "sleep 30 & echo $! > child.pid"))
    assert rec.wait("daemonish").succeeded
    assert wait_gone(read_pid_file(b.sandbox_root / "daemonish" / "child.pid"))


def test_kill_running_task(backend):
    b, rec = backend
    b.launch(sh("long", "sleep 30"))
    rec.wait("long", TaskState.STARTED)
    b.kill("long")
    ev = rec.wait("long")
    assert ev.state is TaskState.KILLED and ev.reason == "killed"
    assert ev.usage is not None and ev.usage.wall_seconds < 5
    b.kill("long")  # already gone: no-op, no second event
    b.kill("never-launched")
    assert [e.state for e in rec.of("long")] == [TaskState.STARTED, TaskState.KILLED]


def test_kill_queued_task(make_backend):
    b, rec = make_backend(cpus=1)
    b.launch(sh("blocker", "sleep 30"))
    b.launch(sh("waiting", "echo should not run > ran"))
    rec.wait("blocker", TaskState.STARTED)
    assert b.queued() == 1
    b.kill("waiting")
    ev = rec.wait("waiting")
    assert ev.state is TaskState.KILLED and [e.state for e in rec.of("waiting")] == [TaskState.KILLED]
    assert b.queued() == 0
    b.kill("blocker")
    assert rec.wait("blocker").state is TaskState.KILLED
    assert not (b.sandbox_root / "waiting").exists()


# ----------------------------------------------------------------- capacity


def test_capacity_is_never_exceeded(make_backend):
    b, rec = make_backend(cpus=2)
    script = ("import time,sys; s=time.time(); time.sleep(0.25); "
              "open('span','w').write(f'{s} {time.time()}')")
    for i in range(6):
        b.launch(TaskSpec(f"c{i}", [PY, "-c", script], resources=Resources(cpus=1, mem=64)))
    assert b.queued() >= 3
    rec.wait_count(6, timeout=20)
    spans = []
    for i in range(6):
        assert rec.wait(f"c{i}").succeeded
        start, end = map(float, (b.sandbox_root / f"c{i}" / "span").read_text().split())
        spans.append((start, end))
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_queue_is_fifo_and_memory_counts(make_backend):
    b, rec = make_backend(cpus=2, mem=1000)
    b.launch(sh("a", "sleep 0.3", resources=Resources(cpus=1, mem=100)))
    b.launch(sh("big", "sleep 0.1", resources=Resources(cpus=1, mem=950)))  # waits for a's memory
    b.launch(sh("c", "true", resources=Resources(cpus=1, mem=100)))  # fits, but must not overtake
    rec.wait_count(3, timeout=10)
    order = [(e.task_id, e.state) for e in rec.events]
    assert order.index(("big", TaskState.STARTED)) > order.index(("a", TaskState.FINISHED))
    assert order.index(("c", TaskState.STARTED)) > order.index(("big", TaskState.STARTED))


def test_oversize_task_fails_at_once(make_backend):
    b, rec = make_backend(cpus=2, mem=1024, gpus=0)
    b.launch(TaskSpec("huge", ["true"], resources=Resources(cpus=8, mem=100)))
    b.launch(TaskSpec("gpu", ["true"], resources=Resources(cpus=1, mem=100, gpus=1)))
    huge = rec.wait("huge", timeout=2)
    assert huge.state is TaskState.FAILED and huge.reason == "insufficient_resources"
    assert "cpus=8" in huge.message and "machine has 2" in huge.message
    assert rec.wait("gpu", timeout=2).reason == "insufficient_resources"
    assert b.queued() == 0


def test_gpus_are_assigned(make_backend, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    b, rec = make_backend(gpus=2)
    b.launch(sh("g", 'echo "$CUDA_VISIBLE_DEVICES"', resources=Resources(cpus=1, mem=10, gpus=2)))
    assert (Path(rec.wait("g").sandbox) / "stdout").read_text() == "0,1\n"


# -------------------------------------------------------------------- usage


def test_usage_is_measured(backend):
    b, rec = backend
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    b.launch(TaskSpec("cpu", [PY, "-c", burn]))
    b.launch(TaskSpec("mem", [PY, "-c", "b = b'x' * (100 * 1024 * 1024)"]))
    cpu, mem = rec.wait("cpu"), rec.wait("mem")
    assert cpu.succeeded and mem.succeeded
    assert cpu.usage.cpu_seconds >= 0.2
    assert cpu.usage.wall_seconds >= cpu.usage.cpu_seconds * 0.9
    assert mem.usage.mem_peak_mb >= 80


# ---------------------------------------------------------------- recover


def unique(name: str) -> str:
    """A task id no other run on this machine uses: recovery finds tasks among all its processes."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


OLD_1 = unique("old-1")
OLD_2 = unique("old-2")
GONE_1 = unique("gone-1")
LIVE_1 = unique("live-1")
ADOPTED_KILL = unique("adopted-kill")
ADOPTED_SLOW = unique("adopted-slow")
KILLED_THEN_DIED = unique("killed-then-died")
NO_STATUS = unique("no-status")


def test_recover_kills_only_proven_orphans(backend):
    b, rec = backend
    # An orphan of a "previous run": its parent shell is gone, it carries the task id.
    env = dict(os.environ, **{TASK_ID_ENV: OLD_1})
    shell = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], env=env, capture_output=True,
                           text=True, start_new_session=True, check=True)
    orphan = int(shell.stdout)
    # A process that reuses the pid recorded for another task: not that task.
    env_other = {k: v for k, v in os.environ.items() if k != TASK_ID_ENV}
    stranger = subprocess.Popen(["sleep", "60"], env=env_other, start_new_session=True)
    try:
        b.launch(sh("current", "sleep 30"))
        rec.wait("current", TaskState.STARTED)
        b.recover([OLD_1, OLD_2, "current"],
                  {OLD_1: {"pid": orphan, "sandbox": "/somewhere/old-1"}, OLD_2: {"pid": stranger.pid}})
        lost1, lost2 = rec.wait(OLD_1), rec.wait(OLD_2)
        assert lost1.state is TaskState.LOST and lost1.reason == "backend_restarted"
        assert lost1.sandbox == "/somewhere/old-1" and str(orphan) in lost1.message
        assert lost2.state is TaskState.LOST and lost2.reason == "backend_restarted"
        assert wait_gone(orphan)
        assert stranger.poll() is None, "an unrelated process was killed"
        assert [e.state for e in rec.of("current")] == [TaskState.STARTED]  # ours: left alone
    finally:
        stranger.kill()
        stranger.wait()
        if alive(orphan):
            os.kill(orphan, 9)


# A gateway that launched a task and then died (SIGKILL): its task carries on, unwatched.
PREVIOUS_RUN = """
import os, sys, threading
from mesos_backend import Resources, TaskSpec, TaskState
from mesos_backend.local import LocalBackend
started = threading.Event()
backend = LocalBackend(sys.argv[1], cpus=2, mem=1000)
backend.start(lambda e: e.state is TaskState.STARTED and (print(e.pid, flush=True), started.set()))
backend.launch(TaskSpec(sys.argv[2], ["sh", "-c", sys.argv[3]], resources=Resources(cpus=1, mem=10)))
started.wait()
if sys.argv[4:] == ["kill"]:  # once it runs, signal it, and die before seeing it end
    while not os.path.exists(os.path.join(sys.argv[1], sys.argv[2], "running")):
        threading.Event().wait(0.02)
    backend.kill(sys.argv[2])
    os._exit(0)
threading.Event().wait()
"""


def run_then_die(sandbox_root: Path, task_id: str, script: str, *action: str) -> int:
    """Launch ``script`` from a gateway process, SIGKILL that process once the task started; the task's pid."""
    proc = subprocess.Popen([PY, "-c", PREVIOUS_RUN, str(sandbox_root), task_id, script, *action],
                            stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        if action:
            proc.wait(30)  # it dies by itself once it has done what it was told
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return pid


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


GATED = "while [ ! -e go ]; do sleep 0.02; done; echo 'ran once' >> runs; exit ${CODE:-3}"


def test_a_task_that_ended_while_no_gateway_watched_is_reported_as_it_ended(make_backend):
    b, rec = make_backend()
    pid = run_then_die(b.sandbox_root, GONE_1, GATED)
    sandbox = b.sandbox_root / GONE_1
    keeper = parent_of(pid)
    (sandbox / "go").touch()
    wait_for_file(sandbox / "exit_status")
    assert wait_gone(pid)
    assert wait_gone(keeper), "the keeper stayed on with its gateway gone and its last task ended"
    b.recover([GONE_1], {GONE_1: {"pid": pid, "sandbox": str(sandbox), "started": time.time() - 5}})
    event = rec.wait(GONE_1)
    assert event.state is TaskState.FINISHED and event.exit_code == 3, event
    assert "ended unwatched; read from its sandbox" in event.message
    assert event.usage.cpu_seconds is not None and event.usage.wall_seconds > 0
    assert (sandbox / "runs").read_text() == "ran once\n"  # reported, not run again


def test_a_task_still_running_is_adopted_and_watched_to_its_end(make_backend):
    b, rec = make_backend(cpus=2)
    pid = run_then_die(b.sandbox_root, LIVE_1, GATED)
    sandbox = b.sandbox_root / LIVE_1
    b.recover([LIVE_1], {LIVE_1: {"pid": pid, "sandbox": str(sandbox), "cpus": 1, "mem": 10}})
    assert b.active_tasks() == {LIVE_1} and b.free.cpus == 1  # it holds what it was given
    assert rec.of(LIVE_1) == []
    (sandbox / "go").touch()
    event = rec.wait(LIVE_1)
    assert event.state is TaskState.FINISHED and event.exit_code == 3
    assert b.active_tasks() == set() and b.free == b.capacity
    assert (sandbox / "runs").read_text() == "ran once\n"


def test_an_adopted_task_can_be_killed_and_times_out(make_backend):
    b, rec = make_backend()
    killed = run_then_die(b.sandbox_root, ADOPTED_KILL, GATED)
    slow = run_then_die(b.sandbox_root, ADOPTED_SLOW, GATED)
    b.recover([ADOPTED_KILL, ADOPTED_SLOW], {ADOPTED_KILL: {"pid": killed},
                                                 ADOPTED_SLOW: {"pid": slow, "timeout": 0.3}})
    b.kill(ADOPTED_KILL)
    assert rec.wait(ADOPTED_KILL).state is TaskState.KILLED
    timed_out = rec.wait(ADOPTED_SLOW)
    assert timed_out.state is TaskState.FAILED and timed_out.reason == "timeout"
    assert wait_gone(killed) and wait_gone(slow)


def test_an_end_the_backend_caused_reads_as_that_after_a_restart(make_backend):
    b, rec = make_backend()
    pid = run_then_die(b.sandbox_root, KILLED_THEN_DIED, "touch running; sleep 30", "kill")
    wait_for_file(b.sandbox_root / KILLED_THEN_DIED / "exit_status")
    assert wait_gone(pid)
    b.recover([KILLED_THEN_DIED], {KILLED_THEN_DIED: {"pid": pid}})
    event = rec.wait(KILLED_THEN_DIED)
    assert event.state is TaskState.KILLED and event.exit_code == -15, event  # not a failure of the task


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def test_a_task_whose_keeper_was_killed_left_no_status_and_is_lost(make_backend):
    b, rec = make_backend()
    pid = run_then_die(b.sandbox_root, NO_STATUS, GATED)
    keeper = parent_of(pid)
    assert KEEPER_MARKER in Path(f"/proc/{keeper}/cmdline").read_text()
    os.kill(keeper, 9)  # whoever kills the whole machine's processes: no one is left to record the end
    assert wait_gone(keeper)
    os.killpg(pid, 9)
    assert wait_gone(pid)
    b.recover([NO_STATUS], {NO_STATUS: {"pid": pid}})
    event = rec.wait(NO_STATUS)
    assert event.state is TaskState.LOST and event.reason == "backend_restarted"
    assert not (b.sandbox_root / NO_STATUS / "exit_status").exists()


# ------------------------------------------------------------ uris, stop, misc


def keeper_of(backend: LocalBackend, rec: Recorder, task_id: str) -> int:
    """The pid of the keeper that runs tasks now: the parent of a task launched to find out."""
    backend.launch(sh(task_id, 'echo "$PPID"'))
    event = rec.wait(task_id)
    assert event.succeeded, event
    return int((Path(event.sandbox) / "stdout").read_text())


def test_the_keeper_is_started_without_the_gateways_environment(make_backend, monkeypatch):
    monkeypatch.setenv("MESOS_SECRET", "gateway-secret")
    b, rec = make_backend()
    keeper = keeper_of(b, rec, "whose-child")
    assert KEEPER_MARKER in Path(f"/proc/{keeper}/cmdline").read_text()
    assert b"gateway-secret" not in Path(f"/proc/{keeper}/environ").read_bytes()
    assert b.status()["keeper_pid"] == keeper  # what an operator's status page shows


def test_tasks_start_with_no_signal_ignored_even_one_the_gateway_ignores(make_backend):
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # as nohup does with SIGHUP
    try:
        b, rec = make_backend()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    b.launch(TaskSpec("signals", ["cat", "/proc/self/status"]))
    event = rec.wait("signals")
    status = dict(line.split(":\t", 1) for line in (Path(event.sandbox) / "stdout").read_text().splitlines()
                  if ":\t" in line)
    standard = (1 << 31) - 1  # signals 1-31: glibc keeps 32 and 33 for itself, and may leave them ignored
    assert int(status["SigIgn"], 16) & standard == 0 and int(status["SigBlk"], 16) == 0


def test_the_keeper_outlives_signals_meant_for_the_gateway(backend):
    b, rec = backend
    keeper = keeper_of(b, rec, "before")
    b.launch(sh("running", "touch started; sleep 30"))
    rec.wait("running", TaskState.STARTED)
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        os.kill(keeper, signum)
    assert keeper_of(b, rec, "after") == keeper  # the same keeper answers, after the signals
    assert rec.of("running")[-1].state is TaskState.STARTED
    b.kill("running")
    assert rec.wait("running").state is TaskState.KILLED


def test_a_process_a_task_leaves_outside_its_group_is_collected_when_it_ends(backend):
    b, rec = backend
    keeper = keeper_of(b, rec, "whose-child")
    b.launch(sh("leaver", "setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped; "
                          "while [ ! -e go ]; do sleep 0.01; done' & "
                          "while [ ! -s escaped ]; do sleep 0.01; done"))
    event = rec.wait("leaver")
    assert event.succeeded, event
    escaped = int((Path(event.sandbox) / "escaped").read_text())
    assert parent_of(escaped) == keeper  # its own session: killing the task's group missed it
    (Path(event.sandbox) / "go").touch()
    # ended and reaped: no zombie left behind anywhere
    wait_for(lambda: not Path(f"/proc/{escaped}").exists(), 10, f"process {escaped} collected")


def test_when_the_keeper_is_killed_its_tasks_are_killed_and_lost_and_another_keeper_takes_over(backend):
    b, rec = backend
    b.launch(sh("orphaned", "sleep 30"))
    pid = rec.wait("orphaned", TaskState.STARTED).pid
    keeper = parent_of(pid)
    os.kill(keeper, signal.SIGKILL)
    event = rec.wait("orphaned")
    assert event.state is TaskState.LOST and event.reason == "keeper_lost", event  # to be run again, once
    assert wait_gone(pid), "a task nobody would record went on running"
    assert keeper_of(b, rec, "next") not in (keeper, None)


def test_a_task_a_dying_keeper_started_unannounced_is_killed_before_it_runs_again(backend, monkeypatch):
    b, rec = backend
    real_spawn, first = Keeper.spawn, []

    def spawn_then_die(keeper: Keeper, task_id: str, *args, **kw) -> int:
        pid = real_spawn(keeper, task_id, *args, **kw)
        if first:
            return pid
        first.append(pid)  # started, but its keeper dies before the gateway hears of it
        os.kill(keeper.pid, signal.SIGKILL)
        keeper._reader.join(10)
        raise KeeperGone("the task keeper has ended")

    monkeypatch.setattr(Keeper, "spawn", spawn_then_die)
    b.launch(sh("unannounced", "sleep 30"))
    again = rec.wait("unannounced", TaskState.STARTED)
    assert again.pid != first[0] and wait_gone(first[0]), "the first copy runs on beside the second"
    b.kill("unannounced")
    assert rec.wait("unannounced").state is TaskState.KILLED


def test_uris_are_copied_into_the_sandbox(backend, tmp_path):
    src = tmp_path / "inputs"
    src.mkdir()
    (src / "params.json").write_text('{"band": 4}')
    (src / "tool.sh").write_text("#!/bin/sh\necho tool ran\n")
    b, rec = backend
    b.launch(TaskSpec("fetch", ["./tool.sh"], uris=[FetchUri((src / "params.json").as_uri()),
                                                    FetchUri(str(src / "tool.sh"), executable=True)]))
    ev = rec.wait("fetch")
    assert ev.succeeded, ev.message
    assert (Path(ev.sandbox) / "params.json").read_text() == '{"band": 4}'
    assert (Path(ev.sandbox) / "stdout").read_text() == "tool ran\n"
    b.launch(TaskSpec("missing", ["true"], uris=[FetchUri(str(src / "absent.tif"))]))
    missing = rec.wait("missing")
    assert missing.state is TaskState.FAILED and missing.reason == "fetch_failed"
    assert "absent.tif" in missing.message


def test_stop_ends_everything_and_is_idempotent(make_backend):
    b, rec = make_backend(cpus=1)
    b.launch(sh("running", "sleep 30 & echo $! > child.pid; wait"))
    b.launch(sh("queued", "true"))
    child = read_pid_file(b.sandbox_root / "running" / "child.pid")
    b.stop()
    # Delivered before stop() returned: LOST, so the caller reruns them later.
    assert {e.task_id: (e.state, e.reason) for e in rec.events if e.state.is_terminal} == {
        "running": (TaskState.LOST, "backend_stopped"), "queued": (TaskState.LOST, "backend_stopped")}
    assert wait_gone(child)
    b.stop()
    with pytest.raises(BackendError):
        b.launch(sh("late", "true"))


def test_callback_errors_do_not_stop_delivery(tmp_path):
    seen: list[TaskEvent] = []
    done = threading.Event()

    def callback(event: TaskEvent) -> None:
        seen.append(event)
        if event.state.is_terminal:
            done.set()
        raise RuntimeError("buggy dispatcher")

    b = LocalBackend(tmp_path, cpus=1, mem=100)
    b.start(callback)
    try:
        b.launch(TaskSpec("t", ["true"], resources=Resources(cpus=1, mem=10)))
        assert done.wait(10)
        assert [e.state for e in seen] == [TaskState.STARTED, TaskState.FINISHED]
    finally:
        b.stop()


def test_many_noop_tasks(make_backend):
    b, rec = make_backend(cpus=os.cpu_count() or 2)
    for i in range(200):
        b.launch(TaskSpec(f"n{i}", ["true"], resources=Resources(cpus=1, mem=1)))
    rec.wait_count(200, timeout=30)
    terminal = [e for e in rec.events if e.state.is_terminal]
    assert len(terminal) == 200 and all(e.succeeded for e in terminal)
    assert b.queued() == 0 and b.running() == 0 and b.free == b.capacity


def test_factory(tmp_path):
    b = create_backend("local", sandbox_root=tmp_path, cpus=1, mem=128)
    assert isinstance(b, LocalBackend) and b.capacity.cpus == 1
    with pytest.raises(BackendError, match="local"):
        create_backend("kubernetes")
    with pytest.raises(BackendError, match="bad options"):
        create_backend("local", sandbox_root=tmp_path, cores=4)
    # Engines are imported only when asked for.
    code = "import sys, mesos_backend; assert 'mesos_backend.local' not in sys.modules"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([PY, "-c", code], check=True, cwd=root)
