"""`tator models add|remove` on plain Python: place a user's checkpoint under the model directory, check it
in the serving service's own process (tator_core.model_check), and only then write the registry.

The checkpoint is copied, not referenced. A registry entry that points at a user's file breaks in three
ways a copy does not: the services may run where that path does not exist (a container mounts only the
model directory), the file can be overwritten in place after the check (ultralytics rewrites
runs/.../best.pt on every training run), silently changing what the registry's version and the
calibrations built on it describe, and `remove` could not delete the model's files without deleting the
user's own. The price is disk space for one more copy.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tator_cli.stack import load_config
from tator_core.labels import LabelmapError, read_labelmap
from tator_core.registry import USER_DIR, Registry, add_entry, remove_entry

#: Which service serves (and so checks) each family a user may add.
SERVICE_OF = {"yolo": "detector", "rfdetr": "detector", "sam3": "sam3", "qwen": "qwen", "clip": "classifier",
              "dinov3": "classifier"}
#: Families whose weights carry a fixed class list; the others take prompts (SAM3, Qwen) or give embeddings
#: (CLIP, DINOv3), so a labelmap would be checked against nothing.
CLASS_FAMILIES = frozenset({"yolo", "rfdetr"})
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CHECK_TIMEOUT_S = 900.0


class AddError(ValueError):
    """A model that is not registered, with the reason a user can act on."""


@dataclass
class Added:
    entry: dict[str, Any]
    check: dict[str, Any] = field(default_factory=dict)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; each value read as YAML (so imgsz=320 is a number and half=true a bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AddError(f"--option {pair!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def default_name(path: Path) -> str:
    raw = path.name if path.is_dir() else path.stem
    return re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._")[:64] or "model"


def _check_shape(family: str, path: Path) -> None:
    if not path.exists():
        raise AddError(f"{path}: no such file or folder")
    if family in CLASS_FAMILIES and not path.is_file():
        raise AddError(f"{path}: a {family} checkpoint is one file")
    if family not in CLASS_FAMILIES and not (path / "config.json").is_file():
        raise AddError(f"{path}: a {family} model is a Hugging Face folder with a config.json")


def check_in_service(spec: dict[str, Any], timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
    """Run `python -m <service> check-model` on `spec`; its JSON outcome (see tator_core.model_check)."""
    module = load_config()[SERVICE_OF[spec["family"]]].module
    with tempfile.TemporaryDirectory(prefix="tator-check-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        try:
            proc = subprocess.run([sys.executable, "-m", module, "check-model", str(spec_file), str(out_file)],
                                  capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"ok": False, "reason": "MODEL_LOAD_FAILED",
                    "message": f"loading and one inference did not finish in {timeout_s:g} s"}
        if out_file.is_file():
            return dict(json.loads(out_file.read_text()))
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"ok": False, "reason": "MODEL_LOAD_FAILED",
                "message": f"the {module} checker exited with status {proc.returncode}: {tail}"}


def add_model(registry: Path, family: str, source: Path, *, name: str | None = None,
              labelmap_file: Path | None = None, options: dict[str, Any] | None = None,
              default: bool | None = None, device: str = "cpu") -> Added:
    """Copy, check, register. Nothing is left behind when any step fails."""
    if family not in SERVICE_OF:
        raise AddError(f"family {family!r} cannot be added; one of {', '.join(sorted(SERVICE_OF))}")
    source = source.expanduser().resolve()
    _check_shape(family, source)
    name = name or default_name(source)
    if not NAME_RE.match(name):
        raise AddError(f"name {name!r}: use 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
    current = Registry.load(registry)
    if name in current.entries:
        raise AddError(f"a model named {name!r} is already registered; choose another --name")
    labelmap = None
    if labelmap_file is not None:
        if family not in CLASS_FAMILIES:
            raise AddError(f"--labelmap: a {family} model has no fixed classes to check a labelmap against")
        try:
            labelmap = read_labelmap(labelmap_file)
        except (LabelmapError, OSError, UnicodeDecodeError) as exc:
            raise AddError(f"--labelmap {labelmap_file}: {exc}") from exc
    models_dir = registry.parent.resolve()
    final = models_dir / USER_DIR / name
    if final.exists():
        raise AddError(f"{final} already exists (left by an earlier model?); remove it or choose another --name")
    staging = Path(tempfile.mkdtemp(prefix=f".adding-{name}-", dir=_mkdir(models_dir / USER_DIR)))
    try:
        placed = staging / source.name
        if source.is_dir():
            shutil.copytree(source, placed, symlinks=False)
        else:
            shutil.copy2(source, placed)
        # The copy is what is checked: the bytes the services will load, not the user's file.
        spec = {"id": name, "family": family, "path": str(placed), "labelmap": labelmap,
                "options": options or {}, "device": device}
        result = check_in_service(spec)
        if not result.get("ok"):
            if result.get("reason") == "LABELMAP_MISMATCH":
                raise AddError(f"--labelmap {labelmap_file} does not match the weights {source}: {result['message']}")
            raise AddError(f"{source} did not load and run one inference as a {family} model: "
                           f"{result.get('reason')}: {result.get('message')}")
        try:
            staging.rename(final)
        except OSError as exc:  # another `add` of the same name finished first
            raise AddError(f"{final} appeared while {name!r} was being checked; choose another --name") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    entry: dict[str, Any] = {"id": name, "family": family, "path": f"{USER_DIR}/{name}/{source.name}"}
    if family in CLASS_FAMILIES:
        # Recorded even when the checkpoint gave it: Detect's expected_labelmap and ListModels read it here.
        entry["labelmap"] = labelmap or list(result.get("labelmap") or [])
    # CLIP and DINOv3 share one default (registry DEFAULT_GROUPS): a first DINOv3 does not unseat a CLIP.
    entry["default"] = bool(default) if default is not None else current.default_of_group(family) is None
    entry["options"] = options or {}
    try:
        add_entry(registry, entry)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return Added(entry, {k: v for k, v in result.items() if k != "ok"})


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def remove_model(registry: Path, name: str, *, force: bool = False, keep_files: bool = False,
                 address: str | None = None) -> tuple[list[Path], str]:
    """Unregister `name`; with the service's `address`, unload it there (its calls fail at once instead of
    running a model the registry no longer names); delete its files when they lie inside the model
    directory and no other entry uses them. Returns (what was deleted, what happened on the service)."""
    models_dir = registry.parent.resolve()
    entry = Registry.load(registry).get(name)
    target = entry.path.resolve()
    remove_entry(registry, name, force=force)
    served = ""
    if address is not None:
        served = call_management(address, "UnloadModel", name, SERVICE_OF.get(entry.family, entry.family),
                                 raise_other=False) or "the running service unloaded it"
    if keep_files or not target.is_relative_to(models_dir) or target == models_dir:
        return [], served
    others = [e.path.resolve() for e in Registry.load(registry).entries.values()]
    own_dir = models_dir / USER_DIR / name
    doomed = own_dir if target.is_relative_to(own_dir) else target
    if any(_overlaps(doomed, other) for other in others) or not doomed.exists():
        return [], served
    if doomed.is_dir():
        shutil.rmtree(doomed)
    else:
        doomed.unlink()
    return [doomed], served


def call_management(address: str, method: str, model_id: str, service: str, *, raise_other: bool = True) -> str:
    """Call `method` (SetDefaultModel, UnloadModel) of the running service's ModelManagementService on
    `model_id`: "" when it ran, else why it did not (not running, does not list the model, predates the
    RPC). Any other failure (a refused token, say) raises, or with `raise_other=False` is the answer too
    (for a step after which the registry is already changed)."""
    import grpc

    from tator_core.client import ServiceClient
    from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc

    request = getattr(models_pb2, f"{method}Request")(model_id=model_id)

    async def call() -> None:
        client = ServiceClient(address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=30)
        try:
            await client.call(method, request)
        finally:
            await client.close()

    try:
        asyncio.run(call())
        return ""
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return f"the {service} service is not running"
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return f"the running {service} service does not list {model_id} (does it serve another registry?)"
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return f"the running {service} service has no {method}: restart it"
        if not raise_other:
            return f"the running {service} service refused {method}: {exc.code().name}: {exc.details()}"
        raise


@dataclass
class Activated:
    family: str
    live: bool  # the running service switched at once (and persisted it)
    note: str = ""


def activate_model(registry: Path, name: str, *, address: str | None) -> Activated:
    """Make `name` its family's default. With the service's `address` (the stack serves this registry),
    through its SetDefaultModel (it persists the choice and serves it at once; a model added since it
    started is adopted first); when that service is not running, does not list the model, or predates
    the RPC, the registry file is written here and the service reads it at its next start."""
    from tator_core.registry import set_default

    entry = Registry.load(registry).get(name)
    note = ""
    if address is not None:
        note = call_management(address, "SetDefaultModel", name, SERVICE_OF.get(entry.family, entry.family))
        if not note:
            return Activated(entry.family, live=True)
    set_default(registry, name)
    return Activated(entry.family, live=False, note=note)
