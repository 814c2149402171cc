"""The one proto form of the plain values every service shares: boxes, stage timing, model status, notes;
and the one-line text of a prompt and a warning."""

import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration

from tator_core.convert import (
    ModelStatus,
    Note,
    StageTime,
    box_pb,
    box_xyxy,
    model_info_pb,
    prompt_text,
    timing_pb,
    warning_pb,
    warning_text,
    window_pb,
)
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.registry import TrainingRecord
from tator_core.timestamps import duration_ms, milliseconds


def test_box_round_trip_takes_numpy_scalars_and_ints() -> None:
    msg = box_pb((np.float32(1.5), 2, np.int64(30), 40.25))
    assert (msg.x1, msg.y1, msg.x2, msg.y2) == (1.5, 2.0, 30.0, 40.25)
    assert box_xyxy(msg) == (1.5, 2.0, 30.0, 40.25) and all(type(v) is float for v in box_xyxy(msg))
    assert window_pb("tile_0_1", (0, 0, 64, 64)).box.x2 == 64.0


def test_box_needs_four_values() -> None:
    with pytest.raises(IndexError):
        box_pb((1.0, 2.0, 3.0))


def test_call_queue_time_lands_on_the_first_stage_only() -> None:
    stages = [StageTime("decode", 2.0, batch_size=1), StageTime("model:y", 5.0, batch_size=4, queue_ms=1.0),
              StageTime("head", 0.5)]
    t = timing_pb(stages, total_ms=9.0, queue_ms=3.0)
    assert (t.total.seconds, t.total.nanos) == (0, 9_000_000)
    assert [(s.stage, s.compute.ToNanoseconds(), s.queue.ToNanoseconds(), s.batch_size) for s in t.stages] == [
        ("decode", 2_000_000, 3_000_000, 1), ("model:y", 5_000_000, 1_000_000, 4), ("head", 500_000, 0, 0)]


def test_millisecond_durations_round_to_the_nanosecond_and_read_back() -> None:
    # Seconds and nanos split at 1 s; sub-nanosecond parts round; an unset Duration reads 0 ms.
    d = duration_ms(1234.5678914)
    assert (d.seconds, d.nanos) == (1, 234_567_891)
    assert milliseconds(d) == pytest.approx(1234.567891, abs=1e-9)
    assert milliseconds(duration_ms(0.0000006)) == pytest.approx(0.000001)
    assert milliseconds(Duration()) == 0.0


@pytest.mark.parametrize("state", ["MISSING", "AVAILABLE", "LOADING", "READY", "FAILED"])
def test_every_model_state_maps_to_its_enum(state: str) -> None:
    info = model_info_pb(ModelStatus(id="m", family="yolo", version="v", device="cpu", state=state))
    assert common_pb2.ModelState.Name(info.state) == f"MODEL_STATE_{state}"
    assert not info.HasField("trained_on")


def test_model_status_carries_labelmap_extra_and_training_record() -> None:
    record = TrainingRecord("seed 0", frozenset({"a" * 64, "b" * 64}))
    info = model_info_pb(ModelStatus(id="h", family="head", version="v1", device="cpu", state="READY",
                                     is_default=True, loaded=True, labelmap=["circle", "square"],
                                     extra={"dim": "8"}, trained_on=record))
    assert list(info.labelmap) == ["circle", "square"] and dict(info.extra) == {"dim": "8"}
    assert info.is_default and info.loaded and info.trained_on.images == 2


def test_unknown_state_is_a_key_error_not_a_silent_default() -> None:
    with pytest.raises(KeyError):
        model_info_pb(ModelStatus(id="m", family="yolo", version="", device="cpu", state="BROKEN"))


def test_a_note_becomes_a_typed_warning_without_server_paths() -> None:
    w = warning_pb(Note("default_model_skipped", "yolo-big", "weights not found at /srv/models/yolo-big/best.pt"))
    assert (w.code, w.subject, w.message) == ("default_model_skipped", "yolo-big", "weights not found at …/best.pt")
    assert warning_text(w) == "default_model_skipped yolo-big: weights not found at …/best.pt"
    assert warning_text(common_pb2.Warning(message="only text")) == "only text"
    assert warning_text(common_pb2.Warning(code="c")) == "c"


def test_prompt_text_shows_text_as_spelled_and_exemplars_by_label_and_indexes() -> None:
    assert prompt_text(common_pb2.Prompt(text="Orb")) == "Orb"
    exemplar = common_pb2.ExemplarPrompt(label="circle", positive_indexes=[0, 2], positives=[box_pb((1, 2, 3, 4))] * 2)
    assert prompt_text(common_pb2.Prompt(exemplar=exemplar)) == "exemplars circle #0,2"
