"""Settings (env + flags), device resolution, registry, micro-batching, RLE, error reasons."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import numpy as np
import pytest

from tator_core import errors, rle
from tator_core.batching import MicroBatcher
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.registry import Registry, RegistryError
from tator_core.settings import ServiceSettings, resolve_device


class DemoSettings(ServiceSettings):
    env_prefix = "TATOR_DEMO_"
    service_name = "demo"
    max_batch: int = 4


def test_settings_defaults_env_then_flags(monkeypatch):
    assert DemoSettings.load([]).max_message_mb == 64
    monkeypatch.setenv("TATOR_DEMO_PORT", "5005")
    monkeypatch.setenv("TATOR_DEMO_MAX_BATCH", "9")
    s = DemoSettings.load(["--max-batch", "12", "--no-warmup", "--device", "cpu"])
    assert (s.port, s.max_batch, s.warmup, s.device) == (5005, 12, False, "cpu")
    with pytest.raises(ValueError, match="port"):
        DemoSettings.load(["--port", "99999"])


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    import torch
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        resolve_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda:3")


def test_registry_missing_files_and_defaults(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"weights")
    reg_file = tmp_path / "registry.yaml"
    reg_file.write_text("""
models:
  - {id: y1, family: yolo, path: w.pt, labelmap: [a, b]}
  - {id: y2, family: yolo, path: gone.pt, default: true}
  - {id: s1, family: sam3, path: /abs/none}
""")
    reg = Registry.load(reg_file, families={"yolo"})
    assert set(reg.entries) == {"y1", "y2"}
    assert reg.default("yolo").id == "y2"
    assert reg.get("y1").exists and reg.get("y1").version() == __import__("hashlib").sha256(b"weights").hexdigest()
    assert not reg.get("y2").exists and "gone.pt" in reg.get("y2").missing_reason and reg.get("y2").version() == ""
    with pytest.raises(errors.TatorError) as ei:
        reg.get("nope")
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    assert Registry.load(tmp_path / "absent.yaml").entries == {}
    reg_file.write_text("models:\n  - {id: x, family: banana, path: p}\n")
    with pytest.raises(RegistryError, match="banana"):
        Registry.load(reg_file)


def test_error_reasons_are_the_proto_list():
    names = {n.removeprefix("ERROR_REASON_")
             for n in common_pb2.ErrorReason.keys()} - {"UNSPECIFIED"}  # noqa: SIM118 (a protobuf enum wrapper, not a dict)
    assert names == errors.REASONS
    with pytest.raises(ValueError):
        errors.TatorError(grpc.StatusCode.INTERNAL, "MADE_UP", "x")


async def test_micro_batcher_batches_and_bounds_queue():
    seen: list[int] = []

    def fn(items):
        seen.append(len(items))
        return [i * 2 for i in items]

    b = MicroBatcher(fn, service="t", max_batch=4, max_delay_ms=50, max_queue=16)
    results = await asyncio.gather(*(b.submit(i) for i in range(8)))
    assert [r for r, _ in results] == [i * 2 for i in range(8)]
    assert max(seen) == 4 and sum(seen) == 8 and len(seen) <= 3
    assert all(st.batch_size >= 1 and st.compute_ms >= 0 for _, st in results)
    await b.close()

    slow = MicroBatcher(lambda items: (__import__("time").sleep(0.2), items)[1], service="t",
                        max_batch=1, max_delay_ms=0, max_queue=2)
    out = await asyncio.gather(*(slow.submit(i) for i in range(6)), return_exceptions=True)
    refused = [o for o in out if isinstance(o, errors.TatorError)]
    assert refused and all(e.reason == "OVERLOADED" for e in refused)
    assert all(not isinstance(o, Exception) or isinstance(o, errors.TatorError) for o in out)
    await slow.close()


async def test_micro_batcher_propagates_failure_to_every_waiter():
    def boom(items):
        raise RuntimeError("device fell over")

    b = MicroBatcher(boom, service="t", max_batch=4, max_delay_ms=20)
    out = await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in out)
    await b.close()


def test_rle_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) > 0.6
        p = rle.encode(m)
        assert (rle.decode(p, m.shape) == m).all()
        assert sum(p.counts) == p.height * p.width


def test_protos_check_passes():
    """Stubs are fresh, buf lint is clean, no breaking change (the same as `make protos-check`)."""
    res = subprocess.run([sys.executable, "scripts/protos.py", "check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stubs: fresh" in res.stdout and "lint: clean" in res.stdout
