"""SAM3 service pieces without gRPC: tiny builder, tokenizer, window planning,
fan-out cap, prompt normalisation, caches, model states, settings flags."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from svc_sam3 import segment, tiny
from svc_sam3.models import FAMILY, make_repository
from svc_sam3.settings import Sam3Settings
from svc_sam3.windows import plan_contexts
from tator_core.errors import TatorError
from tator_core.gen.tator.common.v1 import common_pb2 as cpb
from tator_core.images import DecodedImage
from tator_core.registry import Registry

GLOSSARY_WORDS = ["circle", "square", "triangle", "disc", "ring", "box", "block", "tile", "wedge", "dot", "orb",
                  "delta", "quadrilateral", "visual"]


def image(w: int = 200, h: int = 100) -> DecodedImage:
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    return DecodedImage("ab" * 32, arr, 0)


def spec(**kw) -> cpb.WindowSpec:
    return cpb.WindowSpec(**kw)


def test_tokenizer_keeps_world_words_whole_and_still_reads_anything():
    tok = tiny.build_tokenizer()
    for word in GLOSSARY_WORDS:
        assert tok.tokenize(word) == [word + "</w>"], word
    assert tok.tokenize("Three-sided  Shape") == ["three</w>", "-</w>", "sided</w>", "shape</w>"]
    assert len(tok.tokenize("zebra")) == 5  # unknown words fall back to bytes
    ids = tok("circle")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_tiny_build_is_idempotent_and_loadable(tmp_path):
    entries = tiny.build(tmp_path, seed=0)
    assert entries == [{"id": "sam3-tiny", "family": "sam3", "path": "sam3-tiny", "default": True, "options": {}}]
    weights = tmp_path / "sam3-tiny" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert tiny.build(tmp_path, seed=0) == entries
    assert weights.stat().st_mtime_ns == stamp, "same config: not rewritten"
    for name in ("config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "sam3-tiny" / name).is_file()
    tiny.build(tmp_path, seed=1)
    assert weights.stat().st_mtime_ns != stamp, "another seed rebuilds"


def test_contexts_default_to_full_frame():
    ctxs, warnings = plan_contexts(None, 200, 100, runs_per_context=3, cap=10, fld="labels")
    assert [(c.name, c.box) for c in ctxs] == [("full", (0, 0, 200, 100))] and not warnings
    ctxs, _ = plan_contexts(spec(include_full=True), 200, 100, runs_per_context=3, cap=10, fld="labels")
    assert [c.name for c in ctxs] == ["full"]


def test_grid_tiles_and_explicit_windows():
    s = spec(grid=cpb.GridSpec(cols=2, rows=2, overlap=0.0), include_full=True,
             windows=[cpb.Window(name="mine", box=cpb.Box(x1=-10, y1=10, x2=50.4, y2=400))])
    ctxs, _ = plan_contexts(s, 200, 100, runs_per_context=1, cap=100, fld="labels")
    boxes = {c.name: c.box for c in ctxs}
    assert boxes == {"full": (0, 0, 200, 100), "mine": (0, 10, 50, 100), "A1": (0, 0, 100, 50),
                     "B1": (100, 0, 200, 50), "A2": (0, 50, 100, 100), "B2": (100, 50, 200, 100)}
    ctxs, _ = plan_contexts(spec(tiles=cpb.TilePlan(size=100, overlap=0.0)), 200, 100, runs_per_context=1, cap=100,
                            fld="labels")
    assert [c.box for c in ctxs] == [(0, 0, 100, 100), (100, 0, 200, 100)]
    ctxs, _ = plan_contexts(spec(tiles=cpb.TilePlan(size=100, include_full=True)), 200, 100, runs_per_context=1,
                            cap=100, fld="labels")
    assert ctxs[0].name == "full" and len(ctxs) == 4


def test_duplicate_contexts_run_once():
    ctxs, warnings = plan_contexts(spec(grid=cpb.GridSpec(cols=1, rows=1), include_full=True), 200, 100,
                                   runs_per_context=1, cap=10, fld="labels")
    assert [c.name for c in ctxs] == ["full"]
    assert [(w.code, w.subject, w.message) for w in warnings] == [("window_duplicate", "A1", "same pixels as full; ran once")]


@pytest.mark.parametrize("window, fld", [
    (cpb.Window(name="w", box=cpb.Box(x1=10, y1=10, x2=10, y2=20)), "windows.windows[0].box"),
    (cpb.Window(name="w", box=cpb.Box(x1=300, y1=10, x2=400, y2=20)), "windows.windows[0].box"),
    (cpb.Window(name="w"), "windows.windows[0].box"),
    (cpb.Window(name="full", box=cpb.Box(x1=0, y1=0, x2=20, y2=20)), "windows.windows[0].name"),
])
def test_bad_windows(window, fld):
    with pytest.raises(TatorError) as info:
        plan_contexts(spec(windows=[window], include_full=True), 200, 100, runs_per_context=1, cap=10, fld="labels")
    assert info.value.reason == "INVALID_FIELD" and info.value.metadata["field"] == fld


def test_fanout_cap_is_checked_before_windows_exist():
    huge = spec(tiles=cpb.TilePlan(size=1, overlap=0.0))
    with pytest.raises(TatorError) as info:
        plan_contexts(huge, 20_000, 20_000, runs_per_context=2, cap=256, fld="labels")
    err = info.value
    assert err.reason == "FANOUT_CAP_EXCEEDED" and err.metadata["cap"] == "256"
    assert int(err.metadata["requested"]) == 2 * 20_000 * 20_000
    # exactly at the cap passes
    ctxs, _ = plan_contexts(spec(grid=cpb.GridSpec(cols=2, rows=2)), 200, 100, runs_per_context=2, cap=8, fld="labels")
    assert len(ctxs) == 4


def test_plan_text_normalises_prompts_and_joins_labels():
    entry = Registry([]).entries.get("x")  # plans carry the entry through untouched
    plan = segment.plan_text(entry, image(), [("circle", ["circle", " Circle ", "round   shape"]),
                                              ("circle", ["ROUND shape", "disc"]), ("square", ["box"])],
                             None, segment.Options(0.2), cap=10)
    assert plan.labels == [("circle", ["circle", "round shape", "disc"]), ("square", ["box"])]
    assert segment.prompt_key("  Round\tShape ") == "round shape"
    with pytest.raises(TatorError) as info:
        segment.plan_text(entry, image(), [("a", ["x"]), ("b", ["y", "\t"])], None, segment.Options(0.2), cap=10)
    assert info.value.metadata["field"] == "labels[1].prompts[1]"
    with pytest.raises(TatorError) as info:
        segment.plan_text(entry, image(), [("a", ["x", "y", "z"])], spec(grid=cpb.GridSpec(cols=2, rows=2)),
                          segment.Options(0.2), cap=11)
    assert info.value.reason == "FANOUT_CAP_EXCEEDED" and info.value.metadata["requested"] == "12"


def test_plan_exemplars_clips_boxes_and_refuses_bad_ones():
    q = segment.ExemplarQuery("c", [(-5.0, -5.0, 20.0, 20.0)], [(190.0, 90.0, 300.0, 300.0)], " shiny  disc ")
    plan = segment.plan_exemplars(None, image(), [q], None, segment.Options(0.3), cap=4)
    got = plan.queries[0]
    assert got.positives == [(0.0, 0.0, 20.0, 20.0)] and got.negatives == [(190.0, 90.0, 200.0, 100.0)]
    assert got.text == "shiny disc"
    for bad, fld in [((float("nan"), 0.0, 1.0, 1.0), "exemplars[0].positives[0]"),
                     ((250.0, 0.0, 260.0, 10.0), "exemplars[0].positives[0]")]:
        with pytest.raises(TatorError) as info:
            segment.plan_exemplars(None, image(), [segment.ExemplarQuery("c", [bad])], None, segment.Options(0.3), 4)
        assert info.value.metadata["field"] == fld


async def test_models_missing_and_broken(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({"models": [
        {"id": "broken", "family": "sam3", "path": "broken", "default": True},
        {"id": "gone", "family": "sam3", "path": "gone"},
        {"id": "yolo", "family": "yolo", "path": "y.pt"}]}))
    models = make_repository(Registry.load(reg, families={"sam3"}), "cpu")
    with pytest.raises(TatorError) as info:
        await models.acquire("gone")
    assert info.value.reason == "MODEL_MISSING" and info.value.metadata["path"] == str(tmp_path / "gone")
    with pytest.raises(TatorError) as info:
        models.resolve("yolo", FAMILY)
    assert info.value.reason == "MODEL_NOT_FOUND"
    assert models.resolve("", FAMILY) == "broken"
    for _ in range(2):  # the failure is remembered, not retried
        with pytest.raises(TatorError) as info:
            await models.acquire("broken")
        assert info.value.reason == "MODEL_LOAD_FAILED"
    states = {s.id: (s.state, s.reason) for s in models.statuses()}
    assert states["broken"][0] == "FAILED" and states["broken"][1]
    assert states["gone"][0] == "MISSING"
    empty = make_repository(Registry([]), "cpu")
    with pytest.raises(TatorError) as info:
        empty.resolve("", FAMILY)
    assert info.value.reason == "MODEL_MISSING"
    await models.close()
    await empty.close()


def test_settings_accept_stack_flags(tmp_path):
    s = Sam3Settings.load(["--host", "127.0.0.1", "--port", "50052", "--metrics-port", "9462", "--device", "cpu",
                           "--registry", str(tmp_path / "r.yaml"), "--max-prompt-runs", "12", "--no-warmup"])
    assert (s.port, s.metrics_port, s.max_prompt_runs, s.warmup) == (50052, 9462, 12, False)
    assert Sam3Settings.load([]).max_prompt_runs == 256


def test_cli_parsing_and_requests():
    import typer

    from tator_cli.commands import sam3 as cli

    assert cli.parse_text(["circle=circle, disc", "square=box", "circle=ring"]) == \
        {"circle": ["circle", "disc", "ring"], "square": ["box"]}
    assert cli.parse_boxes(["c=1,2,30.5,40"], "--exemplar") == {"c": [(1.0, 2.0, 30.5, 40.0)]}
    for bad in (["c=1,2,3"], ["=1,2,3,4"], ["c=a,b,c,d"], ["c1,2,3,4"]):
        with pytest.raises(typer.BadParameter):
            cli.parse_boxes(bad, "--exemplar")
    with pytest.raises(typer.BadParameter):
        cli.parse_text(["circle=,"])
    windows = cli._window_spec("3x2", 0.1, False)
    assert (windows.grid.cols, windows.grid.rows, windows.include_full) == (3, 2, False)
    with pytest.raises(typer.BadParameter):
        cli._window_spec("3by2", 0.1, True)
    method, req = cli.build_request(b"png", {}, {"c": [(1, 2, 3, 4)]}, {"c": [(5, 6, 7, 8)]}, windows=None,
                                    score=None, mask_threshold=0.4, masks=True, model="")
    assert method == "SegmentExemplars" and not req.HasField("score_threshold") and req.mask_threshold == pytest.approx(0.4)
    assert req.exemplars[0].negatives[0].x2 == 7 and req.return_masks and not req.image.HasField("data")
    method, req = cli.build_request(b"png", {"c": ["c"]}, {}, {}, windows=windows, score=0.5, mask_threshold=None,
                                    masks=False, model="m")
    assert method == "SegmentText" and req.score_threshold == 0.5 and req.windows.grid.cols == 3


@pytest.mark.gpu
def test_backend_on_cuda_in_bfloat16(tmp_path):
    from svc_sam3.backends.sam3 import ExemplarBoxes, Sam3Backend

    tiny.build(tmp_path)
    backend = Sam3Backend.load(tmp_path / "sam3-tiny", "cuda:0", {"dtype": "bfloat16"})
    vision = backend.embed_image(np.zeros((100, 120, 3), dtype=np.uint8))
    assert vision.levels[0].is_cuda and vision.levels[0].dtype.is_floating_point
    texts = backend.embed_texts(["circle", "visual"])
    found = backend.decode(vision, texts, (120, 100), score_threshold=0.0, with_masks=True,
                           exemplars=[ExemplarBoxes([(1, 1, 20, 20)], []),
                                      ExemplarBoxes([(1, 1, 20, 20), (30, 30, 50, 60)], [(60, 60, 80, 80)])])
    assert [len(f) for f in found] == [tiny.NUM_QUERIES] * 2
    assert Sam3Backend.mask(found[1][0], (120, 100), 0.2).shape == (100, 120)


def test_a_merged_detection_keeps_every_prompt_that_found_it():
    from svc_sam3.segment import merged_prompts
    from tator_core.geometry import Scored, merge

    def raw(box, score, label, prompt):
        return Scored(box, score, label, (None, None, prompt, "sam3_text"))

    items = [raw((10, 10, 50, 50), 0.9, "circle", "circle"),
             raw((11, 10, 50, 51), 0.7, "circle", "disc"),          # the same object, another prompt
             raw((10, 10, 50, 50), 0.6, "circle", "circle"),        # the same prompt again (another window)
             raw((10, 10, 50, 50), 0.8, "square", "box"),           # same place, other label: not merged
             raw((200, 200, 240, 240), 0.5, "circle", "ring")]      # elsewhere: its own detection
    kept = [item for item, _ in merge(items, 0.5)]
    prompts = merged_prompts(kept, items, 0.5)
    by_prompt = {p[0]: p for p in prompts}
    assert len(kept) == 3
    assert by_prompt["circle"] == ["circle", "disc"]  # the kept one's first, each once
    assert by_prompt["box"] == ["box"] and by_prompt["ring"] == ["ring"]
