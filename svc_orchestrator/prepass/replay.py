"""Replay records of prepass runs, and the comparison of a replayed run with the stored one.

A run that computed its candidates (not a cache hit) leaves one record keyed by its run_id, written in
the cache entry's own transaction: the request as the caller sent it without image bytes (the image is
named by its sha256 and by its dataset image name or the client's ImageRef), the resolved config, the
model versions, the glossary / labelmap hashes, the pipeline version and the candidates with their
digest. Replay re-resolves the stored request, refuses when any of those inputs differ now (naming
which), and otherwise runs the prepass again without the cache and compares.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

from svc_orchestrator.prepass.cache import CacheMeta
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.store.base import ReplayRow, Store
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.images import sha256_hex

if TYPE_CHECKING:  # the runner imports this module for its records
    from svc_orchestrator.browse import ImageBrowser
    from svc_orchestrator.prepass.runner import PrepassRunner


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


# --- what changed since the run -----------------------------------------------------------------

def _short(value: str) -> str:
    return value[:12] if value else "none"


def model_changes(stored: dict[str, str], now: dict[str, str]) -> list[str]:
    """Each model that differs between the stored run and the plan now: version, no longer used, newly used."""
    out = []
    for model_id in sorted(set(stored) | set(now)):
        before, after = stored.get(model_id), now.get(model_id)
        if before == after:
            continue
        if after is None:
            out.append(f"{model_id} (version {_short(before or '')}) is no longer used")
        elif before is None:
            out.append(f"{model_id} (version {_short(after)}) is used now")
        else:
            out.append(f"{model_id} version {_short(before)} is {_short(after)} now")
    return out


def config_changes(stored: dict, now: dict) -> list[str]:
    return [f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(stored) | set(now))
            if stored.get(k) != now.get(k)]


def input_changes(row: ReplayRow, ctx: PrepassContext, meta: CacheMeta) -> dict[str, str]:
    """{what: why} for every input of the stored run that differs now (empty: replayable)."""
    out: dict[str, str] = {}
    if row.pipeline_version != meta.pipeline_version:
        out["pipeline"] = f"pipeline version {row.pipeline_version} is {meta.pipeline_version} now"
    if row.labelmap_hash != meta.labelmap_hash:
        out["labelmap"] = (f"the labelmap of dataset {row.dataset_id!r} changed (hash {_short(row.labelmap_hash)} "
                           f"is {_short(meta.labelmap_hash)} now)")
    if row.glossary_hash != meta.glossary_hash:
        request = ctx.request
        source = (f"glossary {request.glossary_name!r}" if request.glossary_name
                  else f"the glossary of recipe {request.recipe_id!r}" if request.recipe_id
                  else f"the glossary of dataset {row.dataset_id!r}")
        out["glossary"] = (f"{source} changed (hash {_short(row.glossary_hash)} is {_short(meta.glossary_hash)} "
                           "now)")
    if row.config_hash != meta.config_hash:
        diff = config_changes(row.config, meta.config)
        out["config"] = "the resolved config changed" + (f" ({'; '.join(diff)})" if diff else "")
    models = model_changes(row.versions, meta.versions)
    if models:
        out["models"] = "models changed: " + "; ".join(models)
    return out


# --- comparing candidates -----------------------------------------------------------------------

_BOOKKEEPING = frozenset({"index", "atom_ids"})  # shift when any earlier candidate or atom appears or goes


def _xyxy(c: pb.Candidate) -> tuple[float, float, float, float]:
    return c.box.x1, c.box.y1, c.box.x2, c.box.y2


def _iou(a: pb.Candidate, b: pb.Candidate) -> float:
    ax1, ay1, ax2, ay2 = _xyxy(a)
    bx1, by1, bx2, by2 = _xyxy(b)
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else float(_xyxy(a) == _xyxy(b))


def _differing_fields(a: pb.Candidate, b: pb.Candidate) -> list[str]:
    return [f.name for f in pb.Candidate.DESCRIPTOR.fields
            if getattr(a, f.name) != getattr(b, f.name) or (f.has_presence and a.HasField(f.name) != b.HasField(f.name))]


def _kind(fields: list[str]) -> pb.ReplayDifferenceKind:
    if "box" in fields:
        return pb.REPLAY_DIFFERENCE_KIND_BOX
    if "score" in fields:
        return pb.REPLAY_DIFFERENCE_KIND_SCORE
    return pb.REPLAY_DIFFERENCE_KIND_OTHER


def diff_candidates(stored: Sequence[pb.Candidate], replayed: Sequence[pb.Candidate]) -> list[pb.ReplayDifference]:
    """Every difference: stored candidates paired with replayed ones of the same label by best box overlap
    (IoU >= 0.5, in stored order); a pair that differs only in index / atom ids (which shift after any
    missing or extra candidate or atom) is reported only when nothing else differs anywhere."""
    free = list(range(len(replayed)))
    out: list[pb.ReplayDifference] = []
    for s in stored:
        best, best_iou = -1, 0.5
        for j in free:
            r = replayed[j]
            if r.label == s.label and (v := _iou(s, r)) >= best_iou and (best < 0 or v > best_iou):
                best, best_iou = j, v
        if best < 0:
            out.append(pb.ReplayDifference(kind=pb.REPLAY_DIFFERENCE_KIND_MISSING, stored=s))
            continue
        free.remove(best)
        fields = _differing_fields(s, replayed[best])
        if fields:
            out.append(pb.ReplayDifference(kind=_kind(fields), stored=s, replayed=replayed[best], fields=fields))
    out.extend(pb.ReplayDifference(kind=pb.REPLAY_DIFFERENCE_KIND_EXTRA, replayed=replayed[j]) for j in free)
    substantive = [d for d in out if not d.fields or not set(d.fields) <= _BOOKKEEPING]
    return substantive or out


# --- the replay ---------------------------------------------------------------------------------

DEFAULT_DIFFERENCES = 20


def _changed(what: dict[str, str]) -> errors.TatorError:
    return errors.failed_precondition("REPLAY_INPUT_CHANGED", "cannot replay: " + "; ".join(what.values()),
                                      changed=",".join(what))


def _context(runner: PrepassRunner, request: pb.PrepassRequest) -> PrepassContext:
    """The stored request resolved again. A dataset, glossary or recipe that is gone, or a config the
    services' limits refuse now, is an input that changed (FAILED_PRECONDITION), not a bad request."""
    probes = (("dataset", lambda: runner.datasets.get(request.dataset_id)),
              ("glossary", lambda: request.glossary_name and runner.glossary_lookup(request.glossary_name)),
              ("recipe", lambda: request.recipe_id and runner.recipe_lookup(request.recipe_id)))
    for what, probe in probes:
        try:
            probe()
        except errors.TatorError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND:
                raise
            raise _changed({what: exc.message}) from exc
    try:
        return runner.context(request.dataset_id, request.config if request.HasField("config") else None,
                              glossary_name=request.glossary_name, recipe_id=request.recipe_id)
    except errors.TatorError as exc:
        if exc.code != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        raise _changed({"config": f"the stored config is refused now: {exc.message}"}) from exc


async def _image(row: ReplayRow, request: pb.PrepassRequest, ctx: PrepassContext, browser: ImageBrowser,
                 sent: bytes) -> tuple[bytes, str]:
    """The bytes the stored run ran on and their name: the dataset image again, else the caller's bytes,
    else a dataset image with the same hash."""
    if request.WhichOneof("source") == "dataset_image":
        try:
            item = ctx.dataset.item(request.dataset_image)
        except errors.TatorError as exc:
            raise _changed({"image": f"dataset {row.dataset_id!r} has no image {request.dataset_image!r} "
                                     "any more"}) from exc
        data = await asyncio.to_thread(item.path.read_bytes)
        if sha256_hex(data) != row.image_sha256:
            raise _changed({"image": f"dataset image {item.name!r} changed (sha256 {_short(row.image_sha256)} is "
                                     f"{_short(sha256_hex(data))} now)"})
        return data, item.name
    if sent:
        if sha256_hex(sent) != row.image_sha256:
            raise errors.invalid_argument("image_data", f"bytes hash to {sha256_hex(sent)}, the run's image is "
                                          f"{row.image_sha256}", "IMAGE_SHA_MISMATCH")
        return sent, ""
    try:
        item = await asyncio.to_thread(browser.find, ctx.dataset, row.image_sha256)
    except errors.TatorError as exc:
        raise errors.failed_precondition(
            "IMAGE_NOT_CACHED", f"the run's image {row.image_sha256} was sent by the client and the orchestrator "
            "keeps only its hash: send its bytes in ReplayRequest.image_data", sha256=row.image_sha256) from exc
    return await asyncio.to_thread(item.path.read_bytes), ""


async def replay(runner: PrepassRunner, store: Store, browser: ImageBrowser,
                 request: pb.ReplayRequest) -> pb.ReplayResponse:
    row = await asyncio.to_thread(store.replay_get, request.run_id)
    if row is None:
        raise errors.not_found("NOT_FOUND", f"no recorded prepass run {request.run_id}", run_id=request.run_id)
    stored_request = pb.PrepassRequest.FromString(row.request)
    ctx = await asyncio.to_thread(_context, runner, stored_request)
    try:
        plan, meta = await runner.plan(ctx)
    except errors.TatorError as exc:  # a model the stored config names is gone
        if exc.reason != "MODEL_NOT_FOUND":
            raise
        raise _changed({"models": exc.message}) from exc
    changes = input_changes(row, ctx, meta)
    if changes:
        raise _changed(changes)
    data, name = await _image(row, stored_request, ctx, browser, request.image_data)
    result = await runner.recompute(ctx, plan, meta, data=data, sha256=row.image_sha256, name=name)
    before = pb.PrepassResult.FromString(row.candidates).candidates
    digest = candidates_digest(result.candidates)
    diffs = diff_candidates(before, result.candidates) if digest != row.candidates_digest else []
    out = pb.ReplayResponse(
        identical=digest == row.candidates_digest, run_id=row.run_id, new_run_id=result.run_id,
        stored_candidates=len(before), replayed_candidates=len(result.candidates), difference_count=len(diffs),
        differences=diffs[:request.max_differences or DEFAULT_DIFFERENCES], stored_digest=row.candidates_digest,
        replayed_digest=digest, image_sha256=row.image_sha256, image_name=row.image_name, dataset_id=row.dataset_id,
        stages=result.stages)
    out.stored_time.FromMicroseconds(round(row.created_at * 1e6))
    return out
