"""Replay records in the orchestrator's store, the same tests over both implementations (SQLite file,
real PostgreSQL server from the `pg_server` fixture): written with the cache entry in one transaction,
read back field for field, replaced when the same run is computed again, never holding image bytes."""

from __future__ import annotations

import dataclasses

import pytest

from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.prepass.replay import candidates_digest, replay_record
from svc_orchestrator.store import open_store
from tator_core.client import image_ref
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


META = CacheMeta(glossary_text="circle: disc", glossary_hash="g1", labelmap=("circle", "square"), labelmap_hash="lm",
                 config={"detector_conf": 0.25}, config_hash="cfg", versions={"yolo-synth": "v1", "sam3-tiny": "s1"})
IMAGE = b"\x89PNG not really an image, only bytes to hash"


def _result(run_id: str, score: float = 0.5) -> pb.PrepassResult:
    res = pb.PrepassResult(image_sha256=image_ref(IMAGE).sha256, image_name="", run_id=run_id,
                           cache_key=META.key(image_ref(IMAGE).sha256))
    res.candidates.add(index=0, label="circle", score=score, box={"x1": 1, "y1": 2, "x2": 30, "y2": 40})
    res.atoms.add(atom_id="a0000001")
    return res


def test_replay_record_lands_with_its_cache_entry_and_reads_back(store):
    cache = PrepassCache(store)
    request = pb.PrepassRequest(image=image_ref(IMAGE), dataset_id="ds", glossary_name="alt", refresh=True,
                                config=pb.PrepassConfig(detector_conf=0.25))
    res = _result("run-1")
    cache.put(res.cache_key, META, res, "ds", replay_record(res, request, META, "ds"))
    row = store.replay_get("run-1")
    assert row is not None and store.replay_get("run-2") is None
    assert (row.cache_key, row.image_sha256, row.dataset_id, row.image_name) == \
        (res.cache_key, res.image_sha256, "ds", "")
    assert (row.config, row.config_hash, row.versions) == (META.config, "cfg", META.versions)
    assert (row.glossary_hash, row.labelmap_hash, row.pipeline_version) == ("g1", "lm", META.pipeline_version)
    # the request as sent, minus the image bytes: the client's ref keeps only the hash
    stored = pb.PrepassRequest.FromString(row.request)
    assert not stored.image.HasField("data") and stored.image.sha256 == res.image_sha256
    assert IMAGE not in row.request
    assert (stored.dataset_id, stored.glossary_name, stored.refresh) == ("ds", "alt", True)
    assert stored.config.detector_conf == pytest.approx(0.25)
    assert request.image.data == IMAGE  # the caller's message is not changed
    # the candidates, without the atoms, and their digest
    kept = pb.PrepassResult.FromString(row.candidates)
    assert list(kept.candidates) == list(res.candidates) and not kept.atoms
    assert row.candidates_digest == candidates_digest(res.candidates) and row.created_at > 0
    assert store.replay_count() == 1


def test_a_run_computed_again_replaces_its_record_and_a_failed_write_leaves_none(store):
    cache = PrepassCache(store)
    request = pb.PrepassRequest(dataset_id="ds", dataset_image="val/images/a.png")
    first, second = _result("run-1", 0.5), _result("run-1", 0.75)
    cache.put(first.cache_key, META, first, "ds", replay_record(first, request, META, "ds"))
    cache.put(second.cache_key, META, second, "ds", replay_record(second, request, META, "ds"))
    assert store.replay_count() == 1
    assert store.replay_get("run-1").candidates_digest == candidates_digest(second.candidates)
    assert candidates_digest(first.candidates) != candidates_digest(second.candidates)
    # a replay record that fails to go in (NOT NULL) takes the cache entry and meta of its write with it
    third = _result("run-3")
    other = CacheMeta(**{**META.__dict__, "config_hash": "other"})
    broken = dataclasses.replace(replay_record(third, request, other, "ds"), candidates_digest=None)
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError or psycopg.errors.NotNullViolation
        cache.put("k3", other, third, "ds", broken)
    assert store.replay_get("run-3") is None and store.replay_count() == 1
    assert cache.get("k3") is None and cache.count() == 1
    with store.read() as t:
        assert t.q("SELECT COUNT(*) FROM meta").fetchone()[0] == 1
