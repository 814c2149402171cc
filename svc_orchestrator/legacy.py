"""The state files of orchestrators from before the store, brought into it at the first start.

Before the store, a state dir held `jobs.sqlite` (one `jobs` table) and `prepass_cache.sqlite`
(`meta` and `entries` tables, the same columns the store's cache tables have less the write count).
Without this, upgrading would leave every cached prepass behind, so the first prepass after the
upgrade would recompute what was already computed. The cache rows are copied as they are (a row's
key already names its image, config, model versions, glossary, labelmap and pipeline version, so an
entry of an older pipeline is simply never hit), in batches, so memory stays bounded whatever the
cache's size. The jobs keep their history: a job the old process left queued or running is
INTERRUPTED (that process is gone), and an old free-form result that is not a JobResult is dropped
(its message stays).

Each file is imported once per replica (a marker row in the store); the files are read only, never
changed or deleted.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from svc_orchestrator.convert.jobs import result_readable
from svc_orchestrator.job_types import Job, JobState
from svc_orchestrator.store import Store
from svc_orchestrator.store.base import ACTIVE, JOB_COLUMNS, job_from_row

log = logging.getLogger("tator.orchestrator.legacy")
JOBS_FILE, CACHE_FILE = "jobs.sqlite", "prepass_cache.sqlite"
MARKER_KIND = "imported-files"
BATCH = 500  # entries per transaction: a few MB of payloads at most


def _open_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30)


def _import_cache(store: Store, path: Path) -> int:
    db = _open_ro(path)
    try:
        metas = db.execute("SELECT meta_key, glossary_text, glossary_hash, labelmap_json, labelmap_hash, config_json, "
                           "config_hash, versions_json, pipeline_version, created_at FROM meta").fetchall()
        store.cache_import(metas, [])
        added, last = 0, ""
        while True:
            rows = db.execute("SELECT key, meta_key, image_sha256, image_name, dataset_id, created_at, payload "
                              "FROM entries WHERE key > ? ORDER BY key LIMIT ?", (last, BATCH)).fetchall()
            if not rows:
                return added
            added += store.cache_import([], [(*r[:6], bytes(r[6])) for r in rows])
            last = rows[-1][0]
    finally:
        db.close()


def _old_job(row: tuple, now: float) -> Job:
    values = dict(zip(JOB_COLUMNS, row))
    if values["state"] in ACTIVE:
        values.update(state=JobState.INTERRUPTED, eta_s=0.0, updated_at=now,
                      error="the orchestrator stopped while this job was queued or running")
    if not result_readable(values["result_json"] or "{}"):
        values["result_json"] = ""  # an old free-form summary: not a JobResult
    return job_from_row([values[c] for c in JOB_COLUMNS])


def _import_jobs(store: Store, path: Path) -> int:
    db = _open_ro(path)
    try:
        rows = db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs ORDER BY created_at").fetchall()
    finally:
        db.close()
    added, now = 0, time.time()
    for row in rows:
        if store.job(row[0]) is not None:
            continue
        store.insert_job(_old_job(row, now), owner="", lease_until=0.0)
        added += 1
    return added


def import_legacy(store: Store, state_dir: Path, replica_id: str) -> dict[str, int]:
    """Jobs and cache entries of the old files under `state_dir` not imported before; counts per file."""
    state_dir = Path(state_dir).resolve()
    out: dict[str, int] = {}
    for name, run in ((CACHE_FILE, _import_cache), (JOBS_FILE, _import_jobs)):
        path = state_dir / name
        marker = f"{replica_id}:{path}"
        if not path.is_file() or store.doc_get(MARKER_KIND, marker) is not None:
            continue
        try:
            out[name] = run(store, path)
        except sqlite3.DatabaseError as exc:  # not a database, or not the old layout: leave it be
            log.warning("not importing %s: %s", path, exc)
            continue
        store.doc_put(MARKER_KIND, marker, json.dumps({"rows": out[name], "at": time.time()}), time.time())
        log.info("imported %d rows of %s into the store", out[name], path)
    return out
