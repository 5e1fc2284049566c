"""The local backend's task keeper: the parent of its tasks, which outlives the gateway.

A task's exit status must be recorded even when it ends while no gateway
watches (the gateway was killed), so that the next run takes it as it ended
instead of running it again. Only a task's parent learns how it ended, so the
parent must outlive the gateway: that is this process. The backend starts one
keeper (in its own session, with no environment of the gateway's) and asks it
to start each task; the keeper starts it (one fork and exec, nothing between
it and the task), waits for it, kills what it left in its process group,
writes ``exit_status`` in the task's sandbox, and only then tells the gateway.
If the gateway goes away the keeper carries on until its last task has ended
and been recorded, then exits. It is the subreaper of its tasks: a process a
task left outside its process group becomes the keeper's child when the task
ends, and is collected when it ends (not left a zombie under a gateway that is
process 1 of a container). If the keeper itself is killed, the backend
kills the tasks it had (proven by their environment) and reports them lost:
no task runs on that no one would record.

The keeper runs as ``python -I -S task_keeper.py``: the standard library only,
nothing of the gateway's packages or site. It ignores SIGHUP, SIGINT, SIGQUIT
and SIGTERM (with a handler, so its tasks still get the default), which are
meant for the gateway or its tasks; a signal the gateway itself ignored (under
``nohup``, say) is set back to its default, so tasks start with none ignored.

Messages are lines of JSON, one object each:

* gateway to keeper (its stdin): ``{"spawn": id, "program": file, "argv":
  [...], "env": {...}, "cwd": dir, "stdout": file, "stderr": file, "status":
  file, "uid": n|null, "gid": n|null}`` starts a task; ``{"signal": pid, "sig": n}`` signals a
  task's process group while the task is not yet reaped (never a reused pid).
* keeper to gateway (its stdout): ``{"started": id, "pid": n}``,
  ``{"failed": id, "error": text}`` (it could not be started), and
  ``{"ended": id, "status": n, "cpu": seconds, "maxrss": KiB}`` (``status``
  as ``waitpid`` gives it).

This module is also the gateway's side (``Keeper``); that part is used only
by ``mesos_backend.local``.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading

MARKER = "wps-gateway-task-keeper"  # in the keeper's command line: how a later run recognises one
_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)
_PR_SET_CHILD_SUBREAPER = 36


def status_record(status: int, cpu_seconds: float) -> str:
    """``exit_status`` as the shell wrapper of earlier versions wrote it: ``$?``, then ``times``' two lines."""
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
    minutes, seconds = divmod(max(cpu_seconds, 0.0), 60)
    return f"{code}\n0m0.000s 0m0.000s\n{int(minutes)}m{seconds:.3f}s 0m0.000s\n"


# ------------------------------------------------------------------ the keeper process


class _Tasks:
    """What the keeper runs, by pidfd and by pid; one thread, no locks."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.by_fd: dict[int, tuple[str, int, str]] = {}  # pidfd -> (task id, pid, status file)
        self.fd_of: dict[int, int] = {}  # pid -> pidfd, until the task is reaped
        self.poller = select.poll()

    def spawn(self, req: dict) -> None:
        task_id = req["spawn"]
        out = err = -1
        try:
            out = os.open(req["stdout"], _OUT_FLAGS, 0o644)
            err = os.open(req["stderr"], _OUT_FLAGS, 0o644)
            uid, gid = req.get("uid"), req.get("gid")
            if uid is not None:
                for fd in (out, err):
                    os.fchown(fd, uid, gid)
            # subprocess, not posix_spawn: glibc's leaves its internal signals ignored in the task.
            proc = subprocess.Popen(req["argv"], executable=req["program"], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, cwd=req["cwd"], env=req["env"],
                                    start_new_session=True, close_fds=True, user=uid, group=gid,
                                    extra_groups=[] if uid is not None else None)
            proc.returncode = 0  # reaped below with wait4, not by subprocess
            pid = proc.pid
        except (OSError, ValueError, TypeError, KeyError, subprocess.SubprocessError) as exc:
            self.reply({"failed": task_id, "error": str(exc)})
            return
        finally:
            for fd in (out, err):
                if fd >= 0:
                    os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.by_fd[pidfd] = (task_id, pid, req["status"])
        self.fd_of[pid] = pidfd
        self.poller.register(pidfd, select.POLLIN)
        self.reply({"started": task_id, "pid": pid})

    def signal(self, req: dict) -> None:
        pid = int(req["signal"])
        if pid in self.fd_of:  # not yet reaped: the group id is still this task's
            _signal_group(pid, int(req["sig"]))

    def reap(self, pidfd: int) -> None:
        task_id, pid, status_path = self.by_fd.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _signal_group(pid, signal.SIGKILL)  # whatever the task left in its group, while the zombie holds the id
        _, status, usage = os.wait4(pid, 0)
        del self.fd_of[pid]
        cpu = usage.ru_utime + usage.ru_stime
        try:  # one small write: a reader sees nothing or all of it (and waits for it while it sees nothing)
            fd = os.open(status_path, _OUT_FLAGS, 0o644)
            try:
                os.write(fd, status_record(status, cpu).encode("ascii"))
            finally:
                os.close(fd)
        except OSError:
            pass  # the gateway, if it watches, still hears of the end
        self.reply({"ended": task_id, "status": status, "cpu": cpu, "maxrss": usage.ru_maxrss})

    def reap_orphans(self) -> None:
        """Collect every child that has ended: a task (as ``reap`` does), or a process a task left behind,
        handed to the keeper as the subreaper of its tasks, which would otherwise stay a zombie wherever
        the gateway is process 1 (a container without an init)."""
        while True:
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None:
                return
            pidfd = self.fd_of.get(ended.si_pid)
            if pidfd is not None:
                self.reap(pidfd)
            else:
                os.waitpid(ended.si_pid, 0)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _ignore(signum: int, frame: object) -> None:
    """The keeper outlives what is meant for the gateway and its tasks."""


def main() -> None:
    """Serve the gateway on stdin/stdout until it has gone and every task has ended."""
    for sig in signal.valid_signals():  # what the gateway had ignored (nohup, say) is not the tasks' to inherit
        if sig < signal.SIGRTMIN and signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    for sig in (*_IGNORED, signal.SIGCHLD):  # caught, not ignored: an ignored signal stays ignored in tasks
        signal.signal(sig, _ignore)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # restored in tasks by subprocess (restore_signals)
    ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # what tasks leave behind comes to us
    woken, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)  # a SIGCHLD (an orphan ended) wakes the loop
    requests, replies = sys.stdin.fileno(), sys.stdout.fileno()
    gateway_here = True

    def reply(message: dict) -> None:
        nonlocal gateway_here
        if not gateway_here:
            return
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(replies, data):]
        except OSError:  # the gateway has gone: record ends in the sandboxes only
            gateway_here = False

    tasks = _Tasks(reply)
    tasks.poller.register(requests, select.POLLIN)
    tasks.poller.register(woken, select.POLLIN)
    pending = b""
    while gateway_here or tasks.by_fd:
        # Requests last: a pidfd closed by a reap in this batch is not reused by a spawn before the batch's
        # other events for it are seen (and skipped).
        for fd, _ in sorted(tasks.poller.poll(), key=lambda event: event[0] == requests):
            if fd == woken:
                while _drained(woken):
                    pass
                tasks.reap_orphans()
                continue
            if fd != requests:
                if fd in tasks.by_fd:
                    tasks.reap(fd)
                continue
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                gateway_here = False
                tasks.poller.unregister(requests)
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                req = json.loads(line)
                tasks.spawn(req) if "spawn" in req else tasks.signal(req)


# ------------------------------------------------------------------ the gateway's side


class KeeperGone(OSError):
    """The keeper process ended (or could not be started): no task can be started."""


class _Waiter:
    """One task's replies, handed from the reader thread to the task's worker."""

    __slots__ = ("started", "ended", "pid", "error", "status", "cpu", "maxrss")

    def __init__(self) -> None:
        self.started = threading.Lock()
        self.ended = threading.Lock()
        self.started.acquire()
        self.ended.acquire()
        self.pid: int | None = None
        self.error: str | None = None
        self.status: int | None = None
        self.cpu = 0.0
        self.maxrss = 0


class Keeper:
    """The gateway's handle on one keeper process: start tasks, signal them, wait for their ends."""

    def __init__(self, python: str = sys.executable) -> None:
        self._proc = subprocess.Popen([python, "-I", "-S", os.path.abspath(__file__), MARKER],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={"PATH": os.defpath},
                                      start_new_session=True, close_fds=True, cwd="/")
        self._write_lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._gone = False
        self._reader = threading.Thread(target=self._read, name="local-backend-keeper", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def spawn(self, task_id: str, program: str, argv: list[str], env: dict[str, str], cwd: str, sandbox: str,
              status_file: str, uid: int | None = None, gid: int | None = None) -> int:
        """Start a task; its pid. OSError (with the keeper's reason) when it could not be started."""
        waiter = self._waiters[task_id] = _Waiter()
        self._send({"spawn": task_id, "program": program, "argv": argv, "env": env, "cwd": cwd,
                    "stdout": os.path.join(sandbox, "stdout"), "stderr": os.path.join(sandbox, "stderr"),
                    "status": status_file, "uid": uid, "gid": gid})
        waiter.started.acquire()
        if waiter.pid is None:
            del self._waiters[task_id]
            raise (KeeperGone("the task keeper has ended") if waiter.error is None else OSError(waiter.error))
        return waiter.pid

    def wait(self, task_id: str) -> tuple[int | None, float, int]:
        """Block until a started task ended: (wait status or None if the keeper died, cpu seconds, peak RSS KiB)."""
        waiter = self._waiters[task_id]
        waiter.ended.acquire()
        del self._waiters[task_id]
        return waiter.status, waiter.cpu, waiter.maxrss

    def signal(self, pid: int, sig: int) -> None:
        """Signal the process group of the task started as ``pid``, unless it has been reaped already."""
        self._send({"signal": pid, "sig": int(sig)})

    def close(self, timeout: float = 10.0) -> None:
        """No more requests: the keeper exits once its tasks have ended."""
        with self._write_lock:
            if self._proc.stdin and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
        self._reader.join(timeout)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def _send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._write_lock:
            if self._gone or self._proc.stdin is None or self._proc.stdin.closed:
                raise KeeperGone("the task keeper has ended")
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (OSError, ValueError) as exc:
                raise KeeperGone(f"the task keeper has ended: {exc}") from None

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            reply = json.loads(line)
            if "ended" in reply:
                waiter = self._waiters[reply["ended"]]
                waiter.status, waiter.cpu, waiter.maxrss = reply["status"], reply["cpu"], reply["maxrss"]
                waiter.ended.release()
            else:
                waiter = self._waiters[reply.get("started") or reply["failed"]]
                waiter.pid, waiter.error = reply.get("pid"), reply.get("error")
                waiter.started.release()
        self._proc.stdout.close()
        self._gone = True  # the keeper has ended: whoever waits hears it
        for waiter in list(self._waiters.values()):
            for lock in (waiter.started, waiter.ended):
                if lock.locked():
                    lock.release()


if __name__ == "__main__":
    main()
