"""The device check's CPU side: the GPU assignment and device parsing it relies on, the real model
sizes it benchmarks, and its dry run (tiny models, same code path) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tator_cli import stack
from tator_core.settings import resolve_device

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import device_models

MODEL_SERVICES = ("detector", "sam3", "qwen", "classifier")


@pytest.mark.parametrize("visible,expected", [
    (None, ["0", "1", "2"]),              # unset: every GPU the driver lists
    ("2,5", ["2", "5"]),                  # physical ids as given
    ("", []),                             # set but empty: no GPU at all
    ("1,-1,2", ["1"]),                    # CUDA stops at the first invalid entry
    ("GPU-8f2e, 3", ["GPU-8f2e", "3"]),   # UUIDs pass through
])
def test_visible_gpu_ids(visible, expected):
    assert stack.visible_gpu_ids(3, visible) == expected


def test_each_model_service_sees_only_its_gpu_as_cuda0():
    services = stack.load_config()
    plan = stack.visible_device_env(services, ["4", "5", "6", "7"])
    assert [plan[n][1]["CUDA_VISIBLE_DEVICES"] for n in MODEL_SERVICES] == ["4", "5", "6", "7"]
    assert {plan[n][0] for n in MODEL_SERVICES} == {"cuda:0"}
    assert plan["orchestrator"] == ("cpu", {"CUDA_VISIBLE_DEVICES": ""})
    shared = stack.visible_device_env(services, ["0"])  # one GPU lent: all four share it
    assert {shared[n][1]["CUDA_VISIBLE_DEVICES"] for n in MODEL_SERVICES} == {"0"}
    two = stack.visible_device_env(services, ["0", "1"])
    assert [two[n][1]["CUDA_VISIBLE_DEVICES"] for n in MODEL_SERVICES] == ["0", "1", "0", "1"]
    none = stack.visible_device_env(services, [])
    assert all(v == ("cpu", {"CUDA_VISIBLE_DEVICES": ""}) for v in none.values())


def test_device_parsing():
    assert resolve_device(" CPU ") == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:-1", "tpu:0"):
        with pytest.raises(ValueError, match="cpu, cuda:N or auto"):
            resolve_device(bad)
    import torch

    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        for absent in ("cuda", "cuda:0", "cuda:7"):
            with pytest.raises(ValueError, match="not available"):
                resolve_device(absent)


def test_bf16_falls_back_to_float32_off_gpu():
    import torch

    assert device_models._dtype("bfloat16", "cpu") is torch.float32
    assert device_models._dtype("bfloat16", "cuda:0") is torch.bfloat16
    assert device_models._dtype("float32", "cuda:0") is torch.float32


def test_real_sizes_are_the_published_models():
    """Counted on the meta device: no memory, no weights."""
    assert device_models.parameter_count("clip", "real") == 149_620_737  # openai/clip-vit-base-patch16
    assert 0.8e9 < device_models.parameter_count("sam3", "real") < 0.9e9  # SAM3 image model, ~0.84B
    real = device_models.SIZES["real"]
    assert real["yolo"]["cfg"] == "yolov8s.yaml" and real["yolo"]["imgsz"] == 640
    assert real["rfdetr"]["cls"] == "RFDETRBase" and real["rfdetr"]["resolution"] == 560
    assert real["qwen"]["config"]["text"]["num_hidden_layers"] == 36 and real["qwen"]["dtype"] == "bfloat16"
    # Same builders, other shapes: the dry run goes through the code the device run takes.
    assert set(device_models.SIZES["tiny"]) == set(real) == set(device_models.BUILDERS)


@pytest.mark.timeout(600)
def test_full_dry_run_passes_every_step_for_every_family(tmp_path):
    """The whole device check on the CPU: every family's tiny model, the stack with a prepass job, and the
    benchmarks, through the code the GPU run takes. A step that breaks here would break on the device."""
    env = dict(os.environ, OUT=str(tmp_path), TATOR_DEVICE_TIMEOUT_S="560")
    done = subprocess.run(["bash", "scripts/device_check.sh", "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    report = json.loads((tmp_path / "device.json").read_text())
    assert line["failed"] == report["failed"] == []
    assert report["size"] == "tiny" and report["steps"]["env"]["result"]["device"] == "cpu"
    assert report["steps"]["plan"]["result"]["four_gpus"]["qwen"]["CUDA_VISIBLE_DEVICES"] == "2"
    # Every family was built and reached the stack, whose prepass job ran over all its images.
    assert set(report["steps"]["models"]["result"]["extra"]) == set(device_models.FAMILIES)
    prepass = report["steps"]["stack"]["result"]["prepass"]
    assert prepass["state"] == "JOB_STATE_SUCCEEDED" and prepass["images"] == 4
    bench = {r["family"]: r for r in report["steps"]["bench"]["result"]}
    assert set(bench) == set(device_models.FAMILIES)
    for family, r in bench.items():
        # Dry budget: 3 direct calls, 4 service calls at concurrency 1 and 8 per level (benchmarks/device.py).
        assert r["direct"]["calls"] == 3 and r["direct"]["images_per_s"] > 0, family
        assert r["service"]["c1"]["total"] == 4 and r["service"]["c8"]["total"] == 8, family
        assert r["service_over_direct_c1"] > 0, family
    # The detectors also measure tiles batched vs one by one and micro-batching on vs off.
    for family in ("yolo", "rfdetr"):
        assert bench[family]["tiles"]["tiles"] > 1 and bench[family]["tiles"]["batched_speedup"] > 0
        assert bench[family]["service_batching_off"]["c8"]["total"] == 8
    table = (tmp_path / "device.md").read_text()
    assert all(f"| {family} | {family}-tiny |" in table for family in device_models.FAMILIES)


def test_cached_path_version_never_reads_and_follows_changes(tmp_path):
    """ListModels answers on the event loop only from known hashes; a changed file is unknown again."""
    from tator_core.hashing import cached_path_version, path_version

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 1000)
    assert cached_path_version(weights) is None
    digest = path_version(weights)
    assert cached_path_version(weights) == digest
    weights.write_bytes(b"b" * 1001)
    assert cached_path_version(weights) is None
    assert path_version(weights) != digest


def test_qwen_dtype_selection_and_bf16_fallback(monkeypatch):
    import torch

    from svc_qwen.backends.qwen_vl import select_dtype

    assert select_dtype("auto", "cpu") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_dtype("auto", "cuda:0") is torch.bfloat16
    assert select_dtype("auto", "cpu") is torch.float32  # never bf16 on a CPU, whatever the GPU can do
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert select_dtype("auto", "cuda:0") is torch.float32
    assert select_dtype("float16", "cuda:0") is torch.float16 and select_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="option dtype"):
        select_dtype("fp8", "cuda:0")
