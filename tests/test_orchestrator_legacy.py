"""A state dir from before the store (`jobs.sqlite`, `prepass_cache.sqlite`) is imported at the first
start, on both stores, so an upgraded orchestrator's cache is not cold. The old files are built here
from the schema those versions created (copied from them: it is the input format under test)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from svc_orchestrator.convert.jobs import job_pb
from svc_orchestrator.legacy import CACHE_FILE, JOBS_FILE, import_legacy
from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.store import open_store
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import canonical_json
from tator_core.labels import glossary_hash

OLD_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, dataset_id TEXT NOT NULL,
  done INTEGER NOT NULL, total INTEGER NOT NULL, eta_s REAL NOT NULL, message TEXT NOT NULL,
  error TEXT NOT NULL, failed_stage TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
  result_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""
OLD_CACHE = """
CREATE TABLE IF NOT EXISTS meta (
  meta_key TEXT PRIMARY KEY, glossary_text TEXT NOT NULL, glossary_hash TEXT NOT NULL,
  labelmap_json TEXT NOT NULL, labelmap_hash TEXT NOT NULL, config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL, versions_json TEXT NOT NULL, pipeline_version TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY, meta_key TEXT NOT NULL REFERENCES meta(meta_key), image_sha256 TEXT NOT NULL,
  image_name TEXT NOT NULL, dataset_id TEXT NOT NULL, created_at REAL NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_meta ON entries(meta_key);
"""
META = CacheMeta(glossary_text="circle: disc", glossary_hash=glossary_hash("circle: disc"), labelmap=("circle",),
                 labelmap_hash="lm", config={"a": 1}, config_hash="cfg", versions={"yolo-synth": "v1"})


def _result(i: int) -> pb.PrepassResult:
    out = pb.PrepassResult(image_sha256=f"sha{i}", image_name=f"{i:06d}.png", width=64, height=48,
                           config_hash="cfg")
    out.candidates.add(label="circle", score=0.5 + i / 1000)
    return out


def _old_state(state, images: int):
    """The two files an orchestrator of the old layout left, written as it wrote them (WAL mode)."""
    state.mkdir(parents=True)
    cache = sqlite3.connect(state / CACHE_FILE, isolation_level=None)
    cache.execute("PRAGMA journal_mode=WAL")
    cache.executescript(OLD_CACHE)
    cache.execute("INSERT INTO meta VALUES (?,?,?,?,?,?,?,?,?,?)",
                  (META.meta_key, META.glossary_text, META.glossary_hash, json.dumps(list(META.labelmap)),
                   META.labelmap_hash, canonical_json(META.config), META.config_hash, canonical_json(META.versions),
                   META.pipeline_version, 1.0))
    for i in range(images):
        cache.execute("INSERT INTO entries VALUES (?,?,?,?,?,?,?)",
                      (META.key(f"sha{i}"), META.meta_key, f"sha{i}", f"{i:06d}.png", "synth", 2.0,
                       _result(i).SerializeToString(deterministic=True)))
    cache.close()
    jobs = sqlite3.connect(state / JOBS_FILE, isolation_level=None)
    jobs.executescript(OLD_JOBS)
    done = json.dumps({"prepass": {"images": 3, "configHash": "cfg"}})  # a JobResult in protobuf JSON
    rows = [("job-old1", pb.JOB_KIND_PREPASS, pb.JOB_STATE_SUCCEEDED, "synth", 3, 3, 0.0, "done", "", "", 10.0, 20.0,
             done),
            ("job-old2", pb.JOB_KIND_PREPASS, pb.JOB_STATE_SUCCEEDED, "synth", 3, 3, 0.0, "done", "", "", 11.0, 21.0,
             '{"images": 3, "hits": 0}'),  # an older free-form summary
            ("job-old3", pb.JOB_KIND_PREPASS, pb.JOB_STATE_RUNNING, "synth", 1, 3, 5.0, "running", "", "", 12.0, 22.0,
             "")]
    jobs.executemany("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    jobs.close()


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path / "new")
    yield s
    s.close()


def test_old_cache_and_jobs_are_imported_once(store, tmp_path, monkeypatch):
    import svc_orchestrator.legacy as legacy

    monkeypatch.setattr(legacy, "BATCH", 4)  # several batches from 10 entries
    state = tmp_path / "state"
    _old_state(state, 10)
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.suffix == ".sqlite"}
    cache = PrepassCache(store)
    cache.put(META.key("sha0"), META, _result(0), "synth")  # already recomputed here: kept, not doubled
    assert import_legacy(store, state, "r1") == {CACHE_FILE: 9, JOBS_FILE: 3}
    assert cache.count() == 10 and store.cache_stats() == {"entries": 10, "writes": 10}
    for i in range(10):
        assert cache.get(META.key(f"sha{i}")) == _result(i)
    assert cache.meta_for(META.key("sha3"))["glossary_text"] == "circle: disc"
    jobs = {j.id: job_pb(j) for j in store.list_jobs(10)}
    assert jobs["job-old1"].state == pb.JOB_STATE_SUCCEEDED and jobs["job-old1"].result.prepass.images == 3
    assert jobs["job-old2"].state == pb.JOB_STATE_SUCCEEDED and not jobs["job-old2"].HasField("result")
    assert jobs["job-old3"].state == pb.JOB_STATE_INTERRUPTED and jobs["job-old3"].done == 1
    assert "stopped" in jobs["job-old3"].error
    assert jobs["job-old1"].create_time.ToMicroseconds() == 10_000_000  # the old times are kept
    assert store.events_after("job-old3", 0)[-1][1].state == pb.JOB_STATE_INTERRUPTED  # watchable
    # once: a later start imports nothing, and the old files are untouched
    assert import_legacy(store, state, "r1") == {}
    assert {p.name: p.read_bytes() for p in state.iterdir() if p.suffix == ".sqlite"} == before


def test_a_file_that_is_not_an_old_database_is_left_alone(store, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / CACHE_FILE).write_bytes(b"not a database at all" * 100)
    assert import_legacy(store, state, "r1") == {}
    assert store.cache_stats()["entries"] == 0
    assert import_legacy(store, tmp_path / "empty", "r1") == {}


async def test_an_upgraded_orchestrator_finds_its_old_cache(store_url, tmp_path):
    from svc_orchestrator.app import Orchestrator
    from svc_orchestrator.settings import OrchestratorSettings

    state = tmp_path / "state"
    _old_state(state, 3)
    nowhere = "127.0.0.1:1"
    app = Orchestrator(OrchestratorSettings(data_root=tmp_path / "data", state_dir=state, store_url=store_url,
                                            detector_address=nowhere, sam3_address=nowhere, qwen_address=nowhere,
                                            classifier_address=nowhere, replica_id="a"))
    try:
        assert app.cache.get(META.key("sha2")) == _result(2)
        assert app.jobs.get("job-old3").state == pb.JOB_STATE_INTERRUPTED
        assert time.time() - job_pb(app.jobs.get("job-old3")).update_time.seconds < 600
    finally:
        await app.close()
