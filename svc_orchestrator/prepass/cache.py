"""Prepass cache: one SQLite file under the state dir (WAL), one transaction per entry.

Key = stable_hash(image sha, config_hash, version of every model used, glossary hash, labelmap
hash, PIPELINE_VERSION). The old cache missed SAM3/Qwen versions and had no pipeline version
(spec §8.7), rewrote its meta with another schema, and cached failed images as empty successes
(§8.6). Here an entry is written only for a finished prepass, its meta record (glossary text and
hash, labelmap, resolved config, versions) is written once in the same transaction and never
rewritten, and a crash mid-write leaves the previous state (SQLite's atomic commit).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import canonical_json, stable_hash
from tator_core.version import PIPELINE_VERSION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
  meta_key TEXT PRIMARY KEY,
  glossary_text TEXT NOT NULL,
  glossary_hash TEXT NOT NULL,
  labelmap_json TEXT NOT NULL,
  labelmap_hash TEXT NOT NULL,
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  versions_json TEXT NOT NULL,
  pipeline_version TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY,
  meta_key TEXT NOT NULL REFERENCES meta(meta_key),
  image_sha256 TEXT NOT NULL,
  image_name TEXT NOT NULL,
  dataset_id TEXT NOT NULL,
  created_at REAL NOT NULL,
  payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_meta ON entries(meta_key);
"""


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

    @property
    def meta_key(self) -> str:
        return stable_hash({"config": self.config_hash, "models": self.versions, "glossary": self.glossary_hash,
                            "labelmap": self.labelmap_hash, "pipeline": self.pipeline_version})

    def key(self, image_sha256: str) -> str:
        return stable_hash({"image": image_sha256, "config": self.config_hash, "models": self.versions,
                            "glossary": self.glossary_hash, "labelmap": self.labelmap_hash,
                            "pipeline": self.pipeline_version})


_META_SQL = ("SELECT m.glossary_text, m.glossary_hash, m.labelmap_json, m.labelmap_hash, m.config_json, "
             "m.config_hash, m.versions_json, m.pipeline_version, m.created_at FROM entries e "
             "JOIN meta m ON m.meta_key = e.meta_key WHERE e.key = ?")


def _meta_row(db: sqlite3.Connection, key: str) -> dict | None:
    row = db.execute(_META_SQL, (key,)).fetchone()
    if row is None:
        return None
    return {"glossary_text": row[0], "glossary_hash": row[1], "labelmap": json.loads(row[2]),
            "labelmap_hash": row[3], "config": json.loads(row[4]), "config_hash": row[5],
            "versions": json.loads(row[6]), "pipeline_version": row[7], "created_at": row[8]}


#: The cache database under the orchestrator's state dir.
CACHE_FILE = "prepass_cache.sqlite"


def read_meta(path: Path, key: str) -> dict | None:
    """The meta record of one entry, read from another process without writing (mode=ro)."""
    db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=10)
    try:
        return _meta_row(db, key)
    finally:
        db.close()


class PrepassCache:
    """Thread-safe; callers on the event loop use the `a*` coroutines (work off the loop)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, key: str) -> pb.PrepassResult | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        result = pb.PrepassResult()
        result.ParseFromString(row[0])
        return result

    def put(self, key: str, meta: CacheMeta, result: pb.PrepassResult, dataset_id: str) -> None:
        """Meta (first time) and entry in one transaction: both land or neither does."""
        payload = result.SerializeToString(deterministic=True)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (meta.meta_key, meta.glossary_text, meta.glossary_hash, json.dumps(list(meta.labelmap)),
                     meta.labelmap_hash, canonical_json(meta.config), meta.config_hash,
                     canonical_json(meta.versions), meta.pipeline_version, now))
                self._db.execute(
                    "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?)",
                    (key, meta.meta_key, result.image_sha256, result.image_name, dataset_id, now, payload))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def meta_for(self, key: str) -> dict | None:
        """The meta record behind an entry (glossary text/hash, labelmap, config, versions)."""
        with self._lock:
            return _meta_row(self._db, key)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def keys(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT key FROM entries ORDER BY created_at")]

    async def aget(self, key: str) -> pb.PrepassResult | None:
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, meta: CacheMeta, result: pb.PrepassResult, dataset_id: str) -> None:
        await asyncio.to_thread(self.put, key, meta, result, dataset_id)
