"""Checking a candidate model inside the process of the service that will serve it.

`tator models add` must load a user's checkpoint and run one inference through the very loader the
service uses before the registry names the model. Where that runs:

- not in the CLI: the CLI imports no service code (the import graph runs tator_core <- services <- CLI),
  and moving every family's loader into tator_core would move the services' model code out of the
  services that own it;
- not through a running service's LoadModel: a service loads only what its registry lists, and the
  registry must not list a model before it is checked;
- so in a short-lived process of the service's own entry point, `python -m svc_x check-model SPEC OUT`
  (the way `tator up` starts it to serve), through the family's lifecycle contract
  (tator_core.lifecycle.ModelBackend: load, warm-up inference, describe) that the service's repository
  drives: the same loader, libraries and device, no stack needed, and a checkpoint that crashes or
  exhausts memory takes down only that process.

SPEC is a JSON file `{"id", "family", "path", "labelmap"?, "options"?, "device"?}`; the outcome is written
to OUT as JSON: `{"ok": true, ...what the service's check function returned}` or
`{"ok": false, "reason", "message", "metadata"}` with an ErrorReason name.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tator_core import errors
from tator_core.hashing import atomic_write_text
from tator_core.lifecycle import ModelBackend
from tator_core.registry import ModelEntry

COMMAND = "check-model"


def spec_entry(spec: dict[str, Any]) -> ModelEntry:
    return ModelEntry(id=str(spec["id"]), family=str(spec["family"]), path=Path(spec["path"]),
                      labelmap=[str(x) for x in spec["labelmap"]] if spec.get("labelmap") else None,
                      options=dict(spec.get("options") or {}))


def check(family: ModelBackend[Any], entry: ModelEntry, device: str) -> dict[str, Any]:
    """Load through the family's lifecycle contract, run its warm-up inference, describe, release: what
    the service's repository does with the model before it first serves it."""
    t0 = time.perf_counter()
    backend = family.load(entry, device)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    family.warmup(backend)
    inference_s = time.perf_counter() - t0
    labelmap, extra = family.describe(backend)
    family.release(backend)
    return {"labelmap": list(labelmap), "extra": dict(extra), "load_s": round(load_s, 3),
            "inference_s": round(inference_s, 3)}


def run(argv: list[str], family: ModelBackend[Any]) -> int:
    """The `check-model` mode of a service's entry point; returns the process exit status."""
    if len(argv) != 2:
        print(f"usage: python -m <service> {COMMAND} SPEC.json OUT.json", file=sys.stderr)
        return 2
    from tator_core.offline import enforce_offline
    from tator_core.settings import resolve_device

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    enforce_offline()  # before a model library is imported
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = {"ok": True, **check(family, spec_entry(spec), resolve_device(str(spec.get("device") or "cpu")))}
    except errors.TatorError as exc:
        result = {"ok": False, "reason": exc.reason, "message": exc.message, "metadata": exc.metadata}
    except Exception as exc:  # an unloadable checkpoint is the answer, not a crash of the checker
        result = {"ok": False, "reason": "MODEL_LOAD_FAILED", "message": f"{type(exc).__name__}: {exc}",
                  "metadata": {}}
    atomic_write_text(argv[1], json.dumps(result, default=str))
    return 0 if result["ok"] else 1
