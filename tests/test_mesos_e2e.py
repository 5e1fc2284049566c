"""The shipped processors through the Mesos backend and the test master with three agents."""

from __future__ import annotations

import pytest

from mesos_backend.testing import proto
from mesos_backend.testing.cluster import MasterTimings

from .conftest import build_gateway, close_gateway, require
from .jobs_support import attempts_of, job_id_of
from .mesos_support import (
    FAST,
    assert_same_outputs,
    check_master,
    mesos_gateway,
    outputs_of,
    start_master,
    submit,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def real_heartbeat_master(tmp_path):
    """The test master with a real master's heartbeat (15 s): the rest of its clocks stay fast."""
    require(proto.available(), "protoc and the Mesos protos (golang-github-mesos-mesos-go-dev) are not installed")
    timings = MasterTimings(allocation_interval=FAST.allocation_interval, update_retry=FAST.update_retry,
                            update_retry_max=FAST.update_retry_max, agent_ping_timeout=FAST.agent_ping_timeout)
    master = start_master(tmp_path / "mesos", timings=timings)
    yield master
    master.stop()
    check_master(master)


@pytest.mark.parametrize(("identifier", "name", "date"), [
    ("ndvi-mosaic", "scenes", "20240610"),
    ("urban-footprint", "tiles", "20240610"),
])
def test_each_processor_gives_the_same_outputs_on_mesos_as_on_the_local_backend(
        tmp_path, sample_data, scenes, wps100_schema, real_heartbeat_master, identifier, name, date):
    mesos_master = real_heartbeat_master
    inputs = [s for s in scenes if date in s.name]
    local = build_gateway(tmp_path / "local", sample_data)
    mesos = mesos_gateway(tmp_path / "mesos-gw", sample_data, mesos_master.leader.address)
    try:
        expected_url = submit(local, identifier, name, inputs)
        expected = outputs_of(local, expected_url, wps100_schema)
        status_url = submit(mesos, identifier, name, inputs)
        assert_same_outputs(outputs_of(mesos, status_url, wps100_schema), expected)

        attempts = attempts_of(mesos, job_id_of(status_url))
        assert attempts and all(a.status == "succeeded" and a.exit_code == 0 for a in attempts)
        agents = set(mesos_master.cluster.agents)
        assert {a.agent for a in attempts} <= agents
        assert all(a.wall_seconds is not None and a.wall_seconds >= 0 for a in attempts)
        # Mesos gives no cpu time or memory: the task's own usage report (the runner's) fills them in.
        assert all(a.usage_source == "task" and a.cpu_seconds > 0 and 0 < a.mem_peak_mb < 4096 for a in attempts)
        local_attempts = attempts_of(local, job_id_of(expected_url))
        assert all(a.usage_source == "engine+task" and a.cpu_seconds > 0 for a in local_attempts)
        assert sorted(mesos_master.cluster.launched) == sorted(a.backend_task_id for a in attempts)
    finally:
        close_gateway(local)
        close_gateway(mesos)


def test_tasks_run_where_their_data_lives(tmp_path, sample_data, scenes, wps100_schema, mesos_master):
    """With a data_locality rule, the classify tasks go to the agent whose storage attribute matches."""
    site = "storage=shared"  # every agent's attribute (see start_master) but the one set below
    near = list(mesos_master.cluster.agents.values())[-1].agent
    near.attributes["storage"] = "site-a"
    tiles = [s for s in scenes if "20240610" in s.name][:2]
    mesos = mesos_gateway(tmp_path / "gw", sample_data, mesos_master.leader.address,
                          GATEWAY_DATA_LOCALITY=f"{sample_data.as_uri()}/ storage=site-a, /elsewhere/ {site}",
                          MESOS_LOCALITY_DELAY="30")
    try:
        status_url = submit(mesos, "urban-footprint", "tiles", tiles)
        outputs_of(mesos, status_url, wps100_schema)
        classify = [a for a in attempts_of(mesos, job_id_of(status_url)) if ".classify." in a.backend_task_id]
        assert classify and {a.agent for a in classify} == {near.agent_id}
    finally:
        close_gateway(mesos)
