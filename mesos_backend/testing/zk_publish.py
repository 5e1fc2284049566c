"""Announcing a test Mesos master in ZooKeeper exactly as a real master does, so leader detection is real.

A master holds an ephemeral sequential znode ``<path>/json.info_<10 digits>`` with its JSON MasterInfo for
as long as its ZooKeeper session lives; the lowest sequence number is the leader. ``MasterElection`` also
watches the other contenders, so that a master knows whether it leads and, if not, who does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, Self

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.security import CREATOR_ALL_ACL, READ_ACL_UNSAFE

from mesos_backend.mesos.detector import (
    JSON_PREFIX,
    DetectorError,
    ZooKeeperSource,
    forever,
    kazoo_log,
    leader_node,
    pack_ip,
    parse_master,
)

LOG = logging.getLogger(__name__)
MESOS_VERSION = "1.11.0"


def master_info(ip: str = "127.0.0.1", port: int = 5050, hostname: str | None = None,
                master_id: str | None = None) -> dict[str, Any]:
    """The JSON MasterInfo a real master writes (``ip`` packed as Mesos packs it)."""
    hostname = hostname or ip
    return {
        "id": master_id or str(uuid.uuid4()),
        "ip": pack_ip(ip),
        "port": port,
        "pid": f"master@{ip}:{port}",
        "hostname": hostname,
        "version": MESOS_VERSION,
        "address": {"hostname": hostname, "ip": ip, "port": port},
    }


class MasterPublisher:
    """One master's announcement: ``start()`` joins the election, ``stop()`` leaves it (deletes the znode).

    ``zk`` is the masters' ``zk://[user:pass@]hosts/path``; ``info`` the JSON MasterInfo to publish.
    """

    def __init__(self, zk: str | ZooKeeperSource, info: dict[str, Any], timeout: float = 10.0) -> None:
        source = parse_master(zk) if isinstance(zk, str) else zk
        if not isinstance(source, ZooKeeperSource):
            raise DetectorError("a master is published in ZooKeeper: expected zk://hosts/path")
        self.source = source
        self.info = info
        self.timeout = timeout
        self._client: KazooClient | None = None
        self.node: str | None = None  # full path of the znode while published

    def __repr__(self) -> str:
        return f"MasterPublisher({self.source}, node={self.node})"

    def start(self) -> str:
        """Open a session and create the znode; returns its path. With credentials, like Mesos, everyone
        may read and only this master write."""
        credentials = self.source.credentials
        auth = [("digest", ":".join(credentials))] if credentials else None
        acl = CREATOR_ALL_ACL + READ_ACL_UNSAFE if credentials else None
        client = KazooClient(hosts=self.source.hosts, timeout=self.timeout, auth_data=auth, default_acl=acl,
                             logger=kazoo_log, connection_retry=forever())
        client.start(timeout=self.timeout)
        try:
            client.ensure_path(self.source.path)
            self.node = client.create(f"{self.source.path}/{JSON_PREFIX}", json.dumps(self.info).encode(),
                                      ephemeral=True, sequence=True)
        except Exception:
            client.stop()
            client.close()
            raise
        self._client = client
        return self.node

    def stop(self) -> None:
        """Leave the election at once: delete the znode and close the session."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.node is not None:  # waits for a reconnection, within the timeout
                client.delete_async(self.node).get(timeout=self.timeout)
        except NoNodeError:
            pass  # the session expired already, taking the node with it
        except Exception as exc:  # still reconnecting after an outage: closing the session removes the node
            kazoo_log.info("leaving the election of %s without deleting %s: %s", self.source, self.node, exc)
        finally:
            self.node = None
            client.stop()
            client.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MasterElection(MasterPublisher):
    """A master contending for leadership: ``on_change(leader_info, is_me)`` runs (on a kazoo thread) whenever
    the lowest ``json.info_`` node changes; ``leader_info`` is None while no master is announced."""

    def __init__(self, zk: str | ZooKeeperSource, info: dict[str, Any],
                 on_change: Callable[[dict[str, Any] | None, bool], None], timeout: float = 10.0) -> None:
        super().__init__(zk, info, timeout)
        self.on_change = on_change
        self._leader: str | None = None

    def start(self) -> str:
        node = super().start()
        client = self._client
        assert client is not None
        client.ChildrenWatch(self.source.path, self._children)
        return node

    def _children(self, children: list[str]) -> bool:
        client = self._client
        if client is None or self.node is None:
            return False  # stopped: end the watch
        leader = leader_node(children)
        if leader == self._leader:
            return True
        self._leader = leader
        info = None
        if leader is not None:
            try:
                data, _ = client.get(f"{self.source.path}/{leader}")
                info = json.loads(data)
            except (NoNodeError, ValueError):
                info = None  # gone already; the watch fires again
        try:
            self.on_change(info, leader is not None and self.node.endswith(leader))
        except Exception:
            LOG.exception("master election: on_change failed")
        return True
