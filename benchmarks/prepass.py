"""Prepass throughput: over gRPC vs the same backends called in-process, with the per-stage breakdown.

Starts the whole stack in this process (tiny models of every service, the YOLO fixture when it is
present) and runs the prepass flow three ways on the same image content, each image a fresh sha so
no service cache carries over between modes (the PNGs differ only in a text chunk):

  rpc      the Orchestrator.Prepass RPC (refresh): transport both ways, plan, flow, cache write;
  grpc     the flow function over the typed gRPC clients (no orchestrator RPC, no cache);
  inproc   the same flow function over clients that call the services' servicer methods directly —
           same service code and models, no serialisation and no sockets.

Prints one JSON line. `--quick` runs fewer images.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def variants(n: int, modes: int) -> list[list[bytes]]:
    """n synthetic scenes (no large ones), each as `modes` PNGs with identical pixels and distinct bytes."""
    from PIL.PngImagePlugin import PngInfo

    from tator_fixtures.synth import is_large, render_scene

    out = []
    index = 0
    while len(out) < n:
        if not is_large(index):
            image, _ = render_scene(2024, index)
            row = []
            for m in range(modes):
                info = PngInfo()
                info.add_text("variant", str(m))
                buf = io.BytesIO()
                image.save(buf, format="PNG", pnginfo=info)
                row.append(buf.getvalue())
            out.append(row)
        index += 1
    return out


class _Context:
    """Stand-in for grpc's servicer context; the servicers do not touch it."""


def servicer_methods(spec: Any) -> dict[str, Any]:
    """The servicer's bound RPC methods, captured through its own add_to_server."""
    methods: dict[str, Any] = {}

    class Capture:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            for h in handlers:
                for name, handler in getattr(h, "_method_handlers", {}).items():
                    methods[name.rsplit("/", 1)[-1]] = handler.unary_unary or handler.unary_stream

        def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
            for name, handler in handlers.items():
                methods[name] = handler.unary_unary or handler.unary_stream

    spec.add_to_server(Capture())
    return methods


def inprocess_clients(stack: Any, grpc_clients: Any) -> Any:
    """A ServiceClients look-alike whose typed clients call the servicers directly."""
    import copy

    from svc_orchestrator.clients import CallStats

    class Direct:
        def __init__(self, typed: Any, methods: dict[str, Any]) -> None:
            self.typed, self.methods, self.held = typed, methods, set()

        def __getattr__(self, name: str) -> Any:
            attr = getattr(type(self.typed), name)
            return lambda *a, **kw: attr(self, *a, **kw)

        async def call(self, method: str, request: Any, *, image_data: bytes | None = None,
                       timeout_s: float | None = None) -> Any:
            started = time.perf_counter()
            if image_data is not None and request.image.sha256 not in self.held:
                request.image.data = image_data
                self.held.add(request.image.sha256)
            response = await self.methods[method](request, _Context())
            return response, CallStats(1, 0, (time.perf_counter() - started) * 1000)

    out = copy.copy(grpc_clients)
    for name in ("detector", "sam3", "qwen", "classifier"):
        setattr(out, name, Direct(getattr(grpc_clients, name), servicer_methods(stack.servers[name].spec)))
    return out


async def run(args: argparse.Namespace) -> dict:
    from stack_fixture import start_stack

    from svc_orchestrator.prepass.flow import FlowInput, ImageInput, run_prepass
    from tator_core.client import ServiceClient, image_ref
    from tator_core.enums import short_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
    from tator_core.images import decode_image, sha256_hex
    from tator_core.timestamps import milliseconds
    from tator_fixtures import YOLO_FIXTURE

    home = Path(tempfile.mkdtemp(prefix="tator-bench-prepass-"))
    started = time.perf_counter()
    stack = await start_stack(home, args.models_dir)
    startup_s = time.perf_counter() - started
    app = stack.app
    rpc = ServiceClient(stack.orchestrator.address, pb_grpc.OrchestratorServiceStub, timeout_s=600)
    # Without the trained YOLO the random tiny detectors find nothing at the defaults: lower the
    # thresholds so every stage (similarity included) has work.
    low = not YOLO_FIXTURE.is_file()
    cfg = pb.PrepassConfig(detector_conf=0.02, similarity_min_exemplar_score=0.0, similarity_score=0.05) if low \
        else pb.PrepassConfig()
    ctx = app.runner.context("synth", cfg)
    plan, _ = await app.runner.plan(ctx)
    clients = {"grpc": app.clients, "inproc": inprocess_clients(stack, app.clients)}
    images = variants(args.images, 3)

    async def flow(mode: str, data: bytes) -> Any:
        img = decode_image(data)
        inp = FlowInput(ImageInput(sha256_hex(data), data, "", img.width, img.height), ctx, plan)
        return await run_prepass(clients[mode], inp, app.runner.synonyms)

    async def via_rpc(data: bytes) -> Any:
        req = pb.PrepassRequest(image=image_ref(data), dataset_id="synth", config=cfg, refresh=True)
        return (await rpc.call("Prepass", req)).result

    # warm every path once (model first-call costs, connections) on an image not measured
    warm = variants(args.images + 1, 3)[-1]
    await via_rpc(warm[0])
    await flow("grpc", warm[1])
    await flow("inproc", warm[2])

    totals: dict[str, float] = defaultdict(float)
    stage_ms: dict[str, dict[str, float]] = {m: defaultdict(float) for m in ("rpc", "grpc", "inproc")}
    bytes_sent: dict[str, int] = defaultdict(int)
    candidates: dict[str, int] = defaultdict(int)
    modes = ("rpc", "grpc", "inproc")
    for i, row in enumerate(images):  # modes interleaved, order rotated: machine load hits all three alike
        for k in range(3):
            mode, data = modes[(i + k) % 3], row[(i + k) % 3]
            t = time.perf_counter()
            result = await (via_rpc(data) if mode == "rpc" else flow(mode, data))
            totals[mode] += time.perf_counter() - t
            candidates[mode] += len(result.candidates)
            for s in result.stages:
                stage_ms[mode][short_name(pb.PrepassStage, s.stage)] += milliseconds(s.duration)
                bytes_sent[mode] += s.image_bytes_sent
    n = len(images)
    t = time.perf_counter()
    for row in images:
        req = pb.PrepassRequest(image=image_ref(row[0]), dataset_id="synth", config=cfg)
        assert (await rpc.call("Prepass", req)).result.cache_hit
    hit_ms = (time.perf_counter() - t) / n * 1000
    await rpc.close()
    await stack.close()
    ips = {m: n / totals[m] for m in totals}
    return {
        "bench": "prepass", "device": "cpu", "images": n, "yolo_fixture": not low,
        "config": "low-thresholds" if low else "default",
        "rpc_images_per_s": round(ips["rpc"], 3), "grpc_flow_images_per_s": round(ips["grpc"], 3),
        "inprocess_flow_images_per_s": round(ips["inproc"], 3),
        "grpc_vs_inprocess_ratio": round(ips["grpc"] / ips["inproc"], 3),
        "rpc_vs_inprocess_ratio": round(ips["rpc"] / ips["inproc"], 3),
        "stage_ms_per_image": {m: {k: round(v / n, 1) for k, v in stage_ms[m].items()} for m in stage_ms},
        "image_bytes_sent_per_image": {m: round(bytes_sent[m] / n) for m in ("rpc", "grpc")},
        "candidates_per_image": {m: round(candidates[m] / n, 1) for m in candidates},
        "cache_hit_ms": round(hit_ms, 2), "stack_startup_s": round(startup_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 images instead of 12")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where the tiny models are built (default $TATOR_HOME/bench/models; reused)")
    args = parser.parse_args()
    args.images = args.images or (4 if args.quick else 12)
    os.environ.setdefault("TATOR_HOME", str(REPO / ".tator"))
    from tator_core.offline import enforce_offline
    from tator_core.settings import tator_home

    enforce_offline()
    args.models_dir = args.models_dir or tator_home() / "bench" / "models"
    import logging

    logging.disable(logging.WARNING)
    print(json.dumps(asyncio.run(run(args)), sort_keys=True))


if __name__ == "__main__":
    main()
