"""The pure parts of Replay: which inputs of a stored run differ now (each named, with both values),
and the typed differences between stored and replayed candidates."""

from __future__ import annotations

from svc_orchestrator.prepass.cache import CacheMeta
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.prepass.replay import candidates_digest, diff_candidates, input_changes, replay_record
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.version import PIPELINE_VERSION

META = CacheMeta(glossary_text="circle: disc", glossary_hash="g" * 64, labelmap=("circle",), labelmap_hash="l" * 64,
                 config={"detector_conf": 0.25, "seed": 0}, config_hash="c" * 64,
                 versions={"yolo-synth": "1" * 64, "sam3-tiny": "2" * 64})


def _cand(i: int, label: str, x: float, score: float = 0.5, **kw) -> pb.Candidate:
    return pb.Candidate(index=i, label=label, score=score, box={"x1": x, "y1": 0, "x2": x + 10, "y2": 10},
                        atom_ids=[f"a{i:07d}"], **kw)


def _ctx(glossary_name: str = "") -> PrepassContext:
    request = pb.PrepassRequest(dataset_id="synth", glossary_name=glossary_name)
    return PrepassContext(None, [], "", "", pb.PrepassConfig(), None, "", {}, request)  # type: ignore[arg-type]  # input_changes reads only the request


def _row(meta: CacheMeta = META):
    res = pb.PrepassResult(run_id="r" * 64, image_sha256="s" * 64, candidates=[_cand(0, "circle", 0)])
    return replay_record(res, pb.PrepassRequest(dataset_id="synth", dataset_image="a.png"), meta, "synth")


def _meta(**over) -> CacheMeta:
    return CacheMeta(**{**META.__dict__, **over})


def test_unchanged_inputs_allow_a_replay():
    assert input_changes(_row(), _ctx(), META) == {}


def test_each_changed_input_is_named_with_both_values():
    changes = input_changes(_row(), _ctx("alt"), _meta(
        glossary_hash="h" * 64, labelmap_hash="m" * 64, pipeline_version="prepass-99",
        config={"detector_conf": 0.5, "seed": 0}, config_hash="d" * 64,
        versions={"yolo-other": "3" * 64, "sam3-tiny": "4" * 64}))
    assert list(changes) == ["pipeline", "labelmap", "glossary", "config", "models"]
    assert changes["pipeline"] == f"pipeline version {PIPELINE_VERSION} is prepass-99 now"
    assert changes["glossary"] == "glossary 'alt' changed (hash gggggggggggg is hhhhhhhhhhhh now)"
    assert "detector_conf: 0.25 -> 0.5" in changes["config"] and "seed" not in changes["config"]
    assert changes["models"] == ("models changed: sam3-tiny version 222222222222 is 444444444444 now; "
                                 "yolo-other (version 333333333333) is used now; "
                                 "yolo-synth (version 111111111111) is no longer used")
    # the dataset's own glossary is named as such
    assert "the glossary of dataset 'synth'" in input_changes(_row(), _ctx(), _meta(glossary_hash="h" * 64))["glossary"]


def test_identical_candidates_have_equal_digests_and_no_differences():
    a = [_cand(0, "circle", 0), _cand(1, "square", 50)]
    b = [pb.Candidate.FromString(c.SerializeToString()) for c in a]
    assert candidates_digest(a) == candidates_digest(b) and diff_candidates(a, b) == []
    assert candidates_digest(a) != candidates_digest(a[:1])


def test_missing_extra_box_and_score_differences_carry_both_values():
    stored = [_cand(0, "circle", 0), _cand(1, "square", 50), _cand(2, "triangle", 100)]
    replayed = [_cand(0, "circle", 1),                        # box moved a pixel (IoU 0.82)
                _cand(1, "square", 50, score=0.75),           # same box, another score
                _cand(2, "circle", 200)]                      # triangle gone, a new circle
    diffs = diff_candidates(stored, replayed)
    kinds = [d.kind for d in diffs]
    assert kinds == [pb.REPLAY_DIFFERENCE_KIND_BOX, pb.REPLAY_DIFFERENCE_KIND_SCORE,
                     pb.REPLAY_DIFFERENCE_KIND_MISSING, pb.REPLAY_DIFFERENCE_KIND_EXTRA]
    box, score, missing, extra = diffs
    assert list(box.fields) == ["box"] and box.stored.box.x1 == 0 and box.replayed.box.x1 == 1
    assert list(score.fields) == ["score"] and (score.stored.score, score.replayed.score) == (0.5, 0.75)
    assert missing.stored.label == "triangle" and not missing.HasField("replayed") and not missing.fields
    assert extra.replayed.box.x1 == 200 and not extra.HasField("stored")


def test_a_shift_of_index_and_atom_ids_alone_is_reported_only_when_nothing_else_differs():
    stored = [_cand(0, "circle", 0), _cand(1, "square", 50)]
    shifted = [_cand(1, "circle", 0), _cand(2, "square", 50)]
    diffs = diff_candidates(stored, shifted)
    assert [(d.kind, list(d.fields)) for d in diffs] == [(pb.REPLAY_DIFFERENCE_KIND_OTHER, ["index", "atom_ids"])] * 2
    # next to a real difference the bookkeeping shift is noise: only the real one is listed
    shifted[1].classifier_label = "circle"
    diffs = diff_candidates(stored, shifted)
    assert [(d.kind, list(d.fields)) for d in diffs] == [
        (pb.REPLAY_DIFFERENCE_KIND_OTHER, ["index", "atom_ids", "classifier_label"])]


def test_pairs_need_the_same_label_and_enough_overlap():
    stored = [_cand(0, "circle", 0)]
    assert [d.kind for d in diff_candidates(stored, [_cand(0, "square", 0)])] == \
        [pb.REPLAY_DIFFERENCE_KIND_MISSING, pb.REPLAY_DIFFERENCE_KIND_EXTRA]
    assert [d.kind for d in diff_candidates(stored, [_cand(0, "circle", 6)])] == \
        [pb.REPLAY_DIFFERENCE_KIND_MISSING, pb.REPLAY_DIFFERENCE_KIND_EXTRA]  # IoU 0.25
