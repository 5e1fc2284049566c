"""Engines, sessions and schema upgrades for the job store.

SQLite (the default) runs in WAL mode with a busy timeout so the gateway and
the dispatcher can read and write at once; PostgreSQL needs nothing special.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_SECONDS = 30


def make_engine(url: str) -> Engine:
    """An engine with the per-dialect settings the gateway relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # How long a writer waits for another one's lock (``?timeout=SECONDS`` in the URL; 30 by default).
        busy = float(parsed.query.get("timeout", SQLITE_BUSY_SECONDS))
        engine = create_engine(parsed.difference_update_query(["timeout"]),
                               connect_args={"timeout": busy, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """The job store's engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._commits = CommitCounter(self.engine.url.database) if _is_sqlite_file(self.engine) else None

    def data_version(self) -> tuple[int, int] | None:
        """A number that changes whenever anybody (this process or another) commits to the store, so that
        what was read under one number is still current under the same; None when the store cannot tell
        cheaply (PostgreSQL, an in-memory database, a failed read): then only reading again is current."""
        return self._commits.read() if self._commits is not None else None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` through the migrations."""
        with self.engine.begin() as connection:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._commits is not None:
            self._commits.close()


def _is_sqlite_file(engine: Engine) -> bool:
    database = engine.url.database or ""
    return engine.url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and \
        not database.startswith("file:")


class CommitCounter:
    """SQLite's ``PRAGMA data_version`` on a connection of its own that never writes: its value changes when
    any other connection, in this process or another, commits to the database (its own writes would not
    count, so it makes none). One pragma, a few microseconds, instead of reading rows again."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._connections = 0  # opened so far: a new connection counts from its own start
        self._lock = threading.Lock()  # server threads share the one connection

    def read(self) -> tuple[int, int] | None:
        """The database's data version now (with the connection's number: the values of two connections
        are not comparable); None when it cannot be read (the caller reads the rows instead)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = sqlite3.connect(self.path, timeout=SQLITE_BUSY_SECONDS, isolation_level=None,
                                                       check_same_thread=False)
                    self._connections += 1
                return self._connections, self._connection.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                self._close()
                return None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
