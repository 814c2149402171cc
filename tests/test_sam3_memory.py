"""One SAM3 call's memory is bounded by settings, whatever its prompt count.

A SegmentText with 64 labels x 22 prompts and score_threshold 0 finds every query of every prompt run
(1,408 runs x 20 queries of the tiny model = 28,160 raw detections), each with its mask probabilities
when masks are asked for. Before `max_raw_detections` all of them waited for the merge (measured on
the tiny model, 640x480 image, VmHWM growth of the call: +513 MB with masks, growing with the prompt
count; +223 MB at the default cap of 2,048 with 1,408 or 2,816 runs alike). The real model's masks are
288x288 fp16 (~166 KB each), which is how random requests of this shape reached gigabytes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import yaml

from svc_sam3 import segment, tiny
from svc_sam3.merge import BestRaw
from svc_sam3.models import make_repository
from svc_sam3.settings import Sam3Settings
from tator_core.geometry import Scored
from tator_core.images import DecodedImage
from tator_core.registry import Registry


def test_best_raw_keeps_the_best_in_arrival_order():
    keep = BestRaw(3)
    for i, score in enumerate([0.5, 0.1, 0.9, 0.5, 0.7, 0.05]):
        keep.add(Scored((0, 0, 1, 1), score, "a", i))
    # 0.1 and 0.05 go, and of the two 0.5s the later one (arrival 3): a tie keeps what came first.
    assert [(s.score, s.ref) for s in keep.items()] == [(0.5, 0), (0.9, 2), (0.7, 4)]
    assert keep.dropped == 3
    under = BestRaw(10)
    for i in range(4):
        under.add(Scored((0, 0, 1, 1), 0.3, "a", i))
    assert [s.ref for s in under.items()] == [0, 1, 2, 3] and under.dropped == 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("sam3_mem_models")
    (root / "registry.yaml").write_text(yaml.safe_dump({"models": tiny.build(root, seed=0)}))
    repo = make_repository(Registry.load(root / "registry.yaml", families={"sam3"}), "cpu")
    asyncio.run(repo.acquire("sam3-tiny"))
    yield repo
    asyncio.run(repo.close())


def _run(models, labels, *, cap: int, merge_iou: float = 0.0, masks: bool = True, size=(160, 120)):
    settings = Sam3Settings.load([], device="cpu", max_raw_detections=cap)
    engine = segment.Engine(settings, models)
    rng = np.random.default_rng(0)
    image = DecodedImage("ef" * 32, rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), 0)
    options = segment.Options(score_threshold=0.0, merge_iou=merge_iou, return_masks=masks)
    plan = segment.plan_text(models.entry("sam3-tiny"), image, labels, None, options, 100_000)
    return engine.run_text(plan)


def _key(d: segment.Detection):
    return d.label, d.box, d.score, d.prompts, d.mask.SerializeToString() if d.mask else b""


def test_a_capped_call_keeps_the_best_raw_detections_and_says_so(models):
    labels = [(f"label{i}", [f"w{i} p{j}" for j in range(4)]) for i in range(8)]  # 32 runs x 20 queries
    full = _run(models, labels, cap=100_000)
    assert full.stats.raw_detections == 640 and len(full.detections) == 640
    assert not [w for w in full.warnings if w.code == "raw_detections_capped"], "under the cap nothing changes"
    capped = _run(models, labels, cap=50)
    assert capped.stats.raw_detections == 640, "the stats still count what the model found"
    assert [_key(d) for d in capped.detections] == [_key(d) for d in full.detections[:50]]
    (warning,) = [w for w in capped.warnings if w.code == "raw_detections_capped"]
    assert warning.subject == "50" and warning.message.startswith("590 ")


def test_each_kept_mask_owns_its_memory(models):
    """A kept detection's mask must not pin its prompt's other masks (a view would keep all 20 alive)."""
    backend = models.loaded("sam3-tiny")
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    found = backend.decode(backend.embed_image(image), backend.embed_texts(["circle", "square"]), (160, 120),
                           score_threshold=0.0, with_masks=True)
    for dets in found:
        assert len(dets) == tiny.NUM_QUERIES
        for d in dets:
            assert d.mask_probs is not None
            assert d.mask_probs.untyped_storage().nbytes() == d.mask_probs.numel() * d.mask_probs.element_size()


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak")
def test_the_hostile_call_stays_under_its_bound(models):
    labels = [(f"label{i}", [f"w{i} p{j}" for j in range(22)]) for i in range(64)]
    _run(models, labels[:1], cap=64, size=(640, 480))  # load lazily-built pieces outside the measured call
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _hwm_kb()
    result = _run(models, labels, cap=64, size=(640, 480))
    grown_mb = (_hwm_kb() - before) / 1024
    assert result.stats.raw_detections == 1408 * tiny.NUM_QUERIES
    assert len(result.detections) <= 64
    # Without the cap this call grew the peak by ~513 MB (all 28,160 masks held until the merge); what
    # stays is the decode of one prompt batch, the vision embedding and the 64 kept masks.
    assert grown_mb < 300, f"peak grew by {grown_mb:.0f} MB"
