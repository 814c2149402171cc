"""Calibration guards: each unmet precondition fails fast with FAILED_PRECONDITION naming the missing piece."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from PIL import Image

from svc_orchestrator.calibration import check_guards as check_plain
from svc_orchestrator.convert.calibration import calibration_request, service_models
from svc_orchestrator.datasets import load_dataset
from tator_core.errors import TatorError
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

LM = ["circle", "square", "triangle"]


def check_guards(models: pb.ListModelsResponse, ds, config: pb.CalibrationConfig) -> None:
    """The guards on the messages the orchestrator receives, converted as it converts them."""
    check_plain(service_models(models), ds, calibration_request(config))


def _dataset(root: Path, *, with_gt: bool, images: int = 4):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "labelmap.txt").write_text("\n".join(LM) + "\n")
    for i in range(images):
        Image.new("RGB", (64, 48), (i * 20, 0, 0)).save(root / "images" / f"im{i}.png")
        (root / "labels" / f"im{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n" if with_gt else "")
    ds = load_dataset(root)
    assert ds is not None
    return ds


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):
    return _dataset(tmp_path_factory.mktemp("gt") / "shapes", with_gt=True)


def _info(mid: str, family: str, labelmap: list[str], state=common_pb2.MODEL_STATE_READY, **kw) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(id=mid, family=family, version="v" * 64, labelmap=labelmap, device="cpu", state=state,
                                is_default=kw.pop("is_default", True), loaded=state == common_pb2.MODEL_STATE_READY,
                                **kw)


def _models() -> pb.ListModelsResponse:
    return pb.ListModelsResponse(services=[
        pb.ServiceModels(service="detector", address="127.0.0.1:1", health=pb.SERVICE_HEALTH_SERVING,
                         models=[_info("yolo-a", "yolo", LM), _info("rfdetr-a", "rfdetr", LM)]),
        pb.ServiceModels(service="sam3", address="127.0.0.1:2", health=pb.SERVICE_HEALTH_SERVING, models=[_info("sam3-a", "sam3", [])]),
        pb.ServiceModels(service="qwen", address="127.0.0.1:4", health=pb.SERVICE_HEALTH_SERVING, models=[_info("qwen-a", "qwen", [])]),
        pb.ServiceModels(service="classifier", address="127.0.0.1:3", health=pb.SERVICE_HEALTH_SERVING,
                         models=[_info("clip-a", "clip", []), _info("head-a", "head", [*LM, "__bg_0"])]),
    ])


def _svc(m: pb.ListModelsResponse, name: str) -> pb.ServiceModels:
    return next(s for s in m.services if s.service == name)


def _model(m: pb.ListModelsResponse, mid: str) -> common_pb2.ModelInfo:
    return next(x for s in m.services for x in s.models if x.id == mid)


def test_all_preconditions_met_passes(ds) -> None:
    check_guards(_models(), ds, pb.CalibrationConfig())


def _remove(m: pb.ListModelsResponse, mid: str) -> None:
    for s in m.services:
        keep = [x for x in s.models if x.id != mid]
        del s.models[:]
        s.models.extend(keep)


CASES: list[tuple[str, Callable[[pb.ListModelsResponse, pb.CalibrationConfig], None], str, str]] = [
    ("classifier service down", lambda m, c: setattr(_svc(m, "classifier"), "health", pb.SERVICE_HEALTH_UNREACHABLE),
     "SERVICE_UNAVAILABLE", "classifier"),
    ("no classifier head", lambda m, c: _remove(m, "head-a"), "MODEL_REQUIRED", "classifier head"),
    ("named head absent", lambda m, c: setattr(c.prepass, "classifier_id", "head-zz"), "MODEL_REQUIRED", "head-zz"),
    ("head weights missing", lambda m, c: _model(m, "head-a").MergeFrom(common_pb2.ModelInfo(
        state=common_pb2.MODEL_STATE_MISSING, reason="weights not found at /x/head.pt")), "MODEL_MISSING", "/x/head.pt"),
    ("detector service down", lambda m, c: setattr(_svc(m, "detector"), "health", pb.SERVICE_HEALTH_NOT_SERVING),
     "SERVICE_UNAVAILABLE", "detector"),
    ("yolo weights missing", lambda m, c: _model(m, "yolo-a").MergeFrom(common_pb2.ModelInfo(
        state=common_pb2.MODEL_STATE_MISSING, reason="weights not found at /w/best.pt")), "MODEL_MISSING", "/w/best.pt"),
    ("rfdetr not loaded", lambda m, c: (setattr(_model(m, "rfdetr-a"), "state", common_pb2.MODEL_STATE_AVAILABLE),
                                        setattr(_model(m, "rfdetr-a"), "loaded", False)), "MODEL_MISSING", "rfdetr-a"),
    ("rfdetr failed to load", lambda m, c: setattr(_model(m, "rfdetr-a"), "state", common_pb2.MODEL_STATE_FAILED),
     "MODEL_LOAD_FAILED", "rfdetr-a"),
    ("no yolo registered", lambda m, c: _remove(m, "yolo-a"), "MODEL_MISSING", "yolo"),
    ("named yolo absent", lambda m, c: setattr(c.prepass, "yolo_id", "yolo-zz"), "MODEL_MISSING", "yolo-zz"),
    ("sam3 service down", lambda m, c: setattr(_svc(m, "sam3"), "health", pb.SERVICE_HEALTH_UNREACHABLE), "SERVICE_UNAVAILABLE", "sam3"),
    ("qwen down while synonyms expand", lambda m, c: setattr(_svc(m, "qwen"), "health", pb.SERVICE_HEALTH_UNREACHABLE),
     "SERVICE_UNAVAILABLE", "qwen"),
    ("detector labelmap differs", lambda m, c: _model(m, "yolo-a").labelmap.__setitem__(1, "box"),
     "LABELMAP_MISMATCH", "yolo-a"),
    ("detector labelmap reordered", lambda m, c: (_model(m, "rfdetr-a").ClearField("labelmap"),
                                                  _model(m, "rfdetr-a").labelmap.extend(["square", "circle", "triangle"])),
     "LABELMAP_MISMATCH", "rfdetr-a"),
    ("head lacks a class", lambda m, c: (_model(m, "head-a").ClearField("labelmap"),
                                         _model(m, "head-a").labelmap.extend(["circle", "square", "__bg_0"])),
     "LABELMAP_MISMATCH", "head-a"),
]


@pytest.mark.parametrize("name,breaks,reason,names", CASES, ids=[c[0] for c in CASES])
def test_each_guard_fails_fast_naming_the_missing_piece(ds, name, breaks, reason, names) -> None:
    models, config = _models(), pb.CalibrationConfig()
    breaks(models, config)
    t0 = time.perf_counter()
    with pytest.raises(TatorError) as exc:
        check_guards(models, ds, config)
    assert time.perf_counter() - t0 < 1.0
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION, name
    assert exc.value.reason == reason, exc.value
    assert names in exc.value.message, exc.value.message


def test_dataset_without_ground_truth(tmp_path: Path) -> None:
    empty = _dataset(tmp_path / "nogt", with_gt=False)
    with pytest.raises(TatorError) as exc:
        check_guards(_models(), empty, pb.CalibrationConfig())
    assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_GROUND_TRUTH")
    assert "nogt" in exc.value.message


def test_disabled_stages_are_not_required(ds) -> None:
    models = _models()
    _svc(models, "sam3").health = pb.SERVICE_HEALTH_UNREACHABLE
    _svc(models, "qwen").health = pb.SERVICE_HEALTH_UNREACHABLE
    _remove(models, "rfdetr-a")
    config = pb.CalibrationConfig(prepass=pb.PrepassConfig(enable_sam3_text=False, enable_sam3_similarity=False,
                                                           enable_rfdetr=False))
    check_guards(models, ds, config)
    check_guards(_models_without_qwen(), ds, pb.CalibrationConfig(prepass=pb.PrepassConfig(
        sam3_text_synonym_budget=0)))


def _models_without_qwen() -> pb.ListModelsResponse:
    models = _models()
    _svc(models, "qwen").health = pb.SERVICE_HEALTH_UNREACHABLE
    return models


def test_named_models_are_the_ones_checked(ds) -> None:
    models = _models()
    _svc(models, "detector").models.append(_info("yolo-b", "yolo", ["a", "b", "c"], is_default=False))
    check_guards(models, ds, pb.CalibrationConfig())  # default yolo-a matches
    with pytest.raises(TatorError) as exc:
        check_guards(models, ds, pb.CalibrationConfig(prepass=pb.PrepassConfig(yolo_id="yolo-b")))
    assert exc.value.reason == "LABELMAP_MISMATCH" and "yolo-b" in exc.value.message


def test_classifier_disabled_and_too_few_images_are_invalid_arguments(ds, tmp_path: Path) -> None:
    with pytest.raises(TatorError) as exc:
        check_guards(_models(), ds, pb.CalibrationConfig(prepass=pb.PrepassConfig(enable_classifier=False)))
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT and "enable_classifier" in exc.value.message
    with pytest.raises(TatorError) as exc:
        check_guards(_models(), ds, pb.CalibrationConfig(max_images=2))
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT and "max_images" in exc.value.message
    small = _dataset(tmp_path / "two", with_gt=True, images=2)
    with pytest.raises(TatorError) as exc:
        check_guards(_models(), small, pb.CalibrationConfig())
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_model_state_this_version_does_not_know_is_named_not_a_crash(ds) -> None:
    """A newer model service may report a ModelState this orchestrator lacks: the detector counts as not
    loaded, and the refusal names the number it got."""
    models = _models()
    _model(models, "yolo-a").state = 42  # type: ignore[assignment]  # an enum value from a newer contract
    _model(models, "yolo-a").loaded = False
    with pytest.raises(TatorError) as exc:
        check_guards(models, ds, pb.CalibrationConfig())
    assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING")
    assert "yolo-a" in exc.value.message and "STATE_42" in exc.value.message
