"""The whole local stack in one process, for orchestrator tests and the prepass benchmark.

Each model service is started from its own `build_spec(settings)` through
`tator_core.server.start_server` on a free loopback port, over a registry built by the services'
`tiny.build()` functions (plus the committed YOLO fixture when it is present), exactly as
`tator up` would start them as processes. A service can be stopped and started again on the same
port, which is how the tests kill a model service in the middle of a job.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client import REGISTRY

from tator_core.client import ServiceClient
from tator_core.errors import RemoteError, parse_rpc_error
from tator_core.server import RunningServer, start_server

MODEL_SERVICES = ("detector", "sam3", "qwen", "classifier")
_SETTINGS = {"detector": "DetectorSettings", "sam3": "Sam3Settings", "qwen": "QwenSettings",
             "classifier": "ClassifierSettings"}
SYNTH_IMAGES = 8
# Prepass thresholds low enough that the random tiny RF-DETR and SAM3 produce detections and exemplars,
# so every source shows up whether or not the trained YOLO fixture is present.
RICH = dict(detector_conf=0.02, similarity_min_exemplar_score=0.0, similarity_score=0.05)


def build_models(models_dir: Path, head_dataset: Path) -> Path:
    """Every model of the stack and their registry.yaml (`tator models build`, idempotent); returns its
    path. Until the trained YOLO fixture is committed, the tiny models alone (no YOLO entry)."""
    from tator_fixtures import YOLO_FIXTURE

    if YOLO_FIXTURE.is_file():
        from tator_fixtures.models import build_models as build_all

        return build_all(models_dir, data=head_dataset)
    models_dir.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    for service in MODEL_SERVICES:
        tiny = importlib.import_module(f"svc_{service}.tiny")
        kw = {"dataset_dir": head_dataset} if service == "classifier" else {}
        entries.extend(tiny.build(models_dir, seed=0, **kw))
    path = models_dir / "registry.yaml"
    path.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return path


def make_datasets(data_root: Path) -> None:
    """`synth`: a small synthetic dataset (one large image among them); `fuzz_pack`: the fuzz pack's images."""
    from tator_fixtures import FUZZ_PACK_DIR
    from tator_fixtures.steps.orchestrator import install_fuzz_pack
    from tator_fixtures.synth import generate

    if not (data_root / "synth" / "labelmap.txt").is_file():
        generate(data_root / "synth", seed=0, images=SYNTH_IMAGES)
    install_fuzz_pack(FUZZ_PACK_DIR, data_root / "fuzz_pack")


@dataclass
class Stack:
    home: Path
    registry: Path
    servers: dict[str, RunningServer] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    orchestrator: RunningServer | None = None
    app: Any = None
    _stopped: dict[str, Any] = field(default_factory=dict)

    @property
    def data_root(self) -> Path:
        return self.home / "data"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def addresses(self) -> dict[str, str]:
        out = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        if self.orchestrator is not None:
            out["orchestrator"] = self.orchestrator.address
        return out

    def service_settings(self, name: str, port: int) -> Any:
        mod = importlib.import_module(f"svc_{name}.settings")
        kw: dict[str, Any] = {"host": "127.0.0.1", "port": port, "metrics_port": -1, "device": "cpu",
                              "registry": self.registry}
        if name == "classifier":
            kw.update(heads_dir=self.home / "heads", data_root=self.data_root)
        return getattr(mod, _SETTINGS[name])(**kw)

    async def start_service(self, name: str) -> RunningServer:
        """Start a service; after `kill_service` it comes back on the same port with the same servicer."""
        settings = self.service_settings(name, self.ports.get(name, 0))
        spec = self._stopped.pop(name, None)
        if spec is None:
            spec = importlib.import_module(f"svc_{name}.server").build_spec(settings)
        running = await start_server(spec, settings)
        await running.ready.wait()
        if running.warmup_error is not None:
            raise RuntimeError(f"{name} warm-up failed: {running.warmup_error!r}")
        self.servers[name], self.ports[name] = running, running.port
        return running

    async def stop_service(self, name: str) -> None:
        running = self.servers.pop(name)
        await running.stop(0)

    async def kill_service(self, name: str) -> None:
        """Close the service's port at once, in-flight calls included, as a killed process would. Its
        servicer (models, device thread) is kept for the restart: a second copy of a model service in
        one process adds a second torch thread pool, and the two starve the others of the shared CPU."""
        running = self.servers.pop(name)
        await running.set_serving(False)
        await running.server.stop(0)
        self._stopped[name] = running.spec

    async def start_orchestrator(self, **overrides: Any) -> RunningServer:
        from svc_orchestrator.server import build_spec
        from svc_orchestrator.settings import OrchestratorSettings

        addr = self.addresses()
        settings = OrchestratorSettings(
            host="127.0.0.1", port=0, metrics_port=-1, data_root=self.data_root, state_dir=self.state_dir,
            detector_address=addr["detector"], sam3_address=addr["sam3"], qwen_address=addr["qwen"],
            classifier_address=addr["classifier"], **overrides)
        spec = build_spec(settings)
        self.orchestrator = await start_server(spec, settings)
        await self.orchestrator.ready.wait()
        self.app = spec.app  # type: ignore[attr-defined]  # set by the orchestrator's build_spec
        return self.orchestrator

    async def close(self) -> None:
        if self.orchestrator is not None:
            await self.orchestrator.stop(0)
        for name in list(self.servers):
            await self.stop_service(name)
        for spec in self._stopped.values():
            if spec.shutdown is not None:
                await spec.shutdown()


async def start_orchestrator_only(home: Path) -> tuple[RunningServer, Any]:
    """The orchestrator alone (read RPCs need no model service; their addresses point nowhere) over
    home/data; returns the server and its spec (spec.app is the state)."""
    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings

    nowhere = "127.0.0.1:1"
    settings = OrchestratorSettings(host="127.0.0.1", port=0, metrics_port=-1, data_root=home / "data",
                                    state_dir=home / "state", detector_address=nowhere, sam3_address=nowhere,
                                    qwen_address=nowhere, classifier_address=nowhere, health_timeout_s=0.5)
    spec = build_spec(settings)
    running = await start_server(spec, settings)
    await running.ready.wait()
    return running, spec


async def start_stack(home: Path, models_dir: Path, **orchestrator_overrides: Any) -> Stack:
    make_datasets(home / "data")
    registry = build_models(models_dir, home / "data" / "synth")
    stack = Stack(home, registry)
    for name in MODEL_SERVICES:
        await stack.start_service(name)
    await stack.start_orchestrator(**orchestrator_overrides)
    return stack


def rpc_counts(services: tuple[str, ...] = MODEL_SERVICES) -> dict[tuple[str, str], float]:
    """RPCs served so far per (service, method), from the interceptor's counter (same process)."""
    out: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "tator_rpc":
            continue
        for s in metric.samples:
            if s.name == "tator_rpc_total" and s.labels["service"] in services:
                key = (s.labels["service"], s.labels["method"])
                out[key] = out.get(key, 0.0) + s.value
    return out


def images_decoded(service: str) -> float:
    return REGISTRY.get_sample_value("tator_images_decoded_total", {"service": service}) or 0.0


@contextlib.asynccontextmanager
async def orchestrator_client(stack: Stack) -> AsyncIterator[ServiceClient]:
    """A client of the stack's orchestrator with a timeout long enough for a whole prepass on CPU."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc

    client = ServiceClient(stack.orchestrator.address, orchestrator_pb2_grpc.OrchestratorServiceStub, timeout_s=300)
    try:
        yield client
    finally:
        await client.close()


async def expect_error(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> RemoteError:
    """Await an RPC that must fail with `code` and the ErrorInfo `reason`; returns the parsed error."""
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    err = parse_rpc_error(exc.value)
    assert (err.code, err.reason) == (code, reason), err
    return err
