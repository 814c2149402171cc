"""The Qwen-VL backend on the tiny random-init checkpoints (Qwen2.5-VL and
Qwen3-VL): the same loader path a real checkpoint takes, image-first feature
reuse that gives exactly the pixel path's tokens, the processor's placeholder
expansion reproduced from a cached grid, batching, seeds and token limits."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from svc_qwen import tiny
from svc_qwen.backends.qwen_vl import GenSettings, QwenVL, UnsupportedCheckpoint, read_model_type

ARCHS = ["qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen_backend_models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny decode steps on shared cores: one thread is many times faster
    entries = {arch: tiny.build(root, arch=arch)[0] for arch in ARCHS}
    yield root, {arch: QwenVL.load(root / e["path"]) for arch, e in entries.items()}
    torch.set_num_threads(threads)


def picture(seed: int, w: int = 160, h: int = 120) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8"))


def test_tiny_build_entry_and_idempotence(models, tmp_path):
    root, _ = models
    entry = tiny.build(root)[0]
    assert entry == {"id": "qwen-tiny", "family": "qwen", "path": "qwen-tiny", "default": True, "options": {}}
    before = (root / "qwen-tiny" / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    tiny.build(root)
    assert time.perf_counter() - t0 < 0.5
    assert (root / "qwen-tiny" / "model.safetensors").stat().st_mtime_ns == before
    # seeded: a fresh build elsewhere writes the same weights
    tiny.build(tmp_path)
    assert (tmp_path / "qwen-tiny" / "model.safetensors").read_bytes() == \
        (root / "qwen-tiny" / "model.safetensors").read_bytes()
    files = {p.name for p in (root / "qwen-tiny").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files


@pytest.mark.parametrize("arch", ARCHS)
def test_model_type_picks_the_class(models, arch):
    root, backends = models
    assert backends[arch].model_type == arch
    assert read_model_type(root / ("qwen-tiny" if arch == "qwen2_5_vl" else "qwen3-tiny")) == arch


def test_unsupported_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedCheckpoint):
        read_model_type(tmp_path)
    with pytest.raises(UnsupportedCheckpoint):
        read_model_type(tmp_path / "nope")


def check_feature_path_equals_pixel_path(backend: QwenVL, key: object) -> None:
    img = picture(1)
    feats, cached = backend.encode([(key, img)])
    assert cached == 0
    gen = GenSettings(12)
    ours = backend.generate([("Describe the image.", feats[0])], gen)[0]
    text = backend.chat_text("Describe the image.", True)
    inputs = backend.processor(images=[img], text=[text], return_tensors="pt").to(backend.device)
    with torch.inference_mode():
        ref = backend.model.generate(**inputs, generation_config=backend._generation_config(gen))
    ref_row = ref[0, inputs["input_ids"].shape[1]:].tolist()
    ref_n = next((k for k, t in enumerate(ref_row) if t in backend.stop_ids), len(ref_row))
    assert ours.tokens == ref_n
    assert ours.text == backend.tokenizer.decode(ref_row[:ref_n], skip_special_tokens=True)
    # the placeholder expansion done from the cached grid equals the processor's
    expanded = text.replace(backend.image_token, backend.image_token * feats[0].n_tokens, 1)
    assert backend.tokenizer([expanded], return_tensors="pt")["input_ids"].tolist() == inputs["input_ids"].tolist()


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_features_give_the_pixel_path_tokens(models, arch):
    check_feature_path_equals_pixel_path(models[1][arch], ("img1", arch))


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_bf16_feature_path(models, arch):
    root = models[0]
    backend = QwenVL.load(root / ("qwen-tiny" if arch == "qwen2_5_vl" else "qwen3-tiny"), "cuda:0")
    assert backend.model.device.type == "cuda"
    check_feature_path_equals_pixel_path(backend, ("gpu", arch))


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_cache_and_batching(models, arch):
    backend = models[1][arch]
    a, b = picture(2), picture(3, 90, 200)
    regions = [(("a", arch), a), (("b", arch), b), (("a", arch), a)]
    before = backend.encoded_regions
    feats, cached = backend.encode(regions)
    assert backend.encoded_regions - before == 2 and cached == 1 and feats[0] is feats[2]
    _, cached2 = backend.encode(regions[:2])
    assert cached2 == 2 and backend.encoded_regions - before == 2
    gen = GenSettings(10)
    batch = backend.generate([("Describe.", feats[0]), ("Hello", None), ("Describe.", feats[1])], gen)
    single = [backend.generate([("Describe.", feats[0])], gen)[0], backend.generate([("Hello", None)], gen)[0],
              backend.generate([("Describe.", feats[1])], gen)[0]]
    assert [g.text for g in batch] == [g.text for g in single]


def test_limits_seeds_and_odd_shapes(models):
    backend = models[1]["qwen2_5_vl"]
    for n in (1, 5):
        out = backend.generate([("Say something.", None)], GenSettings(n))[0]
        assert out.tokens <= n and (out.hit_limit or out.tokens < n)
    s1 = backend.generate([("Say", None)], GenSettings(12, do_sample=True, seed=7))[0]
    s2 = backend.generate([("Say", None)], GenSettings(12, do_sample=True, seed=7))[0]
    s3 = backend.generate([("Say", None)], GenSettings(12, do_sample=True, seed=8))[0]
    assert s1 == s2 and s1.text != s3.text
    feats, _ = backend.encode([("sliver", Image.new("RGB", (600, 2))), ("dot", Image.new("RGB", (1, 1)))])
    assert all(f.n_tokens > 0 for f in feats)
