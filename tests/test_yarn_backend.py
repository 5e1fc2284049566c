"""The YARN backend alone against the test ResourceManager: environment, kills, timeouts, recovery, RM calls."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import pytest

from mesos_backend import BackendError, Resources, TaskSpec, TaskState, create_backend
from mesos_backend.yarn.backend import SchedulingOptions, YarnBackend, backend_options
from mesos_backend.yarn.submission import ApplicationOptions, launch_escaped, write_utf

from .jobs_support import wait_for
from .yarn_support import DS_JAR, start_rm

pytestmark = pytest.mark.slow


def backend_on(rm, **options) -> YarnBackend:
    scheduling = options.pop("scheduling", SchedulingOptions(poll_interval=0.1))
    return YarnBackend([s.url for s in rm.servers], user="wps", webhdfs=[rm.hdfs.webhdfs_url],
                       am_jar=rm.hdfs.default_fs + DS_JAR, staging_dir=rm.hdfs.default_fs + "/user/wps/staging",
                       scheduling=scheduling, **options)


class Recorder:
    def __init__(self) -> None:
        self.events = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def final(self, task_id: str):
        ends = [e for e in self.events if e.task_id == task_id and e.state.is_terminal]
        return ends[-1] if ends else None

    def wait_final(self, *task_ids: str, timeout: float = 60):
        wait_for(lambda: all(self.final(t) for t in task_ids), timeout)
        return [self.final(t) for t in task_ids]


@pytest.fixture
def running(yarn_rm):
    """A started backend on the test RM, recovered with nothing; stopped after the test."""
    recorder = Recorder()
    backend = backend_on(yarn_rm)
    backend.start(recorder)
    backend.recover([], {})
    yield backend, recorder
    backend.stop()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_task_gets_exactly_its_environment_and_never_the_gateways(yarn_rm, running, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_SECRET_TOKEN", "hunter2")  # in the gateway's (and this NodeManager's) environment
    backend, recorder = running
    out = tmp_path / "env.json"
    tricky = '{"a": "$HOME `id` \\\\ \\" \' q", "b": "x\\ny"}'
    dump = f"import json,os; open({str(out)!r},'w').write(json.dumps(dict(os.environ)))"
    backend.launch(TaskSpec("env-1", python(dump), environment={"WPS_TASK": tricky, "EMPTY": ""}))
    (event,) = recorder.wait_final("env-1")
    assert event.succeeded, event
    env = json.loads(out.read_text())
    assert env["WPS_TASK"] == tricky and env["EMPTY"] == ""
    assert "GATEWAY_SECRET_TOKEN" not in env
    nodemanager_own = {"CONTAINER_ID", "NM_HOST", "NM_PORT", "NM_HTTP_PORT", "LOCAL_DIRS", "LOCAL_USER_DIRS",
                       "LOG_DIRS", "USER", "LOGNAME", "HOME", "PWD", "JVM_PID", "MALLOC_ARENA_MAX", "YARN_SHELL_ID",
                       "SHLVL", "_"}
    whitelisted = {"JAVA_HOME", "PATH", "LANG", "TZ", "HADOOP_CONF_DIR", "HADOOP_HOME"}
    assert set(env) - nodemanager_own - whitelisted == {"WPS_TASK", "EMPTY"}


def test_success_failure_and_the_accounting_yarn_charged(running):
    backend, recorder = running
    backend.launch(TaskSpec("ok-1", ["sleep", "0.5"], resources=Resources(cpus=2, mem=700)))
    backend.launch(TaskSpec("bad-1", ["sh", "-c", "exit 3"]))
    ok, bad = recorder.wait_final("ok-1", "bad-1")
    assert ok.succeeded and ok.sandbox.startswith("application_")
    assert ok.usage.alloc_cpu_seconds >= 2 * 0.5 and ok.usage.alloc_mem_mb_seconds >= 1024 * 0.5
    assert ok.usage.wall_seconds >= 0.5 and ok.agent
    assert bad.state is TaskState.FAILED and bad.reason == "task_failed"
    assert bad.message == "Diagnostics., total=1, completed=1, allocated=1, failed=1"
    started = [e for e in recorder.events if e.task_id == "ok-1" and e.state is TaskState.STARTED]
    assert len(started) == 1 and started[0].sandbox == ok.sandbox


def test_kill_and_timeout_end_the_application(yarn_rm, running):
    backend, recorder = running
    backend.launch(TaskSpec("slow-1", ["sleep", "60"]))
    backend.launch(TaskSpec("late-1", ["sleep", "60"], timeout=1.0))
    wait_for(lambda: any(e.task_id == "slow-1" and e.state is TaskState.STARTED for e in recorder.events), 30)
    backend.kill("slow-1")
    killed, late = recorder.wait_final("slow-1", "late-1")
    assert killed.state is TaskState.KILLED and killed.reason == "killed"
    assert late.state is TaskState.FAILED and late.reason == "timeout"
    assert {a.state for a in yarn_rm.cluster.list_apps()} == {"KILLED"}
    backend.launch(TaskSpec("queued-1", ["true"]))
    backend.set_paused(True)
    backend.kill("queued-1")
    assert recorder.final("queued-1").state is TaskState.KILLED


def test_a_task_costs_at_most_three_rm_calls_besides_the_shared_polls(yarn_rm, running):
    backend, recorder = running
    ids = [f"n-{i}" for i in range(12)]
    for task_id in ids:
        backend.launch(TaskSpec(task_id, ["true"], resources=Resources(cpus=1, mem=256)))
    assert all(e.succeeded for e in recorder.wait_final(*ids))
    calls = backend.rm_http.calls
    per_task = calls["POST new-application"] + calls["POST apps"] + calls["GET app"] + calls["GET apps (finished)"]
    assert calls["POST new-application"] == calls["POST apps"] == len(ids)
    assert per_task <= 3 * len(ids)
    seen_by_rm = yarn_rm.requests()
    assert seen_by_rm["POST /ws/v1/cluster/apps"] == len(ids)
    assert sum(n for k, n in seen_by_rm.items() if k.startswith("GET /ws/v1/cluster/apps/")) == calls["GET app"]


def test_the_caps_bound_what_yarn_holds_at_once(yarn_rm):
    recorder = Recorder()
    backend = backend_on(yarn_rm, scheduling=SchedulingOptions(poll_interval=0.05, max_cpu=2, max_pending=1))
    backend.start(recorder)
    backend.recover([], {})
    peak = Counter()

    def observe() -> bool:
        active = [a for a in yarn_rm.cluster.list_apps() if a.state not in ("FINISHED", "FAILED", "KILLED")]
        peak["active"] = max(peak["active"], len(active))
        return len([e for e in recorder.events if e.state.is_terminal]) == 6

    try:
        for i in range(6):
            backend.launch(TaskSpec(f"c-{i}", ["sleep", "0.3"], resources=Resources(cpus=1, mem=128), priority=i))
        wait_for(observe, 60)
        assert peak["active"] <= 2
        submitted = [e.task_id for e in recorder.events if e.reason == "SUBMITTED"]
        assert submitted[0] == "c-5"  # the highest priority went first
    finally:
        backend.stop()


def test_after_a_restart_running_applications_are_adopted_and_unknown_ones_reported_lost(yarn_rm, tmp_path):
    first, recorder = backend_on(yarn_rm), Recorder()
    first.start(recorder)
    first.recover([], {})
    marker = tmp_path / "go"
    wait_file = f"import os,time\nwhile not os.path.exists({str(marker)!r}): time.sleep(0.05)"
    first.launch(TaskSpec("keep-1", python(wait_file)))
    first.launch(TaskSpec("keep-2", python(wait_file)))
    wait_for(lambda: len({e.task_id for e in recorder.events if e.state is TaskState.STARTED}) == 2, 30)
    app_of = {e.task_id: e.sandbox for e in recorder.events if e.state is TaskState.STARTED}
    first.stop()  # the gateway goes away; its applications carry on

    # an application with the gateway's tag that no task wants (its attempt was given up meanwhile)
    stray = backend_on(yarn_rm)
    stray.start(Recorder())
    stray.launch(TaskSpec("stray-1", ["sleep", "60"]))
    wait_for(lambda: any(a.name == "stray-1" and a.state == "RUNNING" for a in yarn_rm.cluster.list_apps()), 30)
    stray.stop()

    second, recovered = backend_on(yarn_rm), Recorder()
    second.start(recovered)
    second.recover(["keep-1", "keep-2", "never-submitted.1"],
                   {"keep-1": {"sandbox": app_of["keep-1"]}, "keep-2": {}, "never-submitted.1": {}})
    (lost,) = recovered.wait_final("never-submitted.1")
    assert lost.state is TaskState.LOST and lost.reason == "application_unknown"
    wait_for(lambda: second.active_tasks() == {"keep-1", "keep-2"}, 10)
    marker.write_text("")
    done = recovered.wait_final("keep-1", "keep-2")
    assert all(e.succeeded for e in done)
    assert {e.sandbox for e in done} == set(app_of.values())  # the same applications, not new ones
    wait_for(lambda: any(a.name == "stray-1" and a.state == "KILLED" for a in yarn_rm.cluster.list_apps()), 10)
    assert sorted(a.name for a in yarn_rm.cluster.list_apps()) == ["keep-1", "keep-2", "stray-1"]
    second.stop()


def test_an_adopted_application_keeps_the_timeout_it_started_with(yarn_rm):
    first = backend_on(yarn_rm)
    first.start(Recorder())
    first.launch(TaskSpec("old-1", ["sleep", "60"]))
    wait_for(lambda: any(a.name == "old-1" and a.state == "RUNNING" for a in yarn_rm.cluster.list_apps()), 30)
    first.stop()
    second, recorder = backend_on(yarn_rm), Recorder()
    second.start(recorder)
    try:
        second.recover(["old-1"], {"old-1": {"timeout": 30, "started": time.time() - 40}})  # ran 40 s of its 30
        (event,) = recorder.wait_final("old-1")
        assert event.state is TaskState.FAILED and event.reason == "timeout"
        assert not [e for e in recorder.events if e.state is TaskState.STARTED]  # it was known to run already
    finally:
        second.stop()


def test_an_application_the_rm_forgot_is_reported_lost(yarn_rm, running):
    backend, recorder = running
    backend.launch(TaskSpec("gone-1", ["sleep", "60"]))
    wait_for(lambda: any(e.task_id == "gone-1" and e.state is TaskState.STARTED for e in recorder.events), 30)
    yarn_rm.restart(recover=False, downtime=0.2)  # no state store: the RM comes back knowing nothing
    (event,) = recorder.wait_final("gone-1")
    assert event.state is TaskState.LOST and event.reason == "application_unknown"


def test_while_the_rm_is_down_nothing_is_concluded(yarn_rm, running):
    backend, recorder = running
    wait_for(lambda: backend.active_tasks() == set(), 10)
    yarn_rm.leader.listener.close()
    wait_for(lambda: backend.active_tasks() is None, 10)
    backend.launch(TaskSpec("waits-1", ["true"]))
    yarn_rm.leader.listener.open()
    (event,) = recorder.wait_final("waits-1")
    assert event.succeeded


def test_an_am_that_never_registers_fails_the_attempt(impatient_rm):
    recorder = Recorder()
    backend = backend_on(impatient_rm, application=ApplicationOptions(am_command="sleep 60 # {command} {memory}"))
    backend.start(recorder)
    try:
        backend.launch(TaskSpec("no-am-1", ["true"]))
        (event,) = recorder.wait_final("no-am-1")
        assert event.state is TaskState.FAILED and event.reason == "am_expired"
        assert "timed out" in event.message
    finally:
        backend.stop()


def test_a_site_am_gets_the_bundle_as_a_public_archive_on_a_versioned_path(yarn_rm, tmp_path):
    import io
    import tarfile
    bundle = tmp_path / "proc-1.0-abc123.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        info = tarfile.TarInfo("proc/run.sh")
        data = b"echo hi"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    recorder = Recorder()
    backend = backend_on(yarn_rm, application=ApplicationOptions(am_command="sleep 60 # {command}"))
    backend.start(recorder)
    try:
        from mesos_backend import FetchUri
        backend.launch(TaskSpec("site-1", ["sh", "proc/run.sh"], uris=[FetchUri(bundle.as_uri(), extract=True)]))
        recorder.wait_final("site-1")
        (app,) = [a for a in yarn_rm.cluster.list_apps() if a.name == "site-1"]
        (resource,) = app.am_context.resources
        assert resource.url == yarn_rm.hdfs.default_fs + "/user/wps/staging/bundles/proc-1.0-abc123.tar.gz"
        assert (resource.type, resource.visibility) == ("ARCHIVE", "PUBLIC")
        node = yarn_rm.hdfs.namespace.status("/user/wps/staging/bundles/proc-1.0-abc123.tar.gz")
        assert (resource.size, resource.timestamp) == (node.length, node.modification_time)
        unpacked = [n for n in yarn_rm.cluster.nodes if n.localizations]
        assert unpacked and "ln -s bundle0/* ." in app.am_context.commands[0]
    finally:
        backend.stop()


def test_a_locality_hint_becomes_a_node_label_expression(tmp_path):
    rm = start_rm(tmp_path / "yarn", node_labels=["", "", "site-a"])
    recorder = Recorder()
    backend = backend_on(rm, application=ApplicationOptions(label_attribute="storage"))
    backend.start(recorder)
    try:
        backend.launch(TaskSpec("near-1", ["true"], locality=["storage=site-a"]))
        backend.launch(TaskSpec("any-1", ["true"], locality=["rack=r1"]))
        near, anywhere = recorder.wait_final("near-1", "any-1")
        assert near.succeeded and near.agent == rm.cluster.nodes[2].node_id
        assert anywhere.succeeded and anywhere.agent != rm.cluster.nodes[2].node_id  # unlabelled nodes only
    finally:
        backend.stop()
        rm.stop()


def test_a_node_lost_is_the_clusters_fault_a_localization_failure_is_not():
    from mesos_backend.yarn.status import terminal_event
    app = {"id": "application_1_0001", "state": "FAILED", "finalStatus": "FAILED", "elapsedTime": 10}
    exited = "AM Container for appattempt_1_0001_000001 exited with exitCode: "
    lost = terminal_event("t", {**app, "diagnostics": exited + "-100\nContainer released on a *lost* node"}, None)
    unlocalized = terminal_event("t", {**app, "diagnostics": exited + "-1000 Resource x changed on src filesystem"},
                                 None)
    assert (lost.state, lost.reason) == (TaskState.LOST, "node_lost")
    assert (unlocalized.state, unlocalized.reason) == (TaskState.FAILED, "am_failed")


def test_the_shell_command_file_is_what_distributedshell_reads():
    line = launch_escaped('exec python -c "print($X)"')
    assert line == 'exec python -c \\"print(\\$X)\\"'
    data = write_utf("naïve\0")
    assert data[:2] == (len(data) - 2).to_bytes(2, "big") and b"\xc0\x80" in data


def test_the_yarn_section_comes_from_pywps_cfg_and_the_environment(tmp_path):
    from wps_gateway.config import load_settings
    from wps_gateway.runner import backend_for
    settings = load_settings(environ={"GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_BACKEND": "yarn",
                                      "YARN_RESOURCE_MANAGER": "rm1:8088,rm2:8088", "YARN_QUEUE": "eo",
                                      "YARN_AM_JAR": "file:///opt/hadoop/ds.jar", "YARN_MAX_CPU": "40"})
    assert settings.yarn["queue"] == "eo" and settings.yarn["poll_interval"] == "1"
    backend = backend_for(settings)
    assert backend.application.queue == "eo" and backend.scheduling.max_cpu == 40
    assert backend.staging_dir == (tmp_path / "var" / "yarn").as_uri()  # the default: under data_dir
    assert backend.rm_http.urls == ["http://rm1:8088", "http://rm2:8088"]


def test_settings_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match="resource_manager"):
        backend_options({})
    with pytest.raises(ValueError, match="am_jar"):
        backend_options({"resource_manager": "rm:8088"}, "file:///tmp/x")
    with pytest.raises(ValueError, match="webhdfs"):
        backend_options({"resource_manager": "rm:8088", "am_jar": "hdfs://nn:8020/ds.jar"}, "file:///tmp/x")
    with pytest.raises(ValueError, match="must be a number"):
        backend_options({"resource_manager": "rm:8088", "am_jar": "file:///ds.jar", "max_cpu": "lots"}, "file:///x")
    with pytest.raises(ValueError, match="simple or kerberos"):
        backend_options({"resource_manager": "rm:8088", "am_jar": "file:///ds.jar", "auth": "magic"}, "file:///x")
    options = backend_options({"resource_manager": "rm1:8088, rm2:8088", "am_jar": "file:///ds.jar",
                               "application_tag": "EO-Gateway", "max_cpu": "64"}, "file:///srv/wps/var/yarn")
    assert options["resource_managers"] == ["http://rm1:8088", "http://rm2:8088"]
    assert options["application"].tag == "eo-gateway" and options["scheduling"].max_cpu == 64
    backend = create_backend("yarn", **options)
    assert backend.name == "yarn"
    with pytest.raises(BackendError):
        YarnBackend("rm:8088", staging_dir="file:///x")
