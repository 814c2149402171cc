"""Closed-loop gRPC load client for Tator services (grpc.aio).

    .venv/bin/python benchmarks/load.py [--quick]
        self-contained run: starts a stub DetectorService in-process on the real
        tator_core server stack (interceptor, protovalidate, image store) and
        measures the image protocol: sha-only calls vs bytes in every call,
        plus a burst of invalid requests that must be counted as errors.
    .venv/bin/python benchmarks/load.py --config deploy/ghz/detect.json --image IMG \
        [--target HOST:PORT | dns:///detector-headless:50051] [--concurrency 8] [--total 500]
        drives a running service with the same call and data as the ghz config.
    .venv/bin/python benchmarks/load.py --write-protoset [PATH]
        writes the self-contained descriptor set the ghz configs point at.
    .venv/bin/python benchmarks/load.py --config deploy/ghz/detect.json --image IMG --emit-ghz OUT
        writes a ghz config with the image placeholders filled in.

Every run prints ONE JSON line: RPS, p50/p95/p99 latency and counts per gRPC
status (and per error reason). Why not h2load: a gRPC error is HTTP 200 with
`grpc-status` in the trailers, so h2load counts failures as successes; this
client reads the status of every call. Why not ghz alone: ghz is not
installable here, and it does not follow the image protocol (bytes once, then
the sha256; resend on IMAGE_NOT_CACHED), which this client gets from
`tator_core.client.ServiceClient`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import importlib
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import grpc
import load_table  # the one table the ghz configs are generated from
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.images import sha256_hex

SHA_PLACEHOLDER = "REPLACE_WITH_IMAGE_SHA256"
B64_PLACEHOLDER = "REPLACE_WITH_IMAGE_BASE64"
GHZ_DIR = ROOT / "deploy" / "ghz"
PROTOSET = ROOT / "build" / "ghz" / "tator.protoset"
GEN = ROOT / "tator_core" / "gen"


def _import_generated() -> None:
    """Import every generated tator module so the default pool knows all services."""
    for path in sorted((GEN / "tator").rglob("*_pb2.py")):
        importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))


def resolve_call(call: str) -> tuple[Any, Any]:
    """'tator.detector.v1.DetectorService.Detect' (or '.../Detect') -> (method descriptor, stub class)."""
    _import_generated()
    service_name, _, method_name = call.replace("/", ".").rpartition(".")
    pool = descriptor_pool.Default()
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise SystemExit(f"unknown service {service_name!r} in call {call!r}") from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise SystemExit(f"{service_name} has no method {method_name!r}; it has {sorted(service.methods_by_name)}")
    grpc_module = importlib.import_module("tator_core.gen." + service.file.name[:-len(".proto")].replace("/", ".")
                                          + "_pb2_grpc")
    return method, getattr(grpc_module, f"{service.name}Stub")


def render_data(data: Any, image: bytes | None) -> Any:
    """Fill the image placeholders of a ghz `data` object."""
    text = json.dumps(data)
    if SHA_PLACEHOLDER in text or B64_PLACEHOLDER in text:
        if image is None:
            raise SystemExit("this call's data has an image placeholder: pass --image PATH")
        text = text.replace(SHA_PLACEHOLDER, sha256_hex(image))
        text = text.replace(B64_PLACEHOLDER, base64.b64encode(image).decode())
    return json.loads(text)


def build_request(method: Any, data: Any, image: bytes | None) -> Any:
    cls = message_factory.GetMessageClass(method.input_type)
    return json_format.ParseDict(render_data(data, image), cls())


def load_config(path: Path) -> dict:
    cfg = json.loads(Path(path).read_text())
    if "call" not in cfg or "data" not in cfg:
        raise SystemExit(f"{path}: a ghz config needs 'call' and 'data'")
    return cfg


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile, the definition ghz reports."""
    if not sorted_ms:
        return 0.0
    rank = max(1, int(-(-q * len(sorted_ms) // 100)))
    return round(sorted_ms[min(rank, len(sorted_ms)) - 1], 3)


async def open_client(target: str, stub_cls: Any, timeout_s: float, max_message_mb: int = 64) -> ServiceClient:
    # channel_options() selects round_robin, so a dns:/// target over a headless
    # Service spreads calls over every pod.
    return ServiceClient(target, stub_cls, max_message_mb=max_message_mb, timeout_s=timeout_s)


async def run_load(target: str, call: str, request: Any, *, image: bytes | None, concurrency: int, total: int,
                   timeout_s: float = 60.0, bytes_every_call: bool = False, preload: bool = True) -> dict:
    """Closed loop: `concurrency` workers issue `total` calls, each waiting for its answer."""
    method, stub_cls = resolve_call(call)
    has_image = "image" in request.DESCRIPTOR.fields_by_name and request.HasField("image")
    # The image protocol applies when the request names the image by sha only.
    use_protocol = image is not None and has_image and not bytes_every_call and not request.image.HasField("data")
    if image is not None and has_image and bytes_every_call:
        request.image.data = image
    client = await open_client(target, stub_cls, timeout_s)
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    issued = 0
    inline_bytes = 0  # image bytes carried by requests outside the image protocol

    async def one() -> None:
        # ServiceClient edits request.image under the image protocol: one copy per call then.
        nonlocal inline_bytes
        req = copy.deepcopy(request) if use_protocol else request
        if not use_protocol and has_image:
            inline_bytes += len(req.image.data)
        start = time.perf_counter()
        try:
            await client.call(method.name, req, image_data=image if use_protocol else None)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            err = parse_rpc_error(exc)
            code = err.code.name
            if err.reason:
                reasons[f"{code}:{err.reason}"] += 1
        latencies.append((time.perf_counter() - start) * 1000.0)
        statuses[code] += 1

    async def worker() -> None:
        nonlocal issued
        while issued < total:
            issued += 1
            await one()

    try:
        if preload and use_protocol:  # untimed: the service decodes and caches the image once
            await client.call(method.name, copy.deepcopy(request), image_data=image)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, total)))))
        wall = time.perf_counter() - t0
    finally:
        await client.close()
    lat = sorted(latencies)
    done = len(lat)
    return {
        "call": call, "target": target, "concurrency": concurrency, "total": done,
        "rps": round(done / wall, 1) if wall > 0 else 0.0,
        "ok_rps": round(statuses["OK"] / wall, 1) if wall > 0 else 0.0,
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
        "mean_ms": round(sum(lat) / done, 3) if done else 0.0,
        "wall_s": round(wall, 3), "statuses": dict(statuses), "reasons": dict(reasons),
        "image_protocol": use_protocol, "image_bytes_sent": client.image_bytes_sent + inline_bytes,
        "resends": client.resends,
    }


# --- ghz support -------------------------------------------------------------

def write_protoset(path: Path = PROTOSET) -> Path:
    """Every tator .proto and its imports (buf.validate, google.protobuf) as one
    FileDescriptorSet, dependencies first: what `ghz --protoset` needs, built
    from the generated descriptors because no .proto source of buf.validate exists."""
    _import_generated()
    pool = descriptor_pool.Default()
    ordered: list[Any] = []
    seen: set[str] = set()

    def visit(fd: Any) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        ordered.append(fd)

    for proto in sorted((ROOT / "protos").rglob("*.proto")):
        visit(pool.FindFileByName(str(proto.relative_to(ROOT / "protos"))))
    fds = descriptor_pb2.FileDescriptorSet()
    for fd in ordered:
        fd.CopyToProto(fds.file.add())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fds.SerializeToString())
    return path


def write_ghz(folder: Path = GHZ_DIR) -> list[Path]:
    """(Re)generate deploy/ghz/<name>.json from the table; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in load_table.CALLS:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(load_table.render(name), indent=2) + "\n")
        out.append(path)
    return out


def emit_ghz(config: Path, image: bytes, out: Path, bytes_every_call: bool) -> dict:
    cfg = load_config(config)
    data = render_data(cfg["data"], image)
    if bytes_every_call and isinstance(data.get("image"), dict):
        data["image"]["data"] = base64.b64encode(image).decode()
    cfg["data"] = data
    if "protoset" in cfg:
        cfg["protoset"] = str(write_protoset(ROOT / cfg["protoset"]))
    Path(out).write_text(json.dumps(cfg, indent=2) + "\n")
    return {"emitted": str(out), "call": cfg["call"], "protoset": cfg.get("protoset"),
            "image_sha256": sha256_hex(image), "bytes_every_call": bytes_every_call}


# --- self-contained benchmark -------------------------------------------------

def _noise_png(side: int, seed: int = 0) -> bytes:
    """Incompressible pixels so the PNG is as large as a real photo of that size."""
    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


async def _start_stub_detector() -> Any:
    """A DetectorService whose Detect only resolves the image (decode once,
    cache by sha): the transport + validation + image-store cost of a real
    service, without a model."""
    from tator_core.convert import box_pb
    from tator_core.gen.tator.common.v1 import common_pb2
    from tator_core.gen.tator.detector.v1 import detector_pb2, detector_pb2_grpc
    from tator_core.images import ImageStore
    from tator_core.server import ServiceSpec, start_server
    from tator_core.settings import ServiceSettings

    store = ImageStore(service="load-stub")

    class StubDetector(detector_pb2_grpc.DetectorServiceServicer):
        async def Detect(self, request: Any, context: Any) -> Any:
            img = store.resolve(request.image)
            box = box_pb((0, 0, img.width / 2, img.height / 2))
            return detector_pb2.DetectResponse(detections=[common_pb2.Detection(
                box=box, label="circle", class_id=0, score=0.9, source=common_pb2.DETECTION_SOURCE_YOLO, model_id="stub")])

    spec = ServiceSpec("load-stub", "tator.detector.v1.DetectorService",
                       lambda server: detector_pb2_grpc.add_DetectorServiceServicer_to_server(StubDetector(), server))
    running = await start_server(spec, ServiceSettings(port=0, metrics_port=-1, warmup=False))
    await running.ready.wait()
    return running


async def self_benchmark(quick: bool) -> dict:
    total = 120 if quick else 600
    concurrency = 8
    image = _noise_png(512 if quick else 1024)
    cfg = load_config(GHZ_DIR / "detect.json")
    method, _ = resolve_call(cfg["call"])
    running = await _start_stub_detector()
    try:
        target = running.address
        sha_only = await run_load(target, cfg["call"], build_request(method, cfg["data"], image), image=image,
                                  concurrency=concurrency, total=total)
        with_bytes = await run_load(target, cfg["call"], build_request(method, cfg["data"], image), image=image,
                                    concurrency=concurrency, total=total, bytes_every_call=True)
        bad = build_request(method, cfg["data"], image)
        bad.image.sha256 = "not-a-sha"  # protovalidate pattern -> INVALID_ARGUMENT
        invalid = await run_load(target, cfg["call"], bad, image=None, concurrency=concurrency, total=total // 4)
    finally:
        await running.stop(0)
    keep = ("rps", "p50_ms", "p95_ms", "p99_ms", "statuses", "image_bytes_sent")
    return {
        "bench": "load", "mode": "self", "quick": quick, "call": cfg["call"], "concurrency": concurrency,
        "image_bytes": len(image),
        "sha_only": {k: sha_only[k] for k in keep},
        "bytes_every_call": {k: with_bytes[k] for k in keep},
        "invalid_requests": {k: invalid[k] for k in ("rps", "statuses", "reasons")},
        "rps_ratio_sha_only_vs_bytes": round(sha_only["rps"] / with_bytes["rps"], 2) if with_bytes["rps"] else None,
        "wire_bytes_ratio_bytes_vs_sha_only": (round(with_bytes["image_bytes_sent"] / sha_only["image_bytes_sent"], 1)
                                               if sha_only["image_bytes_sent"] else None),
    }


def _default_target(cfg: dict) -> str:
    return cfg.get("host") or "127.0.0.1:50051"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller self-contained run")
    p.add_argument("--config", type=Path, help="a ghz config (deploy/ghz/*.json): call + data")
    p.add_argument("--call", choices=sorted(load_table.CALLS), help="shorthand for --config deploy/ghz/<name>.json")
    p.add_argument("--image", type=Path, help="image filling the config's placeholders")
    p.add_argument("--target", help="host:port or dns:///svc-headless:port (default: the config's host)")
    p.add_argument("--concurrency", type=int, help="parallel in-flight calls (default: the config's)")
    p.add_argument("--total", type=int, help="calls to make (default: the config's)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-call deadline, seconds")
    p.add_argument("--bytes-every-call", action="store_true", help="send the image bytes in every request")
    p.add_argument("--write-protoset", nargs="?", const=str(PROTOSET), metavar="PATH",
                   help=f"write the ghz descriptor set (default {PROTOSET.relative_to(ROOT)})")
    p.add_argument("--emit-ghz", type=Path, metavar="OUT", help="write the ghz config with placeholders filled")
    p.add_argument("--write-ghz", action="store_true", help="regenerate deploy/ghz/*.json from load_table.py")
    args = p.parse_args(argv)

    if args.write_ghz:
        print(json.dumps({"written": [str(f.relative_to(ROOT)) for f in write_ghz()]}))
        return 0

    if args.write_protoset:
        path = write_protoset(Path(args.write_protoset))
        print(json.dumps({"protoset": str(path), "bytes": path.stat().st_size}))
        return 0
    config = args.config or (GHZ_DIR / f"{args.call}.json" if args.call else None)
    if config is None:
        print(json.dumps(asyncio.run(self_benchmark(args.quick))))
        return 0
    cfg = load_config(config)
    image = args.image.read_bytes() if args.image else None
    if args.emit_ghz:
        if image is None:
            raise SystemExit("--emit-ghz needs --image")
        print(json.dumps(emit_ghz(config, image, args.emit_ghz, args.bytes_every_call)))
        return 0
    method, _ = resolve_call(cfg["call"])
    request = build_request(method, cfg["data"], image)

    async def drive() -> dict:
        return await run_load(args.target or _default_target(cfg), cfg["call"], request, image=image,
                              concurrency=args.concurrency or int(cfg.get("concurrency", 8)),
                              total=args.total or int(cfg.get("total", 200)), timeout_s=args.timeout,
                              bytes_every_call=args.bytes_every_call)

    result = asyncio.run(drive())
    print(json.dumps(result))
    return 0 if result["statuses"].get("OK", 0) == result["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
