"""Shared pieces of the YARN tests: a test ResourceManager with three NodeManagers and an HDFS, a gateway on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos_backend.testing.yarn import SchedulerConfig, TestResourceManager, Timings
from mesos_backend.testing.yarn.distshell import write_stand_in_jar

from .conftest import Gateway, build_gateway

DS_JAR = "/apps/yarn/hadoop-yarn-applications-distributedshell-3.3.6.jar"
# Fast clocks: the scheduler every 20 ms, a silent node lost after 1 s; an AM must register within 30 s (a loaded
# CI machine can take seconds to start one) ...
FAST = Timings(tick=0.02, am_expiry=30.0, nm_expiry=1.0)
# ... except where a test waits for an AM that never registers.
IMPATIENT = Timings(tick=0.02, am_expiry=2.0, nm_expiry=1.0)


def start_rm(work_dir: Path, nodes: int = 3, **options) -> TestResourceManager:
    """A test RM (8 GB, 8 vcores per node; 512 MB the smallest container) with DistributedShell's jar on its HDFS."""
    options.setdefault("timings", FAST)
    options.setdefault("scheduler", SchedulerConfig(min_memory=512))
    rm = TestResourceManager(work_dir, nodes, **options).start()
    jar = write_stand_in_jar(work_dir / "distributedshell.jar")
    rm.hdfs.namespace.create(DS_JAR, jar.read_bytes(), "yarn", overwrite=True)
    return rm


@pytest.fixture
def yarn_rm(tmp_path):
    rm = start_rm(tmp_path / "yarn")
    yield rm
    rm.stop()


@pytest.fixture
def impatient_rm(tmp_path):
    """A test RM that fails an AM which has not registered 2 s after its container started."""
    rm = start_rm(tmp_path / "yarn", timings=IMPATIENT)
    yield rm
    rm.stop()


def yarn_environ(rm: TestResourceManager, **extra: str) -> dict[str, str]:
    """The settings of a gateway on ``rm``: its RM addresses, WebHDFS, the jar and staging on HDFS, fast polling."""
    env = {"GATEWAY_BACKEND": "yarn", "YARN_RESOURCE_MANAGER": ",".join(s.url for s in rm.servers),
           "YARN_USER": "wps", "YARN_WEBHDFS": rm.hdfs.webhdfs_url, "YARN_AM_JAR": rm.hdfs.default_fs + DS_JAR,
           "YARN_STAGING_DIR": rm.hdfs.default_fs + "/user/wps/gateway", "YARN_POLL_INTERVAL": "0.1"}
    env.update(extra)
    return env


def yarn_gateway(data_dir: Path, sample_data: Path, rm: TestResourceManager, dispatcher: bool = True,
                 **extra: str) -> Gateway:
    return build_gateway(data_dir, sample_data, dispatcher=dispatcher, **yarn_environ(rm, **extra))
