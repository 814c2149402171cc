"""SQLite store: one file under the state dir, the embedded default (nothing to install or run).

One connection in autocommit mode behind a lock; a write is one BEGIN IMMEDIATE transaction, so
several JobManagers (or processes) on the same file serialise their writes and never interleave a
read-modify-write. WAL lets readers in other processes read while a write is in progress.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from svc_orchestrator.store.migrations import migrate_sqlite
from svc_orchestrator.store.sql import SqlStore, Tx, store_full


class _SqliteTx(Tx):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def q(self, sql: str, params: Sequence = ()):
        return self.db.execute(sql, tuple(params))


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self.applied = migrate_sqlite(self._db)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._db)
                # Under WAL the pages are written at COMMIT, so a full volume usually fails here.
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite may have rolled back by itself already
                    self._db.execute("ROLLBACK")
                if _is_full(exc):
                    raise store_full() from exc
                raise

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._lock:
            yield _SqliteTx(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _is_full(exc: BaseException) -> bool:
    """SQLITE_FULL is SQLite's answer to ENOSPC (and to its own page limit)."""
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
