"""The shared model lifecycle (tator_core/lifecycle.py) against a tiny real backend: a torch linear
layer saved to disk, loaded with torch.load, run with a real forward on the device thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
import pytest
import torch
import yaml

from tator_core import errors
from tator_core.lifecycle import BatchLimits, ModelRepository
from tator_core.registry import ModelEntry, Registry


class Linear:
    """A loaded model: a 4 -> 2 linear layer."""

    def __init__(self, layer: torch.nn.Linear) -> None:
        self.layer = layer
        self.released = False


class LinearBackend:
    """The family contract for Linear; `gate` lets a test hold the device thread mid-forward."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.warmups = 0
        self.gate = threading.Event()
        self.gate.set()
        self.in_forward = threading.Event()

    def load(self, entry: ModelEntry, device: str) -> Linear:
        self.loads.append(entry.id)
        layer = torch.nn.Linear(4, 2)
        layer.load_state_dict(torch.load(entry.path, weights_only=True))
        return Linear(layer.to(device).eval())

    def warmup(self, backend: Linear) -> None:
        self.warmups += 1
        self.forward(backend, [[0.0] * 4])

    def describe(self, backend: Linear) -> tuple[Sequence[str], Mapping[str, str]]:
        return ["a", "b"], {"inputs": str(backend.layer.in_features)}

    def release(self, backend: Linear) -> None:
        backend.released = True

    def forward(self, backend: Linear, rows: list[list[float]]) -> list[list[float]]:
        self.in_forward.set()
        self.gate.wait(10)
        with torch.no_grad():
            return backend.layer(torch.tensor(rows)).tolist()


def _weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    return path


@pytest.fixture()
def reg_path(tmp_path: Path) -> Path:
    _weights(tmp_path / "m1.pt", 1)
    _weights(tmp_path / "m2.pt", 2)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"id": "m1", "family": "yolo", "path": "m1.pt", "default": True},
        {"id": "m2", "family": "yolo", "path": "m2.pt"},
        {"id": "bad", "family": "yolo", "path": "bad.pt"},
        {"id": "gone", "family": "yolo", "path": "gone.pt"},
        {"id": "q", "family": "qwen", "path": "m1.pt"},
    ]}))
    return path


def _repo(reg_path: Path, backend: LinearBackend, **kw) -> ModelRepository[Linear]:
    return ModelRepository(Registry.load(reg_path), "cpu", backend, service="t", families=("yolo",), **kw)


async def _predict(repo: ModelRepository[Linear], backend: LinearBackend, mid: str, row: list[float]):
    model = await repo.acquire(mid)
    batcher = repo.batcher(mid, lambda items: [backend.forward(model, [r])[0] for r in items])
    return await batcher.submit(row)


async def test_states_load_once_warm_and_describe(reg_path: Path) -> None:
    backend = LinearBackend()
    repo = _repo(reg_path, backend)
    assert repo.ids() == ["m1", "m2", "bad", "gone"]  # only its families
    states = {s.id: s for s in repo.statuses()}
    assert states["m1"].state == "AVAILABLE" and states["m1"].is_default and not states["m2"].is_default
    assert states["gone"].state == "MISSING" and "gone.pt" in states["gone"].reason
    await asyncio.gather(repo.acquire("m1"), repo.acquire("m1"))
    assert backend.loads == ["m1"] and backend.warmups == 1
    status = repo.status("m1")
    assert (status.state, status.loaded, status.labelmap, status.extra) == ("READY", True, ["a", "b"],
                                                                             {"inputs": "4"})
    assert len(status.version) == 64
    out, stats = await _predict(repo, backend, "m1", [1.0, 0.0, 0.0, 0.0])
    assert len(out) == 2 and stats.batch_size == 1
    await repo.close()


async def test_errors_name_the_model(reg_path: Path) -> None:
    backend = LinearBackend()
    repo = _repo(reg_path, backend)
    for mid, code, reason in (("nobody", grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),
                              ("q", grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),  # another service's family
                              ("gone", grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING"),
                              ("bad", grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED")):
        with pytest.raises(errors.TatorError) as info:
            await repo.acquire(mid)
        assert (info.value.code, info.value.reason) == (code, reason) and mid in info.value.message
    await repo.close()


async def test_a_failed_load_is_not_retried_until_the_file_changes(reg_path: Path) -> None:
    backend = LinearBackend()
    repo = _repo(reg_path, backend)
    for _ in range(3):
        with pytest.raises(errors.TatorError):
            await repo.load("bad")
    assert backend.loads == ["bad"]
    assert repo.status("bad").state == "FAILED"
    _weights(reg_path.parent / "bad.pt", 3)
    assert repo.status("bad").state == "AVAILABLE"
    await repo.load("bad")
    assert repo.status("bad").state == "READY" and backend.loads == ["bad", "bad"]
    await repo.close()


async def test_an_unloaded_model_stays_down_until_loaded(reg_path: Path) -> None:
    backend = LinearBackend()
    repo = _repo(reg_path, backend)
    model = await repo.acquire("m1")
    await repo.unload("m1")
    assert model.released
    status = repo.status("m1")
    assert (status.state, status.loaded) == ("AVAILABLE", False) and "unloaded" in status.reason
    with pytest.raises(errors.TatorError) as info:
        await repo.acquire("m1")
    assert (info.value.code, info.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_UNLOADED")
    assert "m1" in info.value.message and info.value.metadata["model_id"] == "m1"
    assert backend.loads == ["m1"]  # no silent reload
    await repo.load("m1")
    assert (await repo.acquire("m1")) is not model and backend.loads == ["m1", "m1"]
    await repo.close()


async def test_unload_fails_queued_calls_at_once_and_lets_the_running_batch_finish(reg_path: Path) -> None:
    backend = LinearBackend()
    repo = _repo(reg_path, backend, limits=BatchLimits(max_batch=1, max_delay_ms=0, max_queue=16))
    await repo.acquire("m1")
    backend.gate.clear()
    calls = [asyncio.create_task(_predict(repo, backend, "m1", [float(i), 0, 0, 0])) for i in range(5)]
    await asyncio.to_thread(backend.in_forward.wait, 5)  # the first call holds the device thread
    unloading = asyncio.create_task(repo.unload("m1"))
    out = await asyncio.wait_for(asyncio.gather(*calls[1:], return_exceptions=True), 2)  # device still held
    assert all(isinstance(o, errors.TatorError) and (o.code, o.reason) == (grpc.StatusCode.UNAVAILABLE, "MODEL_UNLOADED")
               and "m1" in o.message for o in out), out
    assert not calls[0].done() and not unloading.done()
    backend.gate.set()
    first, _ = await asyncio.wait_for(calls[0], 5)
    assert len(first) == 2  # the batch on the device finished with its result
    await asyncio.wait_for(unloading, 5)
    assert not repo.is_loaded("m1")
    await repo.close()



async def test_unload_fails_calls_waiting_for_the_device_thread_at_once(reg_path: Path) -> None:
    """Calls that go to the device thread one by one (ModelRepository.run, as SAM3 and Qwen call their
    models): on unload, those the thread has not started fail at once, UNAVAILABLE naming the model, and
    never run; the running one finishes; a caller that cancels its own call still sees a cancellation."""
    backend = LinearBackend()
    repo = _repo(reg_path, backend)
    model = await repo.acquire("m1")
    ran: list[int] = []

    def forward(i: int) -> list[list[float]]:
        ran.append(i)
        return backend.forward(model, [[float(i), 0, 0, 0]])

    backend.gate.clear()
    backend.in_forward.clear()  # set by the warm-up
    calls = [asyncio.create_task(repo.run(forward, i, model_id="m1")) for i in range(4)]
    await asyncio.to_thread(backend.in_forward.wait, 5)  # call 0 holds the device thread
    gone = asyncio.create_task(repo.run(forward, 9, model_id="m1"))
    await asyncio.sleep(0)
    gone.cancel()
    unloading = asyncio.create_task(repo.unload("m1"))
    out = await asyncio.wait_for(asyncio.gather(*calls[1:], return_exceptions=True), 2)  # device still held
    assert all(isinstance(o, errors.TatorError) and (o.code, o.reason) == (grpc.StatusCode.UNAVAILABLE, "MODEL_UNLOADED")
               and "m1" in o.message and o.metadata["model_id"] == "m1" for o in out), out
    assert len({id(o) for o in out}) == 3  # one error per caller: the interceptor stamps each one's request id
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert not calls[0].done() and not unloading.done()
    backend.gate.set()
    result, stats = await asyncio.wait_for(calls[0], 5)
    assert len(result[0]) == 2 and stats.compute_ms > 0
    await asyncio.wait_for(unloading, 5)
    assert ran == [0] and model.released  # the refused calls never touched the model
    await repo.close()

async def test_set_default_is_persisted_in_the_registry(reg_path: Path) -> None:
    repo = _repo(reg_path, LinearBackend())
    assert repo.resolve("", "yolo") == "m1"
    await repo.set_default("m2")
    assert repo.resolve("", "yolo") == "m2" and repo.status("m2").is_default and not repo.status("m1").is_default
    again = _repo(reg_path, LinearBackend())  # a restarted service reads the file
    assert again.resolve("", "yolo") == "m2"
    with pytest.raises(errors.TatorError) as info:
        await repo.set_default("nobody")
    assert info.value.reason == "MODEL_NOT_FOUND"
    await repo.close()
    await again.close()


async def test_warm_defaults_loads_each_default_and_survives_a_broken_one(reg_path: Path) -> None:
    doc = yaml.safe_load(reg_path.read_text())
    doc["models"].append({"id": "r-bad", "family": "rfdetr", "path": "bad.pt", "default": True})
    reg_path.write_text(yaml.safe_dump(doc))
    backend = LinearBackend()
    repo = ModelRepository(Registry.load(reg_path), "cpu", backend, service="t", families=("yolo", "rfdetr"))
    await repo.warm_defaults()
    assert repo.is_loaded("m1") and repo.status("r-bad").state == "FAILED"
    await repo.close()
