"""One active dispatcher: a lock that dies with its holder, and a fence behind it.

The dispatcher is the only writer of task state, so a second one started by
mistake must wait. SQLite deployments (one machine) use an exclusive
``flock`` on a file beside the database (so two data dirs on one database
still exclude each other); PostgreSQL deployments use a session-level
advisory lock. Both are released by the operating system or the server when
the holder dies, even by SIGKILL, so a restart takes over at once.

A lock alone is not enough on PostgreSQL: killing the holder's session or
restarting the server releases it while the holder still runs. So taking
over also bumps an epoch in the ``dispatcher_lease`` row, and every write of
the active dispatcher renews the lease at its own epoch (``Leadership.fence``):
a replaced dispatcher's writes fail, so it can neither record nor launch
anything, and it steps down as soon as it sees another epoch.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, bindparam, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from .store.db import Store
from .store.models import DispatcherLease, utcnow

LOG = logging.getLogger(__name__)
ADVISORY_KEY = 0x57505347  # "WPSG"
LEASE_ID = 1


class LeadershipLost(RuntimeError):
    """Another dispatcher took over: this one must stop writing and launching."""


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...

    def alive(self) -> bool: ...

    def release(self) -> None: ...


class FileLock:
    """``flock`` on a file: held until released or until the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        connection = self.engine.connect()
        try:
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
            connection.commit()
        except BaseException:
            connection.invalidate()
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def alive(self) -> bool:
        """Whether this session still holds the lock (a killed session or a restarted server does not)."""
        if self._connection is None:
            return False
        try:
            held = self._connection.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objid = :k"), {"k": ADVISORY_KEY}).scalar()
            self._connection.commit()
        except DBAPIError:
            self._drop()
            return False
        if not held:
            self._drop()
        return bool(held)

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                self._connection.commit()
            except DBAPIError:
                pass  # the session is gone, and the lock with it
            finally:
                self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except DBAPIError:
                pass


def leader_lock_for(engine: Engine, data_dir: Path) -> LeaderLock:
    """An advisory lock on PostgreSQL; a file lock beside the SQLite database (in data_dir for in-memory)."""
    url = make_url(str(engine.url))
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine)
    database = url.database or ""
    if database and database != ":memory:":
        path = Path(database).absolute()
        return FileLock(path.with_name(f"{path.name}.dispatcher.lock"))
    return FileLock(data_dir / "memory.dispatcher.lock")


class Leadership:
    """The lock plus the fencing epoch: what makes one dispatcher the active one."""

    def __init__(self, store: Store, lock: LeaderLock) -> None:
        self.store = store
        self.lock = lock
        self.epoch: int | None = None
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    def acquire(self) -> bool:
        """Take the lock and a new epoch; False while another dispatcher holds it or the store is down."""
        try:
            if not self.lock.try_acquire():
                return False
            self.epoch = self._bump(expected=None)
        except SQLAlchemyError as exc:
            LOG.warning("cannot take the dispatcher lock now (%s); retrying", type(exc).__name__)
            self._release_quietly()
            return False
        return True

    def holds(self) -> bool:
        """Whether this dispatcher may act now.

        True while the lock is held. After the lock was lost (a killed session,
        a database restart) it is taken again and the epoch moved on, unless
        another dispatcher took over meanwhile: then ``LeadershipLost``. False
        while that cannot be decided (the store is unreachable): act on nothing.
        """
        if self.epoch is None:
            raise LeadershipLost("this dispatcher was never the active one")
        if self.lock.alive():
            return True
        LOG.warning("the dispatcher lock was lost; taking it again")
        try:
            if self.lock.try_acquire():
                self.epoch = self._bump(expected=self.epoch)
                LOG.info("dispatcher lock taken again (epoch %d)", self.epoch)
                return True
            current = self._current_epoch()
        except SQLAlchemyError as exc:
            LOG.warning("job store unreachable (%s); dispatching waits", type(exc).__name__)
            return False
        if current != self.epoch:
            raise LeadershipLost(f"another dispatcher took over (epoch {current}, ours {self.epoch})")
        return False

    def fence(self, session: Session) -> None:
        """Renew the lease at our epoch inside ``session``'s transaction; LeadershipLost if it moved on."""
        done = session.connection().execute(_RENEW, {"lease_id": LEASE_ID, "our_epoch": self.epoch,
                                                     "renewed": utcnow()})
        if done.rowcount != 1:
            raise LeadershipLost(f"the lease is no longer at epoch {self.epoch}")

    def release(self) -> None:
        self.epoch = None
        self._release_quietly()

    def _release_quietly(self) -> None:
        try:
            self.lock.release()
        except (SQLAlchemyError, OSError) as exc:
            LOG.warning("releasing the dispatcher lock failed: %s", exc)

    def _current_epoch(self) -> int | None:
        with self.store.sessions() as session:
            return session.scalar(select(DispatcherLease.epoch).where(DispatcherLease.id == LEASE_ID))

    def _bump(self, expected: int | None) -> int:
        """A new epoch; with ``expected``, only if nobody else moved it since (else LeadershipLost)."""
        with self.store.session() as session:
            lease = session.get(DispatcherLease, LEASE_ID, with_for_update=True)
            if lease is None:
                lease = DispatcherLease(id=LEASE_ID, epoch=0)
                session.add(lease)
            elif expected is not None and lease.epoch != expected:
                self._release_quietly()
                raise LeadershipLost(f"another dispatcher took over (epoch {lease.epoch}, ours {expected})")
            lease.epoch = (lease.epoch or 0) + 1
            lease.holder = self.holder
            lease.renewed = utcnow()
            return lease.epoch


# Every write of the dispatcher runs this first: built once, run on the connection (the ORM's way costs more).
_RENEW = (update(DispatcherLease.__table__)
          .where(DispatcherLease.__table__.c.id == bindparam("lease_id"),
                 DispatcherLease.__table__.c.epoch == bindparam("our_epoch"))
          .values(renewed=bindparam("renewed")))
