"""Leakage check: a calibration refuses a test split that holds images a model of the stack was trained on,
names the model, and with `allow_training_overlap` runs but flags the overlap in the report."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml
from PIL import Image

from svc_orchestrator.calibration import leakage
from svc_orchestrator.calibration.flow import plan_split
from svc_orchestrator.convert.calibration import calibration_request, service_models
from svc_orchestrator.datasets import load_dataset
from tator_core.errors import TatorError
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.registry import Registry, RegistryError, TrainingRecord, list_sha256, training_pb

LM = ["circle", "square", "triangle"]
IMAGES = 10


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("leak") / "shapes"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "labelmap.txt").write_text("\n".join(LM) + "\n")
    for i in range(IMAGES):
        Image.new("RGB", (32, 24), (i * 20, 7, 0)).save(root / "images" / f"im{i}.png")
        (root / "labels" / f"im{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return load_dataset(root)


def _shas(ds, names) -> list[str]:
    return [leakage.file_sha256(ds.item(n).path) for n in names]


def _models(yolo_trained_on: list[str] | None, head_trained_on: list[str] | None = None) -> pb.ListModelsResponse:
    def info(mid, family, shas):
        rec = None if shas is None else training_pb(TrainingRecord(f"{mid} data", frozenset(shas)))
        return common_pb2.ModelInfo(id=mid, family=family, is_default=True, labelmap=LM, trained_on=rec)

    return pb.ListModelsResponse(services=[
        pb.ServiceModels(service="detector",
                         models=[info("yolo-a", "yolo", yolo_trained_on), info("rfdetr-a", "rfdetr", None)]),
        pb.ServiceModels(service="classifier", models=[info("head-a", "head", head_trained_on)]),
    ])


def _found(ds, models, config=None):
    request = calibration_request(config or pb.CalibrationConfig())
    _, split = plan_split(ds, request.settings)
    return split, leakage.overlap(ds, split, leakage.used_models(service_models(models), request.prepass))


def test_test_split_overlap_is_refused_naming_the_model(ds) -> None:
    split, _ = _found(ds, _models(None))
    found = _found(ds, _models(_shas(ds, split.test[:1])))[1]
    with pytest.raises(TatorError) as err:
        leakage.check(found, allow=False)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.reason == "TRAINING_DATA_OVERLAP"
    assert err.value.metadata["model_id"] == "yolo-a"
    assert "yolo-a" in err.value.message and split.test[0] in err.value.message


def test_forced_run_flags_the_overlap(ds) -> None:
    split, _ = _found(ds, _models(None))
    found = _found(ds, _models(_shas(ds, split.test)))[1]
    warnings = leakage.check(found, allow=True)
    assert any(w.startswith("LEAKAGE") and "yolo-a" in w for w in warnings)
    summary = leakage.summary(found)
    assert summary["yolo-a"]["overlap"] == {"train": 0, "val": 0, "test": len(split.test)}
    assert summary["rfdetr-a"] == {"family": "rfdetr", "known": False}


def test_train_overlap_only_warns_and_disjoint_data_passes(ds) -> None:
    split, _ = _found(ds, _models(None))
    found = _found(ds, _models(_shas(ds, split.train), head_trained_on=[]))[1]
    warnings = leakage.check(found, allow=False)
    assert len(warnings) == 1 and "train image" in warnings[0] and "yolo-a" in warnings[0]
    assert leakage.check(_found(ds, _models([], []))[1], allow=False) == []


def test_disabled_detector_is_not_checked(ds) -> None:
    split, _ = _found(ds, _models(None))
    config = pb.CalibrationConfig(prepass=pb.PrepassConfig(enable_yolo=False))
    found = _found(ds, _models(_shas(ds, split.test)), config)[1]
    assert "yolo-a" not in found
    assert leakage.check(found, allow=False) == []


def test_head_overlap_is_refused_too(ds) -> None:
    split, _ = _found(ds, _models(None))
    with pytest.raises(TatorError) as err:
        leakage.check(_found(ds, _models([], _shas(ds, split.test[-1:])))[1], allow=False)
    assert err.value.metadata["model_id"] == "head-a"


def test_registry_reads_and_checks_training_records(tmp_path: Path) -> None:
    shas = ["a" * 64, "b" * 64]
    entry = {"id": "m", "family": "yolo", "path": "m.pt",
             "trained_on": {"description": "d", "image_sha256": shas, "list_sha256": list_sha256(shas)}}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    rec = Registry.load(path).get("m").trained_on
    assert rec is not None and rec.image_sha256 == frozenset(shas) and rec.list_sha256 == list_sha256(shas[::-1])
    msg = training_pb(rec)
    assert msg.images == 2 and list(msg.image_sha256) == sorted(shas)
    entry["trained_on"]["list_sha256"] = "c" * 64
    path.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(RegistryError, match="list_sha256"):
        Registry.load(path)
    entry["trained_on"] = {"image_sha256": ["not-a-sha"]}
    path.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(RegistryError, match="SHA-256"):
        Registry.load(path)
