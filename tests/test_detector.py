"""Finding the leading Mesos master: parsing the setting, and following the election in a real ZooKeeper."""

from __future__ import annotations

import json
import logging
import queue
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from mesos_backend.mesos.detector import (
    DetectorError,
    StaticDetector,
    StaticSource,
    ZooKeeperDetector,
    ZooKeeperSource,
    create_detector,
    leader_node,
    master_address,
    pack_ip,
    parse_master,
    unpack_ip,
)
from mesos_backend.testing import proto
from mesos_backend.testing.zk_publish import MasterPublisher, master_info
from tests.conftest import free_port
from tests.servers.zookeeper import ZooKeeperServer

WAIT = 10.0
LONG_SESSION = 30.0  # seconds; ZooKeeper grants up to maxSessionTimeout (tests/servers/zookeeper.py)


@pytest.mark.parametrize(("text", "masters", "urls"), [
    ("m1:5050,m2:5051", ("m1:5050", "m2:5051"), ["http://m1:5050", "http://m2:5051"]),
    (" m1 , m2 ", ("m1:5050", "m2:5050"), ["http://m1:5050", "http://m2:5050"]),
    ("http://m1/,http://m2:6060", ("m1:5050", "m2:6060"), ["http://m1:5050", "http://m2:6060"]),
    ("https://m1", ("m1:5050",), ["https://m1:5050"]),
    ("[::1]:5051", ("[::1]:5051",), ["http://[::1]:5051"]),
])
def test_static_list(text: str, masters: tuple[str, ...], urls: list[str]) -> None:
    source = parse_master(text)
    assert isinstance(source, StaticSource) and source.masters == masters
    detector = create_detector(source)
    assert isinstance(detector, StaticDetector) and detector.candidates() == urls


def test_tls_chooses_the_scheme_unless_the_text_did() -> None:
    assert create_detector("m1", tls=True).candidates() == ["https://m1:5050"]
    assert create_detector("http://m1", tls=True).candidates() == ["http://m1:5050"]


def test_zookeeper_url() -> None:
    source = parse_master("zk://zk1:2181,zk2/mesos/")
    assert source == ZooKeeperSource("zk1:2181,zk2:2181", "/mesos")
    assert isinstance(create_detector(source), ZooKeeperDetector)


def test_zookeeper_credentials_never_shown() -> None:
    source = parse_master("zk://jdoe:pa55word@zk1:2181/mesos")
    assert isinstance(source, ZooKeeperSource) and source.credentials == ("jdoe", "pa55word")
    shown = f"{source} {source!r} {create_detector(source)!r}"
    assert "pa55word" not in shown and "jdoe" not in shown


@pytest.mark.parametrize("text", ["", "m1:port", "m1:99999", "ftp://m1", "http://m1,https://m2", "m1/path",
                                  "zk://zk1:2181", "zk://zk1:2181/", "zk://jdoe@zk1/mesos", "zk://jdoe:pw@/mesos"])
def test_bad_settings_are_refused(text: str) -> None:
    with pytest.raises(DetectorError):
        parse_master(text)


def test_master_info_address_preference() -> None:
    assert pack_ip("127.0.0.1") == 16777343 and unpack_ip(16777343) == "127.0.0.1"
    info = {"id": "x", "ip": pack_ip("10.1.2.3"), "port": 5050, "hostname": "m.example.org",
            "address": {"hostname": "m1.example.org", "ip": "10.1.2.3", "port": 5051}}
    assert master_address(info) == "m1.example.org:5051"
    del info["address"]["hostname"]
    assert master_address(info) == "10.1.2.3:5051"
    del info["address"]
    assert master_address(info) == "m.example.org:5050"
    del info["hostname"]
    assert master_address(info) == "10.1.2.3:5050"


def test_leader_node_is_the_lowest_json_sequence() -> None:
    children = ["log_replicas", "info_0000000000", "json.info_0000000012", "json.info_0000000003", "json.info_x"]
    assert leader_node(children) == "json.info_0000000003"
    assert leader_node(["log_replicas", "info_0000000001"]) is None


# --- against a real ZooKeeper -------------------------------------------------------------------------------


@pytest.fixture
def zk_path() -> str:
    return f"/mesos-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def publishers(zookeeper_server: ZooKeeperServer, zk_path: str) -> Iterator[list[MasterPublisher]]:
    """Masters 1 and 2 (ports 5051, 5052), not yet started."""
    zk = f"zk://{zookeeper_server.hosts}{zk_path}"
    started = [MasterPublisher(zk, master_info(port=5050 + n, master_id=f"master-{n}")) for n in (1, 2)]
    yield started
    for publisher in started:
        publisher.stop()


class Changes:
    """Collects on_change calls so a test can wait for the next one."""

    def __init__(self) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()

    def __call__(self, leader: str | None) -> None:
        self.queue.put(leader)

    def next(self, timeout: float = WAIT) -> str | None:
        return self.queue.get(timeout=timeout)


def zk_detector(server: ZooKeeperServer, path: str, changes: Changes, credentials: str = "") -> ZooKeeperDetector:
    detector = create_detector(f"zk://{credentials}{server.hosts}{path}", on_change=changes, timeout=WAIT)
    assert isinstance(detector, ZooKeeperDetector)
    return detector


def both_published(publishers: list[MasterPublisher]) -> Changes:
    """Both masters in ZooKeeper, the first one leading; returns a change recorder."""
    for publisher in publishers:
        publisher.start()
    return Changes()


def test_leader_is_the_first_and_follows_failover(zookeeper_server: ZooKeeperServer, zk_path: str,
                                                  publishers: list[MasterPublisher]) -> None:
    first, second = publishers
    changes = both_published(publishers)
    with zk_detector(zookeeper_server, zk_path, changes) as detector:
        assert changes.next() == "127.0.0.1:5051"
        assert detector.leader() == "127.0.0.1:5051"
        assert detector.candidates() == ["http://127.0.0.1:5051"]
        first.stop()
        assert changes.next() == "127.0.0.1:5052"
        assert detector.candidates() == ["http://127.0.0.1:5052"]
        second.stop()
        assert changes.next() is None
        assert detector.leader(timeout=0.1) is None


def test_waits_for_a_master_when_none_has_registered(zookeeper_server: ZooKeeperServer, zk_path: str,
                                                     publishers: list[MasterPublisher]) -> None:
    changes = Changes()
    with zk_detector(zookeeper_server, zk_path, changes) as detector:
        assert detector.leader(timeout=0.2) is None  # the path does not even exist yet
        publishers[1].start()
        assert detector.leader() == "127.0.0.1:5052"
        assert changes.next() == "127.0.0.1:5052"


def test_non_json_nodes_are_ignored(zookeeper_server: ZooKeeperServer, zk_path: str,
                                    publishers: list[MasterPublisher]) -> None:
    client = KazooClient(hosts=zookeeper_server.hosts, timeout=WAIT)
    client.start(timeout=WAIT)
    try:
        client.create(f"{zk_path}/log_replicas", b"", makepath=True)
        # An old-style protobuf announcement, with a lower sequence number than any JSON one.
        client.create(f"{zk_path}/info_", b"\x0a\x08master-0", ephemeral=True, sequence=True)
        publishers[1].start()
        assert publishers[1].node and publishers[1].node.endswith("json.info_0000000002")
        with zk_detector(zookeeper_server, zk_path, Changes()) as detector:
            assert detector.leader() == "127.0.0.1:5052"
    finally:
        client.stop()
        client.close()


def test_published_master_info_is_what_mesos_writes(zookeeper_server: ZooKeeperServer, zk_path: str,
                                                    publishers: list[MasterPublisher]) -> None:
    node = publishers[0].start()
    client = KazooClient(hosts=zookeeper_server.hosts, timeout=WAIT)
    client.start(timeout=WAIT)
    try:
        data, stat = client.get(node)
    finally:
        client.stop()
        client.close()
    assert stat.ephemeralOwner != 0
    info = json.loads(data)
    assert info == {"id": "master-1", "ip": 16777343, "port": 5051, "pid": "master@127.0.0.1:5051",
                    "hostname": "127.0.0.1", "version": "1.11.0",
                    "address": {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": 5051}}
    if proto.available():
        proto.validate_message("mesos.MasterInfo", info)


def test_digest_credentials(zookeeper_server: ZooKeeperServer, zk_path: str,
                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    publisher = MasterPublisher(f"zk://mesos:s3cr3t-zk@{zookeeper_server.hosts}{zk_path}", master_info(port=5053))
    changes = Changes()
    with publisher, zk_detector(zookeeper_server, zk_path, changes, "mesos:s3cr3t-zk@") as detector:
        assert detector.leader() == "127.0.0.1:5053"
        assert "s3cr3t-zk" not in repr(detector) + repr(publisher)
    assert "s3cr3t-zk" not in caplog.text


def test_survives_a_zookeeper_restart(zookeeper_server: ZooKeeperServer, zk_path: str) -> None:
    """Sessions outlive an outage shorter than their timeout, and so do the watches. The sessions here are
    long (a JVM restart on a busy machine can take longer than the usual 10 s: a master's session would
    expire then, and a real master would restart and publish itself anew, which the publishers do not)."""
    zk = f"zk://{zookeeper_server.hosts}{zk_path}"
    publishers = [MasterPublisher(zk, master_info(port=5050 + n, master_id=f"master-{n}"), timeout=LONG_SESSION)
                  for n in (1, 2)]
    try:
        changes = both_published(publishers)
        detector = create_detector(f"zk://{zookeeper_server.hosts}{zk_path}", on_change=changes,
                                   timeout=LONG_SESSION)
        with detector:
            assert changes.next() == "127.0.0.1:5051"
            zookeeper_server.restart()
            publishers[0].stop()
            assert changes.next(timeout=LONG_SESSION) == "127.0.0.1:5052"
            assert detector.leader() == "127.0.0.1:5052"
    finally:
        for publisher in publishers:
            publisher.stop()


def test_unreachable_zookeeper_is_a_detector_error() -> None:
    detector = create_detector(f"zk://127.0.0.1:{free_port()}/mesos", timeout=1.0)
    with pytest.raises(DetectorError, match="cannot connect"):
        detector.start()
