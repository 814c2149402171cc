"""Replay records of prepass runs, and the comparison of a replayed run with the stored one.

A run that computed its candidates (not a cache hit) leaves one record keyed by its run_id, written in
the cache entry's own transaction: the request as the caller sent it without image bytes (the image is
named by its sha256 and by its dataset image name or the client's ImageRef), the resolved config, the
model versions, the glossary / labelmap hashes, the pipeline version and the candidates with their
digest. Replay re-resolves the stored request, refuses when any of those inputs differ now (naming
which), and otherwise runs the prepass again without the cache and compares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from svc_orchestrator.prepass.cache import CacheMeta
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.store.base import ReplayRow
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


def candidates_digest(candidates: Sequence[pb.Candidate]) -> str:
    """SHA-256 over the candidates' deterministic serialization: equal exactly when every field of every
    candidate (box, label, scores, sources, atom ids, classifier output) is equal, in order."""
    blob = pb.PrepassResult(candidates=candidates).SerializeToString(deterministic=True)
    return hashlib.sha256(blob).hexdigest()


def sent_request(ctx: PrepassContext, *, name: str, sha256: str) -> pb.PrepassRequest:
    """The request a job image or a calibration image stands for: the context's fields plus the image, by
    dataset name when it has one, else by hash."""
    request = pb.PrepassRequest()
    request.CopyFrom(ctx.request)
    if name:
        request.dataset_image = name
    else:
        request.image.sha256 = sha256
    return request


def replay_record(result: pb.PrepassResult, request: pb.PrepassRequest, meta: CacheMeta,
                  dataset_id: str) -> ReplayRow:
    stored = pb.PrepassRequest()
    stored.CopyFrom(request)
    if stored.HasField("image"):  # the bytes are the client's: keep their hash only
        stored.image.ClearField("data")
        stored.image.sha256 = result.image_sha256
    return ReplayRow(
        run_id=result.run_id, cache_key=result.cache_key, image_sha256=result.image_sha256, dataset_id=dataset_id,
        image_name=result.image_name, request=stored.SerializeToString(deterministic=True), config=meta.config,
        config_hash=meta.config_hash, versions=dict(meta.versions), glossary_hash=meta.glossary_hash,
        labelmap_hash=meta.labelmap_hash, pipeline_version=meta.pipeline_version,
        candidates_digest=candidates_digest(result.candidates),
        candidates=pb.PrepassResult(candidates=result.candidates).SerializeToString(deterministic=True))
