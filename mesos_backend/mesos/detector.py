"""Finding the leading Mesos master, from a static list of masters or from their announcements in ZooKeeper.

Static lists are tried in order (a non-leader answers 307 to the leader). With ZooKeeper every master holds
an ephemeral sequential znode ``<path>/json.info_<10 digits>`` with its JSON MasterInfo, and the lowest
sequence number is the leader; that is what ``ZooKeeperDetector`` watches.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

log = logging.getLogger(__name__)

# Back-off between reconnections and re-reads. Short at the top: a session outlives an outage only if the
# client is back within the session timeout after the server is, so a long last wait loses the session.
RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 2.0


class _RedactAuth(logging.Filter):
    """kazoo logs its Auth requests, digest "user:password" included, at DEBUG level: mask the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Auth(" in message:
            record.msg, record.args = re.sub(r"\bauth=.*", "auth=***)", message), None
        return True


# Pass as ``logger=`` to every KazooClient that may carry credentials.
kazoo_log = logging.getLogger(f"{__name__}.kazoo")
kazoo_log.addFilter(_RedactAuth())

DEFAULT_MASTER_PORT = 5050
DEFAULT_ZOOKEEPER_PORT = 2181
JSON_PREFIX = "json.info_"
DEFAULT_TIMEOUT = 10.0

OnChange = Callable[[str | None], None]


class DetectorError(Exception):
    """The master setting is malformed, or ZooKeeper cannot be reached or read."""


def pack_ip(ip: str) -> int:
    """MasterInfo.ip as a master writes it: the in_addr bytes (network order) read as a little-endian uint32.

    Mesos stores ``s_addr`` as is, so on the (little-endian) hosts it runs on 127.0.0.1 becomes 16777343.
    """
    return struct.unpack("<I", socket.inet_aton(ip))[0]


def unpack_ip(value: int) -> str:
    """The dotted IPv4 address of a MasterInfo.ip (inverse of ``pack_ip``)."""
    return socket.inet_ntoa(struct.pack("<I", value))


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_host(entry: str, default_port: int, what: str) -> str:
    """One "host[:port]" entry, normalised to "host:port"; DetectorError when it is not one."""
    try:
        parts = urlsplit(f"//{entry.strip()}")
        port = parts.port or default_port
    except ValueError as exc:
        raise DetectorError(f"bad {what} address {entry.strip()!r}: {exc}") from None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        raise DetectorError(f"bad {what} address {entry.strip()!r}: expected host[:port]")
    return _host_port(parts.hostname, port)


@dataclass(frozen=True)
class StaticSource:
    """Masters listed in the setting; ``scheme`` is "http"/"https" when the text spelled it out."""

    masters: tuple[str, ...]
    scheme: str | None = None


@dataclass(frozen=True)
class ZooKeeperSource:
    """A ``zk://`` setting; the credentials are kept out of repr and str so they never reach a log."""

    hosts: str
    path: str
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"zk://{'***@' if self.credentials else ''}{self.hosts}{self.path}"


MasterSource = StaticSource | ZooKeeperSource


def parse_master(text: str) -> MasterSource:
    """Parse the master setting: "host:port,..." (optionally http(s)://) or "zk://[user:pass@]hosts/path"."""
    text = text.strip()
    if text.startswith("zk://"):
        return _parse_zookeeper(text[len("zk://"):])
    schemes, masters = set(), []
    for entry in text.split(","):
        scheme, sep, rest = entry.strip().partition("://")
        if sep and scheme not in ("http", "https"):
            raise DetectorError(f"bad master address {entry.strip()!r}: only http, https and zk are supported")
        schemes.add(scheme if sep else None)
        masters.append(_parse_host((rest if sep else entry).rstrip("/"), DEFAULT_MASTER_PORT, "master"))
    schemes.discard(None)
    if len(schemes) > 1:
        raise DetectorError("the master list mixes http:// and https://")
    return StaticSource(tuple(masters), schemes.pop() if schemes else None)


def _parse_zookeeper(rest: str) -> ZooKeeperSource:
    authority, _, path = rest.partition("/")
    path = "/" + path.strip("/")
    if path == "/":
        raise DetectorError("a zk:// master setting needs a path such as zk://host:2181/mesos ('/' is not one)")
    credentials = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user, _, password = userinfo.partition(":")
        if not user or not password:
            raise DetectorError("zk:// credentials must be user:password")  # never echo them
        credentials = (user, password)
    hosts = ",".join(_parse_host(entry, DEFAULT_ZOOKEEPER_PORT, "ZooKeeper") for entry in authority.split(","))
    return ZooKeeperSource(hosts, path, credentials)


class MasterDetector(ABC):
    """Where to send scheduler calls: base URLs such as "http://host:5050", most likely leader first."""

    def __init__(self, tls: bool = False) -> None:
        self.tls = tls

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def start(self) -> None:  # noqa: B027 - optional for detectors that hold nothing
        """Begin detecting (connect, watch)."""

    def stop(self) -> None:  # noqa: B027
        """Release connections and watches."""

    @abstractmethod
    def candidates(self) -> list[str]:
        """Base URLs to try in order; empty when no master is known right now (retry later)."""

    @abstractmethod
    def known_masters(self) -> set[str]:
        """Every master ("host:port") this detector vouches for: configured, or announced in ZooKeeper.
        Credentials go to these only (a 307 elsewhere is not followed with them)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class StaticDetector(MasterDetector):
    """The listed masters, in order: the driver tries each, and 307 redirects lead it to the leader."""

    def __init__(self, source: StaticSource, tls: bool = False) -> None:
        super().__init__(tls if source.scheme is None else source.scheme == "https")
        self.source = source

    def candidates(self) -> list[str]:
        return [f"{self.scheme}://{master}" for master in self.source.masters]

    def known_masters(self) -> set[str]:
        return set(self.source.masters)

    def __repr__(self) -> str:
        return f"StaticDetector({','.join(self.candidates())})"


def master_address(info: dict[str, Any]) -> str:
    """ "host:port" of a JSON MasterInfo: address.hostname, address.ip, hostname, then the packed ip."""
    address = info.get("address") or {}
    host = address.get("hostname") or address.get("ip") or info.get("hostname")
    if not host:
        if not isinstance(info.get("ip"), int):
            raise ValueError("MasterInfo has neither address, hostname nor ip")
        host = unpack_ip(info["ip"])
    port = address.get("port") or info.get("port") or DEFAULT_MASTER_PORT
    return _host_port(host, int(port))


def leader_node(children: list[str]) -> str | None:
    """The child that names the leader: the ``json.info_`` node with the lowest sequence number."""
    sequenced = [(int(name[len(JSON_PREFIX):]), name) for name in children
                 if name.startswith(JSON_PREFIX) and name[len(JSON_PREFIX):].isdigit()]
    return min(sequenced)[1] if sequenced else None


class ZooKeeperDetector(MasterDetector):
    """Follows the leader announced in ZooKeeper; ``on_change`` runs on a kazoo thread and must return quickly."""

    def __init__(self, source: ZooKeeperSource, tls: bool = False, on_change: OnChange | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(tls)
        self.source = source
        self.on_change = on_change
        self.timeout = timeout
        self._client: KazooClient | None = None
        self._leader: str | None = None
        self._members: set[str] = set()  # every announced master, leader or not
        self._changed = threading.Condition()
        self._refreshing = threading.Lock()
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"ZooKeeperDetector({self.source}, leader={self._leader})"

    def start(self) -> None:
        if self._client is not None:
            return  # started already (a new driver of the same backend)
        auth = [("digest", ":".join(self.source.credentials))] if self.source.credentials else None
        client = KazooClient(hosts=self.source.hosts, timeout=self.timeout, auth_data=auth, logger=kazoo_log,
                             connection_retry=forever())
        try:
            client.start(timeout=self.timeout)
        except KazooTimeoutError:
            client.close()
            raise DetectorError(f"cannot connect to ZooKeeper for {self.source} within {self.timeout} s") from None
        self._client = client
        self._stopping.clear()
        client.add_listener(self._on_state)
        try:
            self._refresh(raise_errors=True)
        except DetectorError:
            self.stop()
            raise

    def stop(self) -> None:
        client, self._client = self._client, None
        self._stopping.set()
        if client is not None:
            client.remove_listener(self._on_state)
            client.stop()
            client.close()

    def leader(self, timeout: float | None = None) -> str | None:
        """The leader's "host:port", waiting up to ``timeout`` (default: the detector's) for one to appear."""
        with self._changed:
            self._changed.wait_for(lambda: self._leader is not None, self.timeout if timeout is None else timeout)
            return self._leader

    def candidates(self) -> list[str]:
        leader = self.leader()
        return [f"{self.scheme}://{leader}"] if leader else []

    def known_masters(self) -> set[str]:
        with self._changed:
            return set(self._members) | ({self._leader} if self._leader else set())

    def _on_state(self, state: str) -> None:
        # Kazoo listeners must not block: work happens on a handler thread.
        if state == KazooState.LOST:  # session gone: its watches and our knowledge of the leader with it
            self._set_leader(None)
        elif state == KazooState.CONNECTED and self._client is not None:
            self._client.handler.spawn(self._refresh)

    def _on_watch(self, event: object) -> None:
        if self._client is not None:
            self._client.handler.spawn(self._refresh)

    def _refresh(self, raise_errors: bool = False) -> None:
        """Re-read the children (re-arming the watch) and the leader's MasterInfo.

        A read that fails (the connection dropped again mid-read) is retried with back-off for as long as
        this client is ours: no watch is armed until a read succeeds, so giving up would leave the detector
        blind to every later change.
        """
        client = self._client
        delay = RETRY_DELAY
        while client is not None and client is self._client:
            with self._refreshing:
                try:
                    leader = self._read_leader(client)
                except (KazooException, KazooTimeoutError) as exc:
                    if raise_errors:
                        raise DetectorError(f"cannot read {self.source}: {exc!r}") from None
                    log.warning("cannot read %s, retrying in %.1f s: %r", self.source, delay, exc)
                else:
                    self._set_leader(leader)
                    return
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RETRY_DELAY)

    def _read_leader(self, client: KazooClient) -> str | None:
        path = self.source.path
        while True:
            try:
                children = client.get_children_async(path, watch=self._on_watch).get(timeout=self.timeout)
            except NoNodeError:  # no master has ever registered: wait for the path to appear
                if client.exists_async(path, watch=self._on_watch).get(timeout=self.timeout) is None:
                    return None
                continue
            node = leader_node(children)
            if node is None:
                return None
            try:
                data, _ = client.get_async(f"{path}/{node}").get(timeout=self.timeout)
            except NoNodeError:  # the leader just went away; the watch fired too, read again
                continue
            self._read_members(client, [c for c in children if c != node and leader_node([c]) is not None])
            try:
                return master_address(json.loads(data))
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("unusable MasterInfo in %s/%s: %s", self.source, node, exc)
                return None

    def _read_members(self, client: KazooClient, others: list[str]) -> None:
        """The standbys' addresses too: a redirect may name one of them once it leads."""
        members = set()
        for child in others:
            try:
                data, _ = client.get_async(f"{self.source.path}/{child}").get(timeout=self.timeout)
                members.add(master_address(json.loads(data)))
            except (NoNodeError, ValueError, TypeError, AttributeError):
                continue
        with self._changed:
            self._members = members

    def _set_leader(self, leader: str | None) -> None:
        with self._changed:
            if leader == self._leader:
                return
            self._leader = leader
            self._changed.notify_all()
        log.info("leading Mesos master for %s: %s", self.source, leader or "none")
        if self.on_change is not None:
            try:
                self.on_change(leader)
            except Exception:
                log.exception("on_change callback failed")


def forever() -> KazooRetry:
    """Reconnect to ZooKeeper for as long as it takes (kazoo's default gives up after one try)."""
    return KazooRetry(max_tries=-1, delay=RETRY_DELAY, backoff=2, max_delay=MAX_RETRY_DELAY)


def create_detector(master: str | MasterSource, tls: bool = False, on_change: OnChange | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> MasterDetector:
    """The detector for a master setting; ``on_change`` only fires for ZooKeeper, the one that can change."""
    source = parse_master(master) if isinstance(master, str) else master
    if isinstance(source, ZooKeeperSource):
        return ZooKeeperDetector(source, tls=tls, on_change=on_change, timeout=timeout)
    return StaticDetector(source, tls=tls)
