"""SQLite store: one file under the state dir, the embedded default (nothing to install or run).

One connection in autocommit mode behind a lock; a write is one BEGIN IMMEDIATE transaction, so
several JobManagers (or processes) on the same file serialise their writes and never interleave a
read-modify-write. WAL lets readers in other processes read while a write is in progress.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from svc_orchestrator.store.migrations import migrate_sqlite
from svc_orchestrator.store.sql import SqlStore, Tx, store_full

#: Enough for a few job-ending updates and their events in the WAL (a page is 4 KiB).
RESERVE_BYTES = 64 * 1024


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
        # Space kept back on the store's volume: when a write finds the volume full, deleting this file
        # lets the jobs that hit it record FAILED STORE_FULL instead of waiting silently for space.
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        self.restore_reserve()

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

    def release_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore_reserve(self) -> None:
        if self.reserve.exists() and self.reserve.stat().st_size >= RESERVE_BYTES:
            return
        try:
            vfs = os.statvfs(self.reserve.parent)
            if vfs.f_bavail * vfs.f_frsize < 4 * RESERVE_BYTES:  # not the volume's last bytes: wait for room
                return
            with open(self.reserve, "wb") as f:  # real blocks (not a sparse file): zeros written out
                f.write(bytes(RESERVE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # no room yet: try again later; a half-written reserve holds nothing useful
            self.reserve.unlink(missing_ok=True)


def _is_full(exc: BaseException) -> bool:
    """SQLITE_FULL is SQLite's answer to ENOSPC (and to its own page limit)."""
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
