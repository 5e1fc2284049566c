"""The test ResourceManager and its WebHDFS as independent clients see them: yarn-api-client and hdfs (PyPI).

Every expectation is the real RM's or NameNode's (../shared/reference/mesos-yarn-protocols.md, section 12);
a difference is a bug in the double.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from hdfs import HdfsError, InsecureClient
from yarn_api_client import ResourceManager
from yarn_api_client.auth import SimpleAuth
from yarn_api_client.errors import APIError

from mesos_backend.testing.yarn.distshell import write_stand_in_jar
from mesos_backend.yarn.submission import write_utf

from .conftest import free_port
from .jobs_support import wait_for
from .yarn_support import DS_JAR, start_rm


def distributedshell(rm, client, app_id: str, command: str, **extra) -> dict:
    """A submission context as a DistributedShell client builds it: the jar and the command file on HDFS."""
    path = f"/user/alice/ds/{app_id}/shellCommands"
    rm.hdfs.namespace.create(path, write_utf(command), "alice", overwrite=True)
    jar, commands = rm.hdfs.namespace.status(DS_JAR), rm.hdfs.namespace.status(path)
    am = ("{{JAVA_HOME}}/bin/java -Xmx128m org.apache.hadoop.yarn.applications.distributedshell.ApplicationMaster "
          "--container_memory 512 --container_vcores 1 --num_containers 1 --shell_env COLOUR=green "
          "1><LOG_DIR>/AppMaster.stdout 2><LOG_DIR>/AppMaster.stderr")
    fs = rm.hdfs.default_fs
    context = {
        "application-id": app_id, "application-name": "ds-test", "application-type": "DISTRIBUTED", "queue": "default",
        "max-app-attempts": 1, "application-tags": {"tag": ["Wps-Test", f"run:{app_id[-4:]}"]},
        "resource": {"memory": 512, "vCores": 1},
        "am-container-spec": {
            "commands": {"command": am},
            "environment": {"entry": [{"key": "CLASSPATH", "value": "{{CLASSPATH}}<CPS>./*"}]},
            "local-resources": {"entry": [
                {"key": "AppMaster.jar", "value": {"resource": fs + DS_JAR, "type": "FILE", "visibility": "PUBLIC",
                                                   "size": jar.length, "timestamp": jar.modification_time}},
                {"key": "shellCommands", "value": {"resource": fs + path, "type": "FILE", "visibility": "APPLICATION",
                                                   "size": commands.length,
                                                   "timestamp": commands.modification_time}}]}}}
    context.update(extra)
    return context


def final(client, app_id: str, timeout: float = 30) -> dict:
    wait_for(lambda: client.cluster_application(app_id).data["app"]["state"] in ("FINISHED", "FAILED", "KILLED"),
             timeout)
    return client.cluster_application(app_id).data["app"]


@pytest.fixture
def client(yarn_rm) -> ResourceManager:
    return ResourceManager(service_endpoints=[yarn_rm.url], auth=SimpleAuth("alice"), timeout=10)


def test_new_application_submit_state_and_report_as_a_third_party_client_sees_them(yarn_rm, client, tmp_path):
    new = client.cluster_new_application().data
    app_id = new["application-id"]
    assert app_id.startswith("application_") and new["maximum-resource-capability"] == {"memory": 8192, "vCores": 4}
    out = tmp_path / "out.txt"
    response = client.cluster_submit_application(distributedshell(yarn_rm, client, app_id,
                                                                  f"echo $COLOUR \\$YARN_SHELL_ID > {out}; cat {out}"))
    assert response.data == {}  # 202, no body
    app = final(client, app_id)
    assert (app["state"], app["finalStatus"], app["diagnostics"]) == ("FINISHED", "SUCCEEDED", "")
    assert out.read_text() == "green 1\n"
    assert app["user"] == "alice" and app["name"] == "ds-test" and app["applicationType"] == "DISTRIBUTED"
    assert set(app["applicationTags"].split(",")) == {"wps-test", f"run:{app_id[-4:]}"}  # YARN lower-cases tags
    assert app["allocatedMB"] == -1 and app["runningContainers"] == -1 and app["progress"] == 100.0
    assert app["memorySeconds"] > 0 and app["elapsedTime"] == app["finishedTime"] - app["startedTime"] > 0
    assert client.cluster_application_state(app_id).data == {"state": "FINISHED"}
    attempts = client.cluster_application_attempts(app_id).data["appAttempts"]["appAttempt"]
    assert [a["id"] for a in attempts] == [1] and attempts[0]["containerId"].endswith("_01_000001")


def test_the_task_container_runs_the_shell_command_through_launch_container_sh(yarn_rm, client):
    app_id = client.cluster_new_application().data["application-id"]
    client.cluster_submit_application(distributedshell(yarn_rm, client, app_id, "exit 7"))
    app = final(client, app_id)
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "FAILED")  # the AM reports the command's failure
    assert app["diagnostics"] == "Diagnostics., total=1, completed=1, allocated=1, failed=1"


def test_listing_by_tag_and_state_and_null_when_none(yarn_rm, client):
    assert client.cluster_applications(application_tags=["nothing-here"]).data == {"apps": None}
    app_id = client.cluster_new_application().data["application-id"]
    client.cluster_submit_application(distributedshell(yarn_rm, client, app_id, "sleep 30"))
    wait_for(lambda: client.cluster_application_state(app_id).data["state"] == "RUNNING", 20)
    listed = client.cluster_applications(states=["RUNNING", "ACCEPTED"], application_tags=["WPS-TEST"]).data
    assert [a["id"] for a in listed["apps"]["app"]] == [app_id]
    assert client.cluster_applications(states=["FINISHED"], application_tags=["wps-test"]).data == {"apps": None}
    bad = httpx.get(f"{yarn_rm.url}/ws/v1/cluster/apps?states=SLEEPING")  # the client would not even send it
    assert bad.status_code == 400 and "Invalid application-state SLEEPING" in bad.json()["RemoteException"]["message"]


def test_kill_answers_202_until_killed_then_200(yarn_rm, client):
    app_id = client.cluster_new_application().data["application-id"]
    client.cluster_submit_application(distributedshell(yarn_rm, client, app_id, "sleep 60"))
    wait_for(lambda: client.cluster_application_state(app_id).data["state"] == "RUNNING", 20)
    assert client.cluster_application_kill(app_id).data == {"state": "RUNNING"}  # 202 while under way
    app = final(client, app_id)
    assert (app["state"], app["finalStatus"]) == ("KILLED", "KILLED")
    assert app["diagnostics"].startswith(f"Application {app_id} was killed by user alice")
    assert client.cluster_application_kill(app_id).data == {"state": "KILLED"}
    wait_for(lambda: not any(n.containers for n in yarn_rm.cluster.nodes), 10)  # NodeManagers clean up after


def test_refusals_have_the_rms_status_codes_and_remote_exceptions(yarn_rm, client):
    url = f"{yarn_rm.url}/ws/v1/cluster"
    anonymous = httpx.post(f"{url}/apps/new-application")
    assert anonymous.status_code == 403
    assert anonymous.json()["RemoteException"]["message"] == "Unable to obtain user name, user not authenticated"
    assert httpx.get(f"{url}/apps").status_code == 200  # reading is open to dr.who
    unknown = httpx.get(f"{url}/apps/application_1_0042")
    assert unknown.status_code == 404
    assert unknown.json()["RemoteException"] == {
        "exception": "NotFoundException", "message": "app with id: application_1_0042 not found",
        "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}
    app_id = client.cluster_new_application().data["application-id"]
    too_big = distributedshell(yarn_rm, client, app_id, "true", resource={"memory": 99999, "vCores": 1})
    with pytest.raises(APIError, match="Requested more memory than configured max"):
        client.cluster_submit_application(too_big)
    other_state = httpx.put(f"{url}/apps/{app_id}/state?user.name=alice", json={"state": "RUNNING"})
    assert other_state.status_code == 404  # never submitted
    plain = httpx.post(f"{url}/apps?user.name=alice", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415


def test_an_am_that_never_registers_fails_after_the_expiry(impatient_rm):
    client = ResourceManager(service_endpoints=[impatient_rm.url], auth=SimpleAuth("alice"), timeout=10)
    app_id = client.cluster_new_application().data["application-id"]
    context = distributedshell(impatient_rm, client, app_id, "true")
    context["am-container-spec"]["commands"]["command"] = "sleep 60"  # a plain command is no ApplicationMaster
    client.cluster_submit_application(context)
    app = final(client, app_id)
    assert (app["state"], app["finalStatus"]) == ("FAILED", "FAILED")
    assert f"ApplicationMaster for attempt appattempt_{app_id[12:]}_000001 timed out" in app["diagnostics"]


def test_an_am_container_that_exits_without_registering_fails_even_with_exit_code_0(yarn_rm, client):
    app_id = client.cluster_new_application().data["application-id"]
    context = distributedshell(yarn_rm, client, app_id, "true", **{"max-app-attempts": 5})
    context["am-container-spec"]["commands"]["command"] = "true"
    client.cluster_submit_application(context)
    app = final(client, app_id)
    assert app["state"] == "FAILED" and "exited with exitCode: 0" in app["diagnostics"]
    assert "failed 2 times (global limit =2; local limit is =2)" in app["diagnostics"]  # capped by am.max-attempts


def test_a_resource_whose_timestamp_does_not_match_is_not_localized(yarn_rm, client):
    app_id = client.cluster_new_application().data["application-id"]
    context = distributedshell(yarn_rm, client, app_id, "true")
    jar = context["am-container-spec"]["local-resources"]["entry"][0]["value"]
    jar["timestamp"] -= 1
    client.cluster_submit_application(context)
    app = final(client, app_id)
    assert app["state"] == "FAILED" and "exited with exitCode: -1000" in app["diagnostics"]
    assert f"changed on src filesystem (expected {jar['timestamp']}, was {jar['timestamp'] + 1}" in app["diagnostics"]


def test_public_resources_must_be_world_readable(yarn_rm, client):
    app_id = client.cluster_new_application().data["application-id"]
    context = distributedshell(yarn_rm, client, app_id, "true")
    yarn_rm.hdfs.namespace.status(DS_JAR).permission = 0o600
    client.cluster_submit_application(context)
    assert "is not publicly accessible" in final(client, app_id)["diagnostics"]


def test_a_standby_redirects_and_says_so_in_cluster_info(tmp_path):
    rm = start_rm(tmp_path / "yarn", nodes=1, standby=True)
    try:
        standby = rm.standby.url
        info = httpx.get(f"{standby}/ws/v1/cluster/info").json()["clusterInfo"]
        assert info["haState"] == "STANDBY"
        redirect = httpx.get(f"{standby}/ws/v1/cluster/apps")
        assert redirect.status_code == 307 and redirect.headers["location"] == f"{rm.url}/ws/v1/cluster/apps"
        assert redirect.text.startswith("This is standby RM. The redirect url is: ")
        client = ResourceManager(service_endpoints=[standby, rm.url], auth=SimpleAuth("alice"))
        assert client.cluster_information().data["clusterInfo"]["haState"] in ("STANDBY", "ACTIVE")
        assert client.cluster_new_application().data["application-id"].startswith("application_")
        assert client.cluster_metrics().data["clusterMetrics"]["totalNodes"] == 1
        assert client.cluster_nodes().data["nodes"]["node"][0]["state"] == "RUNNING"
    finally:
        rm.stop()


def test_webhdfs_as_the_hdfs_package_uses_it(yarn_rm):
    client = InsecureClient(yarn_rm.hdfs.webhdfs_url, user="alice")
    client.makedirs("/user/alice/data")
    client.write("/user/alice/data/a.txt", data=b"hello hdfs")
    assert client.status("/user/alice/data/a.txt")["length"] == 10
    assert client.status("/user/alice/data/a.txt")["owner"] == "alice"
    with client.read("/user/alice/data/a.txt", offset=6) as reader:
        assert reader.read() == b"hdfs"
    assert client.list("/user/alice/data") == ["a.txt"]
    with pytest.raises(HdfsError, match="already exists"):
        client.write("/user/alice/data/a.txt", data=b"again")
    client.write("/user/alice/data/a.txt", data=b"again", overwrite=True)
    with client.read("/user/alice/data/a.txt") as reader:
        assert reader.read() == b"again"
    with pytest.raises(HdfsError, match="File does not exist: /user/alice/none"):
        client.status("/user/alice/none")
    assert client.status("/user/alice/none", strict=False) is None
    client.rename("/user/alice/data/a.txt", "/user/alice/b.txt")
    assert client.content("/user/alice")["fileCount"] == 1
    assert client.delete("/user/alice", recursive=True) is True


def test_webhdfs_redirects_create_and_open_to_a_datanode(yarn_rm):
    url = f"{yarn_rm.hdfs.webhdfs_url}/webhdfs/v1/tmp/x.bin"
    create = httpx.put(f"{url}?op=CREATE&user.name=bob")
    assert create.status_code == 307 and yarn_rm.hdfs.datanode.address in create.headers["location"]
    written = httpx.put(create.headers["location"], content=b"\x00\x01")
    assert written.status_code == 201 and written.headers["location"] == f"{yarn_rm.hdfs.default_fs}/tmp/x.bin"
    opened = httpx.get(f"{url}?op=OPEN")
    assert opened.status_code == 307
    assert httpx.get(opened.headers["location"]).content == b"\x00\x01"
    bad = httpx.get(f"{url}?op=NOSUCH")
    assert bad.status_code == 400 and bad.json()["RemoteException"]["exception"] == "IllegalArgumentException"


def test_the_double_runs_on_its_own_from_the_command_line(tmp_path):
    port, hdfs_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "mesos_backend.testing.yarn", "--host", "127.0.0.1",
                                "--port", str(port), "--nodes", "2", "--webhdfs-port", str(hdfs_port),
                                "--work-dir", str(tmp_path / "rm")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/ws/v1/cluster/info", timeout=1).json()
                break
            except httpx.HTTPError:
                assert process.poll() is None
                time.sleep(0.1)
        else:
            raise AssertionError("the test RM did not start")
        assert info["clusterInfo"]["haState"] == "ACTIVE"
        nodes = httpx.get(f"http://127.0.0.1:{port}/ws/v1/cluster/nodes").json()["nodes"]["node"]
        assert len(nodes) == 2
        jar = httpx.get(f"http://127.0.0.1:{hdfs_port}/webhdfs/v1/apps/yarn/"
                        "hadoop-yarn-applications-distributedshell.jar?op=GETFILESTATUS").json()
        assert jar["FileStatus"]["type"] == "FILE"
    finally:
        process.terminate()
        process.wait(10)


def test_stand_in_jar_is_what_the_java_stand_in_looks_for(tmp_path):
    import zipfile
    jar = write_stand_in_jar(tmp_path / "ds.jar")
    assert "org/apache/hadoop/yarn/applications/distributedshell/ApplicationMaster.class" in \
        zipfile.ZipFile(jar).namelist()
