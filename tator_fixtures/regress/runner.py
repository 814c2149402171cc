"""Run the registered steps against a stack and assemble the summary.

Each step runs under its own deadline with its own seeded rng. A step whose service has no address or
is not SERVING is skipped with the reason, so the harness runs while services are still landing; the
baseline diff (diff.py) then decides whether a skip is a regression.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tator_fixtures import FUZZ_PACK_DIR, REPO_ROOT, default_data_root, default_models_dir
from tator_fixtures.fuzz_pack import FuzzPack, load_fuzz_pack
from tator_fixtures.regress.registry import RESULT_FIELDS, Step, StepContext, registered_steps
from tator_fixtures.regress.summary import SUMMARY_SCHEMA, canonical_hash, fingerprint, input_hashes, pipeline_version

DEFAULT_STACK_CONFIG = REPO_ROOT / "config" / "stack.yaml"
DEFAULT_ADDRESSES = {
    "orchestrator": "127.0.0.1:50050",
    "detector": "127.0.0.1:50051",
    "sam3": "127.0.0.1:50052",
    "qwen": "127.0.0.1:50053",
    "classifier": "127.0.0.1:50054",
}
HEALTH_TIMEOUT_S = 3.0


def stack_addresses(stack_config: Path | None = None) -> dict[str, str]:
    """Service addresses from the stack config (`services: {name: {address: ...}}`); the local
    defaults when the file is absent."""
    path = stack_config or DEFAULT_STACK_CONFIG
    if not path.is_file():
        if stack_config is not None:
            raise FileNotFoundError(f"stack config {path} not found")
        return dict(DEFAULT_ADDRESSES)
    services = (yaml.safe_load(path.read_text()) or {}).get("services") or {}
    return {name: str(cfg["address"]) for name, cfg in services.items() if isinstance(cfg, dict) and cfg.get("address")}


async def health(address: str) -> str:
    """The service's overall grpc.health.v1 status name, or UNREACHABLE."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tator_core.auth import aio_channel

    try:
        async with aio_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT_S
            )
    except grpc.aio.AioRpcError as exc:
        unreachable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return "UNREACHABLE" if unreachable else exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {
    "int": _is_int,
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
    "dict[str,int]": lambda v: isinstance(v, dict) and all(map(_is_int, v.values())),
    "dict[str,float]": lambda v: isinstance(v, dict) and all(map(_is_number, v.values())),
    "dict[str,str]": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
}


def _check_result(result: Any) -> dict[str, Any]:
    """Validate a step's return value against RESULT_FIELDS, so summaries stay strictly typed."""
    if not isinstance(result, dict):
        raise TypeError(f"step returned {type(result).__name__}, not dict")
    for key, value in result.items():
        kind = RESULT_FIELDS.get(key)
        if kind is None:
            raise TypeError(f"unknown result field {key!r} (allowed: {', '.join(RESULT_FIELDS)})")
        if not _TYPE_CHECKS[kind](value):
            raise TypeError(f"result field {key!r} must be {kind}, got {value!r}")
    return result


def _describe(exc: Exception) -> str:
    """One line per failure: gRPC errors as `CODE: details` rather than their multi-line repr."""
    import grpc

    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


async def _run_step(spec: Step, ctx: StepContext) -> dict[str, Any]:
    record: dict[str, Any] = {"tier": spec.tier, "service": spec.service, "heavy": spec.heavy}
    try:
        result = _check_result(await asyncio.wait_for(spec.fn(ctx), timeout=spec.deadline_s))
    except TimeoutError:
        return record | {"status": "failed", "error": f"deadline exceeded ({spec.deadline_s:g} s)"}
    except Exception as exc:  # any failure of a step is recorded, never fatal to the run
        return record | {"status": "failed", "error": _describe(exc)}
    return record | {"status": "ok"} | result


async def _run(
    steps: list[Step], *, pack: FuzzPack, addresses: dict[str, str], seed: int, fast: bool,
    models_dir: Path, data_root: Path,
) -> tuple[dict[str, dict], dict[str, float]]:
    healths: dict[str, str] = {}
    records: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for spec in steps:
        base = {"tier": spec.tier, "service": spec.service, "heavy": spec.heavy, "status": "skipped"}
        if fast and spec.heavy:
            records[spec.name] = base | {"reason": "fast"}
            continue
        if spec.service != "local":
            address = addresses.get(spec.service)
            if not address:
                records[spec.name] = base | {"reason": f"no address for {spec.service}"}
                continue
            if spec.service not in healths:
                healths[spec.service] = await health(address)
            if healths[spec.service] != "SERVING":
                records[spec.name] = base | {"reason": f"{spec.service} at {address} is {healths[spec.service]}"}
                continue
        ctx = StepContext(
            addresses=dict(addresses), fuzz_pack=pack, rng=random.Random(f"{seed}:{spec.name}"),
            deadline_s=spec.deadline_s, models_dir=models_dir, data_root=data_root,
        )
        started = time.monotonic()
        records[spec.name] = await _run_step(spec, ctx)
        timings[spec.name] = round(time.monotonic() - started, 3)
    return records, timings


def run_regress(
    *,
    tiers: Iterable[int] = (0, 1),
    fast: bool = False,
    seed: int = 0,
    addresses: dict[str, str] | None = None,
    stack_config: Path | None = None,
    fuzz_pack_dir: Path | None = None,
    models_dir: Path | None = None,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Verify the fuzz pack (FuzzPackError on a mismatch), run the selected steps, return the summary.

    `tiers` selects which steps run; the summary records it so the diff only compares those tiers.
    """
    pack = load_fuzz_pack(fuzz_pack_dir or FUZZ_PACK_DIR)
    tiers = sorted(set(tiers))
    steps = [s for s in registered_steps() if s.tier in tiers]
    records, timings = asyncio.run(_run(
        steps, pack=pack, addresses=addresses if addresses is not None else stack_addresses(stack_config),
        seed=seed, fast=fast, models_dir=Path(models_dir or default_models_dir()),
        data_root=Path(data_root or default_data_root()),
    ))
    step_config_hashes = {name: r["config_hash"] for name, r in records.items() if "config_hash" in r}
    return {
        "schema": SUMMARY_SCHEMA,
        "pipeline_version": pipeline_version(),
        "seed": seed,
        "tiers": tiers,
        "fast": fast,
        "fingerprint": fingerprint(),
        "hashes": input_hashes(pack),
        # The pipeline config the steps ran under (each step that talks to a flow reports its own).
        "config_hash": canonical_hash(step_config_hashes),
        "steps": records,
        # Wall time per step: informative only, never compared.
        "timings": timings,
    }
