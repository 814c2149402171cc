"""PostgreSQL store: the state every orchestrator replica shares.

A small connection pool (psycopg 3); every method is one transaction on one pooled connection.
Rows about to be changed are read `FOR UPDATE`; a replica claiming a work unit skips units another
replica is claiming at that moment (`FOR UPDATE OF u SKIP LOCKED`) instead of waiting for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from svc_orchestrator.store.migrations import migrate_postgres
from svc_orchestrator.store.sql import SqlStore, Tx, store_full

_DISK_FULL = "53100"  # SQLSTATE disk_full


class _PgTx(Tx):
    def __init__(self, conn) -> None:
        self.conn = conn

    def q(self, sql: str, params: Sequence = ()):
        # The shared SQL uses `?`; psycopg wants `%s`. No statement holds a literal `?` or `%`.
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))


class PostgresStore(SqlStore):
    dialect = "postgresql"
    lock_rows = " FOR UPDATE"
    claim_rows = " FOR UPDATE OF u SKIP LOCKED"

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout_s: float = 10.0) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=connect_timeout_s,
                                    kwargs={"connect_timeout": max(1, int(connect_timeout_s))})
        self._pool.wait(timeout=connect_timeout_s)
        with self._pool.connection() as conn:
            self.applied = migrate_postgres(conn)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _PgTx(conn)
        except Exception as exc:  # psycopg's DiskFull, matched by SQLSTATE so psycopg stays a lazy import
            if getattr(exc, "sqlstate", None) == _DISK_FULL:
                raise store_full() from exc
            raise

    def close(self) -> None:
        self._pool.close()
