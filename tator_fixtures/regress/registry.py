"""Registry of regression steps.

Service and flow engineers add steps in `tator_fixtures/steps/<area>.py`:

    from tator_fixtures.regress import StepContext, step

    @step("detector.detect_full", tier=1, service="detector", deadline_s=20, tolerances={"detections": 1})
    async def detect_full(ctx: StepContext) -> dict:
        ...
        return {"detections": 3, "classes": {"circle": 2, "square": 1}, "sources": {"yolo": 3}}

A step returns a dict with any of the keys in `RESULT_FIELDS`; raising fails the step. The runner skips
a step whose service is not SERVING, so the harness works while services are still landing.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tator_fixtures.fuzz_pack import FuzzPack

#: Services a step may name. "local" steps need no running service.
SERVICES = ("detector", "sam3", "qwen", "classifier", "orchestrator", "local")

#: What a step may return, with the JSON type each value must have.
#: Counts (compared against tolerances): detections, classes, sources, cache.
#: Metrics (a drop > 0.02 absolute is a regression): metrics.
#: Pinned values (any change is a regression): hashes, config_hash.
#: Free-form (only the presence of keys is checked): extra.
RESULT_FIELDS: dict[str, str] = {
    "detections": "int",
    "classes": "dict[str,int]",
    "sources": "dict[str,int]",
    "cache": "dict[str,int]",
    "metrics": "dict[str,float]",
    "hashes": "dict[str,str]",
    "config_hash": "str",
    "extra": "dict",
}


@dataclass
class StepContext:
    """Everything a step may use; the rng is the only source of randomness a step should touch."""

    addresses: dict[str, str]  # "detector","sam3","qwen","classifier","orchestrator" -> "host:port"
    fuzz_pack: FuzzPack
    rng: random.Random  # seeded from (global seed, step name)
    deadline_s: float
    models_dir: Path
    data_root: Path


StepFn = Callable[[StepContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Step:
    """One registered step."""

    name: str
    tier: int
    service: str
    heavy: bool
    deadline_s: float
    tolerances: dict[str, float]
    fn: StepFn


_STEPS: dict[str, Step] = {}


def step(
    name: str,
    *,
    tier: int,
    service: str,
    heavy: bool = False,
    deadline_s: float = 60.0,
    tolerances: dict[str, float] | None = None,
) -> Callable[[StepFn], StepFn]:
    """Register `async def fn(ctx: StepContext) -> dict` as step `name`.

    tier: 0 smoke, 1 fuzz-lite, 2 deep. service: which service must be SERVING (see SERVICES).
    heavy: skipped by `--fast` (SAM3, Qwen and other slow model work).
    tolerances: allowed absolute change of a count, keyed by field path ("detections", "classes",
    "classes.circle", "sources.sam3_text", "cache.hits"); the most specific key wins; default 0.
    """
    if tier not in (0, 1, 2):
        raise ValueError(f"step {name}: tier must be 0, 1 or 2, not {tier}")
    if service not in SERVICES:
        raise ValueError(f"step {name}: service must be one of {SERVICES}, not {service!r}")

    def register(fn: StepFn) -> StepFn:
        if name in _STEPS:
            raise ValueError(f"step {name} is registered twice ({_STEPS[name].fn.__module__}, {fn.__module__})")
        _STEPS[name] = Step(name, tier, service, heavy, float(deadline_s), dict(tolerances or {}), fn)
        return fn

    return register


def registered_steps() -> list[Step]:
    """All steps, by tier, then in registration order (step modules are imported in name order)."""
    from tator_fixtures import steps  # noqa: F401 (importing registers every step module)

    return sorted(_STEPS.values(), key=lambda s: s.tier)


class StepImage:
    """One fuzz-pack image drawn with the step's rng, its bytes and size, and a
    client for one service: the setup most service steps share."""

    def __init__(self, ctx: StepContext, service: str, stub_factory: Callable[[Any], Any]) -> None:
        from PIL import Image

        from tator_core.client import ServiceClient

        self.ctx = ctx
        self.path: Path = ctx.rng.choice(ctx.fuzz_pack.images)
        self.data = self.path.read_bytes()
        with Image.open(self.path) as im:
            self.width, self.height = im.size
        self.client = ServiceClient(ctx.addresses[service], stub_factory, timeout_s=ctx.deadline_s)
