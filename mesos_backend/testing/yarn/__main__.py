"""``python -m mesos_backend.testing.yarn``: a test ResourceManager with NodeManagers and an HDFS, on its own."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cluster import SchedulerConfig, Timings
from .distshell import write_stand_in_jar
from .rm import TestResourceManager, run_forever

LOG = logging.getLogger("mesos_backend.testing.yarn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesos_backend.testing.yarn",
                                     description="A Hadoop YARN ResourceManager test double with local NodeManagers "
                                                 "and an HDFS (WebHDFS).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--node-memory", type=int, default=8192, help="MB per NodeManager")
    parser.add_argument("--node-vcores", type=int, default=8)
    parser.add_argument("--node-labels", default="", help="comma-separated, one per node (empty: none)")
    parser.add_argument("--max-memory", type=int, default=8192, help="yarn.scheduler.maximum-allocation-mb")
    parser.add_argument("--max-vcores", type=int, default=4, help="yarn.scheduler.maximum-allocation-vcores")
    parser.add_argument("--min-memory", type=int, default=1024, help="yarn.scheduler.minimum-allocation-mb")
    parser.add_argument("--queues", default="default", help="comma-separated leaf queues")
    parser.add_argument("--max-completed", type=int, default=1000,
                        help="yarn.resourcemanager.max-completed-applications")
    parser.add_argument("--am-expiry", type=float, default=600.0, help="seconds an AM may run without registering")
    parser.add_argument("--nm-expiry", type=float, default=600.0, help="seconds before a silent node is lost")
    parser.add_argument("--standby-port", type=int, default=None, help="also run a standby RM here (answers 307)")
    parser.add_argument("--webhdfs-port", type=int, default=9870, help="the NameNode's HTTP port (WebHDFS)")
    parser.add_argument("--put-distshell-jar", default="/apps/yarn/hadoop-yarn-applications-distributedshell.jar",
                        help="HDFS path where a stand-in DistributedShell jar is put (empty: none)")
    parser.add_argument("--work-dir", type=Path, default=Path("var/test-yarn"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheduler = SchedulerConfig(min_memory=args.min_memory, max_memory=args.max_memory, max_vcores=args.max_vcores,
                                queues=tuple(q.strip() for q in args.queues.split(",") if q.strip()),
                                max_completed=args.max_completed)
    labels = [label.strip() for label in args.node_labels.split(",")] if args.node_labels else None
    rm = TestResourceManager(args.work_dir.resolve(), args.nodes, args.node_memory, args.node_vcores,
                             standby=args.standby_port is not None, scheduler=scheduler,
                             timings=Timings(am_expiry=args.am_expiry, nm_expiry=args.nm_expiry), host=args.host,
                             port=args.port, webhdfs_port=args.webhdfs_port, node_labels=labels)
    if rm.standby is not None:
        rm.standby.listener.port = args.standby_port
    rm.start()
    if args.put_distshell_jar:
        jar = write_stand_in_jar(args.work_dir.resolve() / "distributedshell.jar")
        rm.hdfs.namespace.create(args.put_distshell_jar, jar.read_bytes(), "yarn", overwrite=True)
        LOG.info("stand-in DistributedShell jar at %s%s", rm.hdfs.default_fs, args.put_distshell_jar)
    LOG.info("test ResourceManager on %s (%d nodes of %d MB, %d vcores); WebHDFS on %s; fs.defaultFS %s", rm.url,
             args.nodes, args.node_memory, args.node_vcores, rm.hdfs.webhdfs_url, rm.hdfs.default_fs)
    run_forever(rm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
