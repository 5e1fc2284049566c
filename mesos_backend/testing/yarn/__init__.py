"""A Hadoop YARN test double: a ResourceManager (REST API, scheduler, HA standby), NodeManagers that run
containers as local processes, Hadoop's DistributedShell ApplicationMaster played in-process, and an HDFS
with WebHDFS. ``python -m mesos_backend.testing.yarn`` runs it on its own."""

from .cluster import SchedulerConfig, Timings, YarnCluster
from .hdfs import HdfsCluster
from .rm import ResourceManagerServer, TestResourceManager

__all__ = ["HdfsCluster", "ResourceManagerServer", "SchedulerConfig", "TestResourceManager", "Timings",
           "YarnCluster"]
