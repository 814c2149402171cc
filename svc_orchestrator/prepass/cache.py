"""Prepass cache: entries in the orchestrator's store (SQLite or PostgreSQL), one transaction per entry.

Key = stable_hash(image sha, config_hash, version of every model used, glossary hash, labelmap
hash, PIPELINE_VERSION, fingerprint of the PrepassResult schema): a new version of any model, of
the pipeline or of the stored message never answers from an older result. An entry is written only for a finished prepass (a failed image is never cached as
an empty success), its meta record (glossary text and
hash, labelmap, resolved config, versions) is written once in the same transaction and never
rewritten, and a crash mid-write leaves the previous state (the database's atomic commit).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from svc_orchestrator.store import SQLITE_FILE
from svc_orchestrator.store.base import CacheRow, ReplayRow, Store
from svc_orchestrator.store.sql import META_SQL, meta_dict
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import stable_hash
from tator_core.version import PIPELINE_VERSION, schema_fingerprint

#: The SQLite store file under the orchestrator's state dir, which holds the cache by default.
CACHE_FILE = SQLITE_FILE
#: The stored PrepassResult's schema: an entry written before a contract change is a miss, not a result
#: parsed with fields silently gone (e.g. detection sources, which the calibration's features read).
RESULT_SCHEMA = schema_fingerprint(pb.PrepassResult.DESCRIPTOR)


@dataclass(frozen=True)
class CacheMeta:
    """Everything a cache key is made of except the image."""

    glossary_text: str
    glossary_hash: str
    labelmap: tuple[str, ...]
    labelmap_hash: str
    config: dict
    config_hash: str
    versions: dict[str, str]
    pipeline_version: str = PIPELINE_VERSION
    result_schema: str = RESULT_SCHEMA

    @property
    def meta_key(self) -> str:
        return stable_hash({"config": self.config_hash, "models": self.versions, "glossary": self.glossary_hash,
                            "labelmap": self.labelmap_hash, "pipeline": self.pipeline_version,
                            "schema": self.result_schema})

    def key(self, image_sha256: str) -> str:
        return stable_hash({"image": image_sha256, "config": self.config_hash, "models": self.versions,
                            "glossary": self.glossary_hash, "labelmap": self.labelmap_hash,
                            "pipeline": self.pipeline_version, "schema": self.result_schema})


def read_meta(path: Path, key: str) -> dict | None:
    """The meta record of one entry in a SQLite store file, read from another process without writing."""
    db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(META_SQL, (key,)).fetchone()
    finally:
        db.close()
    return meta_dict(row) if row else None


class PrepassCache:
    """The prepass cache over the orchestrator's store; callers on the event loop use the `a*`
    coroutines (the store blocks, so they run off the loop)."""

    def __init__(self, store: Store | Path) -> None:
        # A path opens (and `close` closes) a SQLite store of its own; a Store is shared and not closed.
        self._owned = not isinstance(store, Store)
        if not isinstance(store, Store):
            from svc_orchestrator.store.sqlite import SqliteStore

            store = SqliteStore(Path(store))
        self.store: Store = store

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def get(self, key: str) -> pb.PrepassResult | None:
        payload = self.store.cache_get(key)
        if payload is None:
            return None
        result = pb.PrepassResult()
        result.ParseFromString(payload)
        return result

    def put(self, key: str, meta: CacheMeta, result: pb.PrepassResult, dataset_id: str,
            replay: ReplayRow | None = None) -> None:
        """Meta (first time), entry and the run's replay record in one transaction: all land or none does."""
        m = {"glossary_text": meta.glossary_text, "glossary_hash": meta.glossary_hash, "labelmap": meta.labelmap,
             "labelmap_hash": meta.labelmap_hash, "config": meta.config, "config_hash": meta.config_hash,
             "versions": meta.versions, "pipeline_version": meta.pipeline_version}
        self.store.cache_put(CacheRow(key, meta.meta_key, m, result.image_sha256, result.image_name, dataset_id,
                                      result.SerializeToString(deterministic=True)), time.time(), replay)

    def meta_for(self, key: str) -> dict | None:
        """The meta record behind an entry (glossary text/hash, labelmap, config, versions)."""
        return self.store.cache_meta(key)

    def count(self) -> int:
        return self.store.cache_stats()["entries"]

    def keys(self) -> list[str]:
        return self.store.cache_keys()

    async def aget(self, key: str) -> pb.PrepassResult | None:
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, meta: CacheMeta, result: pb.PrepassResult, dataset_id: str,
                   replay: ReplayRow | None = None) -> None:
        await asyncio.to_thread(self.put, key, meta, result, dataset_id, replay)
