"""A real Slurm cluster for the tests: munged, MariaDB, slurmdbd, slurmctld and one slurmd, on 127.0.0.1.

Started once per test session from Debian's packages (``munge``,
``mariadb-server``, ``slurmdbd``, ``slurmctld``, ``slurmd``, ``slurm-client``)
in a temporary folder that holds everything: the munge key made here and its
socket, the database, ``slurm.conf``, the controller's state, the node's spool
and every log. ``slurmd`` must run as root (it starts jobs as their owners),
so the cluster needs root; elsewhere the tests that use it are skipped (and
fail in CI).

Loopback only: the Slurm daemons bind to the address their host name resolves
to (``CommunicationParameters=NoCtldInAddrAny,NoInAddrAny``) and each runs in
its own UTS namespace whose host name is ``localhost`` (``unshare --uts``), so
that address is 127.0.0.1 whatever the machine is called; where namespaces
are not allowed, the machine's own name must resolve to a loopback address;
MariaDB listens on 127.0.0.1.

One node, ``node1``, with 8 cpus and 8 GiB (``config_overrides``: what the
configuration says, not what the machine has), in two partitions: ``batch``
(the default) and ``urgent``, whose jobs preempt batch's
(``PreemptType=preempt/partition_prio``), for the preemption test. Accounting
goes to slurmdbd, so ``sacct`` works; memory limits are enforced by sampling
every second (``OverMemoryKill``, as there are no cgroups here), and time
limits are checked by slurmctld about every 30 s, as in production.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, require
from tests.jobs_support import wait_for

NODE = "node1"
START_TIMEOUT = 60.0
PORTS = ("slurmctld", "slurmd", "slurmdbd", "mariadb")
DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch", "unshare")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def loopback_host_name() -> tuple[str, bool] | None:
    """The host name the daemons run under, and whether in a UTS namespace; None if no loopback one exists."""
    try:
        subprocess.run(["unshare", "--uts", "sh", "-c", "hostname localhost"], check=True, capture_output=True,
                       timeout=30)
        return "localhost", True
    except (OSError, subprocess.SubprocessError):
        pass
    name = socket.gethostname().split(".")[0]
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        return None
    return (name, False) if addresses and all(a.startswith("127.") for a in addresses) else None


@dataclass
class SlurmCluster:
    root: Path
    ports: dict[str, int]
    hostname: str = "localhost"
    namespaced: bool = True  # each daemon in a UTS namespace whose host name is ``hostname``
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs to find this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- clients ----------------------------------------------------------------

    def run(self, *command: str, check: bool = True) -> str:
        """A Slurm client command against this cluster; its stdout."""
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, **self.env, "SLURM_TIME_FORMAT": "%s"})
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job the controller knows: Slurm job id -> (name, state)."""
        out = self.run("squeue", "--noheader", "--states=all", "--Format=JobID:|,Name:|,State:|")
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        return {row[0]: (row[1], row[2]) for row in rows}

    def active_jobs(self, names: set[str] | None = None) -> set[str]:
        """Names of the jobs pending or running (of ``names`` only, if given)."""
        active = {name for name, state in self.jobs().values() if state in ("PENDING", "RUNNING", "COMPLETING")}
        return active if names is None else active & names

    def node_state(self) -> str:
        return self.run("sinfo", "--noheader", "--nodes", NODE, "--Format=StateLong").strip().lower()

    def wait_idle_node(self, timeout: float = START_TIMEOUT) -> None:
        wait_for(lambda: self.node_state() in ("idle", "mixed", "allocated"), timeout, f"Slurm test cluster: {NODE} up")

    def set_node_down(self, reason: str) -> None:
        """An administrator marks the node down: Slurm ends its jobs with NODE_FAIL."""
        self.run("scontrol", "update", f"nodename={NODE}", "state=down", f"reason={reason}")

    def resume_node(self) -> None:
        """Back to service (ReturnToService=2 may have done it already, when slurmd registered again)."""
        if self.node_state().startswith(("down", "drain")):
            self.run("scontrol", "update", f"nodename={NODE}", "state=resume")
        self.wait_idle_node()

    # -- daemons ----------------------------------------------------------------

    def start(self) -> None:
        for sub in ("etc", "run", "munge", "db", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the mysql user reaches its folder through it
        self._start_munge()
        self._start_mariadb()
        self._write_config()
        self._start("slurmdbd", ["slurmdbd", "-D"], in_uts_namespace=True)
        wait_for(lambda: _listening(self.ports["slurmdbd"]), START_TIMEOUT, "Slurm test cluster: slurmdbd listening")
        self.start_controller()
        self.start_node()

    def start_controller(self) -> None:
        """slurmctld; it recovers the jobs kept in its state folder."""
        self._start("slurmctld", ["slurmctld", "-D"], in_uts_namespace=True)
        wait_for(lambda: "UP" in self.run("scontrol", "ping", check=False), START_TIMEOUT,
                 "Slurm test cluster: slurmctld answering")

    def stop_controller(self) -> None:
        """SIGTERM, as ``systemctl stop slurmctld``: it saves its state and exits; the jobs run on."""
        self._stop("slurmctld", signal.SIGTERM)

    def start_node(self) -> None:
        self._start("slurmd", ["slurmd", "-D", "-N", NODE], in_uts_namespace=True)
        self.wait_idle_node()

    def kill_node_daemon(self) -> None:
        """SIGKILL slurmd, as a crash does; the job steps (slurmstepd) it started run on."""
        self._stop("slurmd", signal.SIGKILL)

    def stop(self) -> None:
        """Cancel every job, wait for them to end, then stop the daemons in reverse order."""
        if "slurmctld" in self.processes and "slurmd" in self.processes:
            ids = list(self.jobs())
            if ids:
                self.run("scancel", *ids, check=False)
            try:
                wait_for(lambda: not self.active_jobs(), 30, "Slurm test cluster: jobs ended")
            except AssertionError:
                pass
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name, signal.SIGTERM)

    def _start(self, name: str, command: list[str], in_uts_namespace: bool = False) -> None:
        if in_uts_namespace and self.namespaced:
            command = ["unshare", "--uts", "sh", "-c", f'hostname {self.hostname} && exec "$@"', name, *command]
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env={**os.environ, **self.env})
        log.close()

    def _stop(self, name: str, sig: int) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        munge_socket = self.root / "run" / "munge.socket"
        self._start("munged", ["munged", "--foreground", "--force", f"--socket={munge_socket}",
                               f"--key-file={key}", f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        wait_for(munge_socket.exists, START_TIMEOUT, "Slurm test cluster: munged's socket")

    def _start_mariadb(self) -> None:
        db = self.root / "db"
        shutil.chown(db, "mysql", "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={db / 'data'}", "--user=mysql",
                        "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
                       check=True, capture_output=True, timeout=120)
        db_socket = db / "mysqld.sock"
        self._start("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={db / 'data'}", "--user=mysql",
                                 "--bind-address=127.0.0.1", f"--port={self.ports['mariadb']}",
                                 f"--socket={db_socket}", f"--pid-file={db / 'mysqld.pid'}",
                                 "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--skip-log-bin"])
        wait_for(db_socket.exists, START_TIMEOUT, "Slurm test cluster: MariaDB started")
        subprocess.run(["mariadb", f"--socket={db_socket}", "-u", "root", "-e",
                        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-db-pw';"
                        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"],
                       check=True, capture_output=True, timeout=60)

    def _write_config(self) -> None:
        r = self.root
        munge_socket = r / "run" / "munge.socket"
        common = ["AuthType=auth/munge", f"AuthInfo=socket={munge_socket}"]
        self.conf.write_text("\n".join([
            "ClusterName=wpstest", f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={self.ports['slurmctld']}", f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root", "SlurmdUser=root", *common, "CredType=cred/munge",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "SlurmdParameters=config_overrides", "ReturnToService=2", "SlurmdTimeout=120", "SlurmctldTimeout=60",
            "KillWait=2", "MinJobAge=300", "InactiveLimit=0",
            "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",  # memory limits enforced by sampling (no cgroups here)
            "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
            f"AccountingStoragePort={self.ports['slurmdbd']}", f"AccountingStoragePass={munge_socket}",
            "JobCompType=jobcomp/none",
            "PreemptType=preempt/partition_prio", "PreemptMode=REQUEUE",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={self.hostname} CPUs=8 RealMemory=8192 "
            "State=UNKNOWN",
            f"PartitionName=batch Nodes={NODE} Default=YES MaxTime=INFINITE State=UP PriorityTier=1",
            f"PartitionName=urgent Nodes={NODE} MaxTime=INFINITE State=UP PriorityTier=2",
            "",
        ]))
        dbd = self.conf.parent / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf
        dbd.write_text("\n".join([
            *common, "DbdHost=localhost", "DbdAddr=127.0.0.1", f"DbdPort={self.ports['slurmdbd']}",
            "CommunicationParameters=NoInAddrAny", "SlurmUser=root",
            f"PidFile={r / 'run' / 'slurmdbd.pid'}", f"LogFile={r / 'log' / 'slurmdbd.log'}",
            "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mariadb']}", "StorageUser=slurm", "StoragePass=slurm-db-pw",
            "StorageLoc=slurm_acct_db", "",
        ]))
        os.chmod(dbd, 0o600)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    require(not missing, f"{', '.join(missing)} not found (Debian packages munge, mariadb-server, slurmdbd, "
                         "slurmctld, slurmd, slurm-client)")
    require(os.geteuid() == 0, "slurmd must run as root")
    host = loopback_host_name()
    require(host is not None, "the Slurm daemons need `unshare --uts` or a host name that resolves to 127.0.0.1")
    root = Path(tempfile.mkdtemp(prefix="wps-slurm-"))
    cluster = SlurmCluster(root, {name: free_port() for name in PORTS}, *host)
    try:
        cluster.start()
    except Exception as exc:
        logs = "\n".join(f"--- {name}\n{cluster.log(name)}" for name in ("slurmctld", "slurmd", "slurmdbd"))
        cluster.stop()
        raise RuntimeError(f"Slurm test cluster did not start: {exc}\n{logs}") from exc
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)
