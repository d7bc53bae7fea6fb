"""Engines and sessions; nothing is built at import time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from drift.fileperm import private_file

#: how long a writer waits for its turn in this process before it leaves the wait to SQLite
#: (a transaction that never ends must not stop every other writer for good)
WRITE_TURN_TIMEOUT_S = 30.0


def make_engine(url: str, *, write_lock: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL, a busy timeout and serialised
    transactions. ``write_lock=False`` makes an SQLite engine for reading only: its
    transactions start deferred, so readers see a consistent snapshot without waiting for
    (or holding up) writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _private_database(parsed.database)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLAlchemy, not the driver, opens transactions (see _sqlite_begin)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if parsed.database and parsed.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                # in WAL mode NORMAL cannot corrupt the database; a power cut may lose the
                # last commits, a crash of the process loses nothing
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        if not write_lock:

            @event.listens_for(engine, "begin")
            def _sqlite_begin_deferred(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN")

            return engine

        # The writers of this process queue for SQLite's one write lock here, in order and
        # woken at once, instead of in SQLite's busy handler, which sleeps up to 100 ms
        # between tries (a heartbeat batch could wait a second behind a burst of
        # submissions that each got in first). Another process still waits in SQLite.
        turn = engine.write_turn = threading.Lock()  # type: ignore[attr-defined]

        def _let_go(info: dict) -> None:
            if info.pop("drift_write_turn", False):
                turn.release()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # take the write lock up front: a read-then-write transaction (a node report that
            # looks at its sibling assignments) then sees no change committed under it
            if turn.acquire(timeout=WRITE_TURN_TIMEOUT_S):  # else: SQLite's own wait
                conn.info["drift_write_turn"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _let_go(conn.info)
                raise

        # after the COMMIT or ROLLBACK itself (the events fire just before it)
        @event.listens_for(engine, "commit")
        def _sqlite_commit(conn: Any) -> None:
            try:
                conn.connection.dbapi_connection.commit()  # SQLAlchemy's own is then a no-op
            finally:
                _let_go(conn.info)

        @event.listens_for(engine, "rollback")
        def _sqlite_rollback(conn: Any) -> None:
            try:
                conn.connection.dbapi_connection.rollback()
            finally:
                _let_go(conn.info)

        @event.listens_for(engine.pool, "checkin")
        def _sqlite_checkin(_dbapi_conn: Any, record: Any) -> None:
            _let_go(record.info)  # a connection handed back with its transaction cut off

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _private_database(database: str | None) -> None:
    """An SQLite database file (password hashes, credential digests) is its owner's only:
    created ``0600`` before SQLite opens it (SQLite gives its WAL and shared-memory files the
    database's mode), an existing one tightened."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        private_file(path, sqlite=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
