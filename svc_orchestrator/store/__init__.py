"""Orchestrator state behind one interface: SQLite (default) or PostgreSQL (`postgresql://` URL)."""

from __future__ import annotations

from pathlib import Path

from svc_orchestrator.store.base import CacheRow, JobRecord, Store, WorkUnit

__all__ = ["CacheRow", "JobRecord", "Store", "WorkUnit", "open_store"]
SQLITE_FILE = "orchestrator.sqlite"


def open_store(url: str, state_dir: Path) -> Store:
    """`postgresql://…` (or `postgres://…`) opens PostgreSQL; empty opens `<state_dir>/orchestrator.sqlite`;
    `sqlite:///path` opens that file."""
    if url.startswith(("postgresql://", "postgres://")):
        from svc_orchestrator.store.postgres import PostgresStore

        return PostgresStore(url)
    from svc_orchestrator.store.sqlite import SqliteStore

    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url[len("sqlite:///") - 1:]))
    if url:
        raise ValueError(f"unsupported store URL {url!r}: use postgresql://… or sqlite:///path")
    return SqliteStore(Path(state_dir) / SQLITE_FILE)
