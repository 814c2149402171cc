"""Qwen plain functions with a scripted backend: caption flows (full, windowed,
merge pass, full-frame draft, no usable windows), per-window hints, rewrite
collection, request conversion and validation, and synonym expansion
(glossary / model / default origins, cap enforcement, the result cache)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from svc_qwen import convert
from svc_qwen.backends.qwen_vl import Generated, GenSettings
from svc_qwen.captions import FULL, WINDOWED, CaptionJob, Hint, run_caption
from svc_qwen.prompts import Vocabulary
from svc_qwen.synonyms import ResultCache, SynonymJob, expand
from tator_core.errors import TatorError
from tator_core.gen.tator.common.v1 import common_pb2 as cpb
from tator_core.gen.tator.qwen.v1 import qwen_pb2 as pb
from tator_core.geometry import grid_windows
from tator_core.images import DecodedImage

W, H = 200, 100
IMAGE = DecodedImage("a" * 64, np.zeros((H, W, 3), dtype=np.uint8), 0)


class ScriptedBackend:
    """Answers by prompt kind; records every call."""

    def __init__(self, window=lambda i: "A red light_vehicle on a road.", merge="Two cars on a road.",
                 full="A road with cars.", tokens=5) -> None:
        self.window, self.merge, self.full, self.tokens = window, merge, full, tokens
        self.encoded: list[object] = []
        self.prompts: list[tuple[str, bool]] = []
        self.cache: set[object] = set()

    def encode(self, regions):
        fresh = [k for k, _ in regions if k not in self.cache]
        self.encoded.extend(fresh)
        self.cache.update(fresh)
        return [object() for _ in regions], len(regions) - len(fresh)

    def generate(self, items, gen):
        out = []
        for prompt, feat in items:
            self.prompts.append((prompt, feat is not None))
            if feat is None:
                text = self.merge
            elif "one part of a larger picture" in prompt:
                text = self.window(sum(1 for p, f in self.prompts if f and "one part" in p) - 1)
            else:
                text = self.full
            out.append(Generated(text, min(self.tokens, gen.max_new_tokens), self.tokens >= gen.max_new_tokens))
        return out


def job(mode=FULL, **kw) -> CaptionJob:
    vocab = Vocabulary.build(["light_vehicle", "circle"], {"light_vehicle": ["car"]})
    kw.setdefault("windows", grid_windows(W, H, 2, 2, 0.2) if mode == WINDOWED else [])
    return CaptionJob(IMAGE, mode, vocab, GenSettings(16), **kw)


def test_full_caption_one_encode_one_generate():
    be = ScriptedBackend(full="A light_vehicle by a circle.")
    res = run_caption(be, job())
    assert res.caption == "A car by a circle." and res.degenerate_reason == ""
    assert res.rewritten == ["light_vehicle"] and res.generated_tokens == 5
    assert len(be.encoded) == 1 and [s.stage for s in res.stages] == ["encode", "generate"]
    again = run_caption(be, job())
    assert [s.stage for s in again.stages] == ["feature_cache", "generate"] and len(be.encoded) == 1


def test_windowed_captions_each_window_then_merges():
    be = ScriptedBackend()
    res = run_caption(be, job(WINDOWED, window_batch=3))
    assert [w.name for w in res.windows] == ["A1", "B1", "A2", "B2"]
    assert all(w.caption == "A red car on a road." for w in res.windows)
    assert res.caption == "Two cars on a road." and res.generated_tokens == 5 * 5
    assert [s.stage for s in res.stages] == ["encode", "generate", "encode", "generate", "merge"]
    assert [s.batch_size for s in res.stages][:4] == [3, 3, 1, 1]
    merge_prompt, has_image = be.prompts[-1]
    assert not has_image and "Part A1: A red car on a road." in merge_prompt
    assert "light_vehicle on" not in merge_prompt  # window captions were rewritten before the merge


def test_windowed_skips_degenerate_windows_and_reports_when_none_is_usable():
    be = ScriptedBackend(window=lambda i: "ok ok ok ok ok ok ok ok ok" if i % 2 else "A blue circle.")
    res = run_caption(be, job(WINDOWED))
    reasons = [w.degenerate_reason for w in res.windows]
    assert reasons == ["", "repetition", "", "repetition"]
    assert all(bool(w.caption) != bool(w.degenerate_reason) for w in res.windows)
    assert "Part B1" not in be.prompts[-1][0] and "Part A1: A blue circle." in be.prompts[-1][0]
    be = ScriptedBackend(window=lambda i: "\ufffd\ufffd")
    res = run_caption(be, job(WINDOWED))
    assert res.caption == "" and res.degenerate_reason == "no_usable_windows"
    assert not any(not f for _, f in be.prompts), "no merge pass without usable windows"


def test_windowed_full_frame_draft_goes_into_the_merge():
    be = ScriptedBackend(window=lambda i: "\ufffd")
    res = run_caption(be, job(WINDOWED, include_full=True))
    assert len(res.windows) == 4 and len(be.encoded) == 5
    assert "Whole image (draft): A road with cars." in be.prompts[-1][0]
    assert res.caption == "Two cars on a road."


def test_degenerate_merge_is_reported_not_returned():
    res = run_caption(ScriptedBackend(merge="Below are descriptions of overlapping parts of one image."),
                      job(WINDOWED))
    assert res.caption == "" and res.degenerate_reason == "prompt_echo"


def test_window_hints_are_counted_per_window():
    be = ScriptedBackend()
    hints = [Hint("light_vehicle", (10, 10, 30, 30)), Hint("light_vehicle", (150, 60, 190, 90)), Hint("circle")]
    run_caption(be, job(WINDOWED, hints=hints))
    window_prompts = [p for p, f in be.prompts if f]
    assert "car (1)" in window_prompts[0] and "car (1)" in window_prompts[3]
    assert "Detection hints" not in window_prompts[1]
    assert "car (2), circle (1)" in be.prompts[-1][0]


def test_token_limit_warning():
    res = run_caption(ScriptedBackend(tokens=99), job())
    assert res.generated_tokens == 16 and [(w.code, w.subject) for w in res.warnings] == [("max_new_tokens_reached", "full")]


# --- conversion and validation ------------------------------------------------------

def reason_field(exc: TatorError) -> tuple[str, str]:
    return exc.reason, exc.metadata.get("field", "")


@pytest.mark.parametrize("spec, names", [
    (cpb.WindowSpec(), ["A1", "B1", "A2", "B2"]),
    (cpb.WindowSpec(grid=cpb.GridSpec(cols=3, rows=1)), ["A1", "B1", "C1"]),
    (cpb.WindowSpec(windows=[cpb.Window(name="left", box=cpb.Box(x1=-5, y1=0, x2=50, y2=500))]), ["left"]),
    (cpb.WindowSpec(windows=[cpb.Window(box=cpb.Box(x1=0, y1=0, x2=10, y2=10))],
                    tiles=cpb.TilePlan(size=100, overlap=0)), ["win_0", "tile_0", "tile_1"]),
])
def test_windows_from(spec, names):
    wins, _ = convert.windows_from(spec, W, H, 64)
    assert [w.name for w in wins] == names
    assert all(0 <= w.box[0] < w.box[2] <= W and 0 <= w.box[1] < w.box[3] <= H for w in wins)


@pytest.mark.parametrize("spec, fld, reason", [
    (cpb.WindowSpec(windows=[cpb.Window(name="x")]), "windows.windows[0].box", "INVALID_FIELD"),
    (cpb.WindowSpec(windows=[cpb.Window(box=cpb.Box(x1=math.nan, y1=0, x2=1, y2=1))]),
     "windows.windows[0].box", "INVALID_FIELD"),
    (cpb.WindowSpec(windows=[cpb.Window(box=cpb.Box(x1=300, y1=0, x2=400, y2=10))]),
     "windows.windows[0].box", "INVALID_FIELD"),
    (cpb.WindowSpec(tiles=cpb.TilePlan(size=1)), "windows", "FANOUT_CAP_EXCEEDED"),
    (cpb.WindowSpec(grid=cpb.GridSpec(cols=16, rows=16)), "windows", "FANOUT_CAP_EXCEEDED"),
])
def test_windows_from_rejects(spec, fld, reason):
    with pytest.raises(TatorError) as err:
        convert.windows_from(spec, W, H, 64)
    assert reason_field(err.value) == (reason, fld)


def test_hint_and_label_validation():
    with pytest.raises(TatorError) as err:
        convert.hints_from([pb.LabelHint(label="a", box=cpb.Box(x1=0, y1=0, x2=math.inf, y2=1))])
    assert reason_field(err.value) == ("INVALID_FIELD", "hints[0].box")
    with pytest.raises(TatorError) as err:
        convert.hints_from([pb.LabelHint(label="a", box=cpb.Box(x1=5, y1=0, x2=1, y2=1))])
    assert reason_field(err.value) == ("INVALID_FIELD", "hints[0].box")
    assert convert.hints_from([pb.LabelHint(label=" a ")])[0] == Hint("a", None, 0.0)
    with pytest.raises(TatorError) as err:
        convert.check_labels(["ok", "bad\nlabel"], "labels")
    assert reason_field(err.value) == ("INVALID_FIELD", "labels[1]")
    with pytest.raises(TatorError) as err:
        convert.check_labels(["Car", "car!"], "labels", unique=True)
    assert reason_field(err.value) == ("INVALID_FIELD", "labels[1]")
    assert convert.glossary_terms("[" * 100000, ["a"]) == {}


def test_gen_settings_defaults_and_greedy_ignores_sampling_knobs():
    assert convert.gen_settings(cpb.GenerationSettings(), 77) == GenSettings(77)
    g = convert.gen_settings(cpb.GenerationSettings(max_new_tokens=5, temperature=0.5, seed=3), 77)
    assert g == GenSettings(5, False, None, None, 0)
    g = convert.gen_settings(cpb.GenerationSettings(do_sample=True, seed=3), 77)
    assert g.seed == 3
    g = convert.gen_settings(cpb.GenerationSettings(do_sample=True, temperature=0.5, top_p=0.9), 77)
    assert (g.do_sample, g.temperature, g.top_p, g.seed) == (True, 0.5, 0.9, 0)


# --- synonyms ----------------------------------------------------------------------------

def fake_model(answer: str):
    calls: list[str] = []

    def generate(prompt: str) -> tuple[str, int]:
        calls.append(prompt)
        return answer, 7
    return generate, calls


def test_expand_origins_and_only_missing_labels_are_asked():
    gen, calls = fake_model('{"light_vehicle": ["car", "van", "sedan"], "circle": ["ignored"]}')
    job = SynonymJob(["circle", "light_vehicle", "odd_thing"], {"circle": ["disc", "ring", "orb"]}, cap=2)
    res = expand(job, gen)
    assert [(x.label, x.terms, x.origin) for x in res.labels] == [
        ("circle", ["disc", "ring"], "glossary"), ("light_vehicle", ["car", "van"], "model"),
        ("odd_thing", ["odd thing"], "default")]
    assert res.dropped_by_cap == 2 and res.parsed_json and res.generated_tokens == 7
    assert len(calls) == 1 and '"light_vehicle"' in calls[0] and '"odd_thing"' in calls[0]
    assert '"circle": []' not in calls[0]  # labels with glossary terms are not asked
    [w] = [w for w in res.warnings if w.code == "model_gave_no_terms"]
    assert w.message.startswith("1 asked labels")


def test_expand_skips_the_model_when_nothing_is_missing_or_cap_is_zero():
    gen, calls = fake_model("{}")
    res = expand(SynonymJob(["circle"], {"circle": ["disc"]}, cap=5), gen)
    assert not calls and res.raw_output == "" and res.labels[0].origin == "glossary"
    res = expand(SynonymJob(["circle", "x"], {}, cap=0), gen)
    assert not calls and all(lt.terms == [] for lt in res.labels) and res.dropped_by_cap == 2


def test_expand_caps_the_number_of_labels_asked():
    gen, calls = fake_model("not json")
    res = expand(SynonymJob([f"l{i}" for i in range(5)], {}, cap=3, max_labels=2), gen)
    assert '"l1"' in calls[0] and '"l2"' not in calls[0]
    [w] = [w for w in res.warnings if w.code == "labels_not_expanded"]
    assert w.message.startswith("3 labels over the 2-label call cap")
    assert not res.parsed_json and all(lt.origin == "default" for lt in res.labels)


def test_result_cache_is_an_lru_of_copies():
    cache = ResultCache(2)
    res = expand(SynonymJob(["a"], {}, cap=1), fake_model("")[0])
    cache.put("k1", res)
    got = cache.get("k1")
    got.labels[0].terms.append("mutated")
    assert cache.get("k1").labels[0].terms == ["a"]
    cache.put("k2", res)
    cache.put("k3", res)
    assert cache.get("k1") is None and cache.get("k3") is not None
