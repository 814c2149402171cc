"""Model registry: one YAML file listing the models every service may load.

```yaml
models:
  - id: yolo-synth
    family: yolo          # yolo | rfdetr | sam3 | qwen | clip | dinov3 | head
    path: yolo-synth/best.pt   # relative to this file's directory, or absolute
    labelmap: [circle, square, triangle]   # optional
    default: true
    options: {}           # family-specific
    trained_on:           # optional: what the model was fitted or selected on
      description: synthetic shapes world, seed 0, train+val splits
      image_sha256: [<sha256 of each image file>, ...]
```

Each service reads the entries of its own families. A missing file makes
that model MISSING with a reason; it never stops a service from starting
(Triton's model-repository behaviour).

The default model of each family is the `default: true` entry (else the
family's first). `set_default` moves that flag in the file itself, so a chosen
default survives a restart; every writer edits the file through `edit()`
(a lock file against lost updates between processes, an atomic rename against
half-written files). CLIP and DINOv3 backbones share one default: a
classifier serves one backbone unless asked for another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tator_core import errors
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.hashing import atomic_write_text, cached_path_version, path_version

#: Folder beside the registry file where `tator models add` places users' models, one folder each; the
#: fixture build (`tator models build`) leaves entries there alone.
USER_DIR = "user"
FAMILIES = frozenset({"yolo", "rfdetr", "sam3", "qwen", "clip", "dinov3", "head"})
#: Families that share one default (the classifier's backbones); any other family is its own group.
DEFAULT_GROUPS = {"clip": "backbone", "dinov3": "backbone"}


def default_group(family: str) -> str:
    """The set of families one default is chosen among."""
    return DEFAULT_GROUPS.get(family, family)


class RegistryError(ValueError):
    """The registry file itself is malformed."""


def list_sha256(shas: Iterable[str]) -> str:
    """SHA-256 of a set of image digests: sorted, one per line (so order and duplicates do not matter)."""
    return hashlib.sha256("".join(f"{s}\n" for s in sorted(set(shas))).encode()).hexdigest()


@dataclass(frozen=True)
class TrainingRecord:
    """The images a model was fitted or selected on (validation images count: checkpoint selection
    and early stopping look at them), by the SHA-256 of each image file."""

    description: str
    image_sha256: frozenset[str]

    @property
    def list_sha256(self) -> str:
        return list_sha256(self.image_sha256)

    @classmethod
    def parse(cls, raw: object, where: str) -> TrainingRecord:
        if not isinstance(raw, dict) or not isinstance(raw.get("image_sha256"), list):
            raise RegistryError(f"{where}.trained_on needs an image_sha256 list")
        shas = frozenset(str(s).lower() for s in raw["image_sha256"])
        if any(len(s) != 64 or any(c not in "0123456789abcdef" for c in s) for s in shas):
            raise RegistryError(f"{where}.trained_on.image_sha256 holds a value that is not a SHA-256 hex digest")
        record = cls(str(raw.get("description", "")), shas)
        if raw.get("list_sha256") and raw["list_sha256"] != record.list_sha256:
            raise RegistryError(f"{where}.trained_on.list_sha256 does not match its image_sha256 list")
        return record

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "images": len(self.image_sha256), "list_sha256": self.list_sha256,
                "image_sha256": sorted(self.image_sha256)}


@dataclass
class ModelEntry:
    id: str
    family: str
    path: Path
    labelmap: list[str] | None = None
    default: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    trained_on: TrainingRecord | None = None
    #: The path as the registry file gives it when it is relative and stays in the registry's directory
    #: ("yolo-synth/best.pt"): what messages show, never the server's absolute layout.
    written_path: str = ""

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def missing_reason(self) -> str:
        if self.exists:
            return ""
        if self.written_path:
            return f"weights not found at {self.written_path} (relative to the model registry)"
        return f"weights not found: {self.path.name}"

    def version(self) -> str:
        return path_version(self.path) if self.exists else ""

    def cached_version(self) -> str | None:
        """version() when known without reading the weights, else None."""
        return cached_path_version(self.path) if self.exists else ""


class Registry:
    def __init__(self, entries: list[ModelEntry], source: Path | None = None) -> None:
        self.source = source
        self.entries = {e.id: e for e in entries}
        if len(self.entries) != len(entries):
            raise RegistryError("duplicate model ids in registry")

    @classmethod
    def load(cls, path: str | Path | None, families: set[str] | frozenset[str] | None = None) -> Registry:
        """Load entries (optionally only some families); no file -> empty registry."""
        if path is None:
            return cls([])
        path = Path(path)
        if not path.exists():
            return cls([], path)
        doc = yaml.safe_load(path.read_text()) or {}
        if not isinstance(doc, dict) or not isinstance(doc.get("models", []), list):
            raise RegistryError(f"{path}: expected a mapping with a 'models' list")
        entries = []
        for i, raw in enumerate(doc.get("models") or []):
            if not isinstance(raw, dict) or not raw.get("id") or not raw.get("family") or not raw.get("path"):
                raise RegistryError(f"{path}: models[{i}] needs id, family and path")
            fam = str(raw["family"])
            if fam not in FAMILIES:
                raise RegistryError(f"{path}: models[{i}] has unknown family {fam!r}")
            if families is not None and fam not in families:
                continue
            p = Path(str(raw["path"]))
            entries.append(ModelEntry(
                id=str(raw["id"]), family=fam, path=p if p.is_absolute() else (path.parent / p).resolve(),
                labelmap=[str(x) for x in raw["labelmap"]] if raw.get("labelmap") else None,
                default=bool(raw.get("default", False)), options=dict(raw.get("options") or {}),
                written_path=str(p) if not p.is_absolute() and ".." not in p.parts else "",
                trained_on=TrainingRecord.parse(raw["trained_on"], f"{path}: models[{i}]")
                if raw.get("trained_on") else None,
            ))
        return cls(entries, path)

    def get(self, model_id: str) -> ModelEntry:
        entry = self.entries.get(model_id)
        if entry is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no model {model_id!r} in the registry", model_id=model_id)
        return entry

    def family(self, family: str) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.family == family]

    def default(self, family: str) -> ModelEntry | None:
        members = self.family(family)
        return next((e for e in members if e.default), members[0] if members else None)

    def default_of_group(self, family: str) -> ModelEntry | None:
        """The default among every family that shares `family`'s default (see DEFAULT_GROUPS)."""
        group = default_group(family)
        members = [e for e in self.entries.values() if default_group(e.family) == group]
        return next((e for e in members if e.default), members[0] if members else None)

    def mark_default(self, model_id: str) -> None:
        """In memory: `model_id` becomes its group's only default (set_default persists it)."""
        group = default_group(self.get(model_id).family)
        for e in self.entries.values():
            if default_group(e.family) == group:
                e.default = e.id == model_id

    def require_default(self, family: str) -> ModelEntry:
        entry = self.default(family)
        if entry is None:
            raise errors.failed_precondition("MODEL_MISSING", f"no {family} model in the registry", family=family)
        return entry


def training_pb(record: TrainingRecord | None) -> common_pb2.TrainingData | None:
    """The registry's training record as the ModelInfo.trained_on message (None: unknown)."""
    if record is None:
        return None
    return common_pb2.TrainingData(description=record.description, images=len(record.image_sha256),
                                   list_sha256=record.list_sha256, image_sha256=sorted(record.image_sha256))


@contextlib.contextmanager
def edit(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write the registry file: yields its document (a `models` list, created when the
    file is absent) and writes it back atomically when the block ends without an error. A lock file
    next to it serialises writers in every process (the CLI and the services)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            doc = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
            if not isinstance(doc, dict) or not isinstance(doc.setdefault("models", []), list):
                raise RegistryError(f"{path}: expected a mapping with a 'models' list")
            yield doc
            atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def set_default(path: str | Path, model_id: str) -> None:
    """Persist `model_id` as the default of its family (CLIP/DINOv3: of the backbones): its entry gets
    `default: true`, every other entry of that group loses the flag. NOT_FOUND when no entry has the id."""
    with edit(path) as doc:
        models = [m for m in doc["models"] if isinstance(m, dict)]
        chosen = next((m for m in models if str(m.get("id")) == model_id), None)
        if chosen is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no model {model_id!r} in the registry", model_id=model_id)
        group = default_group(str(chosen.get("family")))
        for m in models:
            if default_group(str(m.get("family"))) == group:
                if m is chosen:
                    m["default"] = True
                else:
                    m.pop("default", None)


def read_defaults(path: str | Path) -> dict[str, str]:
    """The default model id of each default group present in the registry file ({} without a file)."""
    reg = Registry.load(path)
    out: dict[str, str] = {}
    for entry in reg.entries.values():
        group = default_group(entry.family)
        if group not in out:
            chosen = reg.default_of_group(entry.family)
            if chosen is not None:
                out[group] = chosen.id
    return out


def _check_loads(path: Path, doc: dict[str, Any]) -> None:
    """Parse `doc` as the registry at `path` would be parsed; RegistryError keeps a bad edit unwritten
    (a service must never find a file it cannot load)."""
    check = path.with_name(f".{path.name}.check")
    try:  # beside the file, so relative paths resolve against the same directory
        check.write_text(yaml.safe_dump(doc, sort_keys=False))
        Registry.load(check)
    finally:
        check.unlink(missing_ok=True)


def add_entry(path: str | Path, entry: dict[str, Any]) -> None:
    """Append one entry (its id unique); with `default: true` it takes the default from its group."""
    path = Path(path)
    with edit(path) as doc:
        models = doc["models"]
        if any(isinstance(m, dict) and str(m.get("id")) == str(entry.get("id")) for m in models):
            raise RegistryError(f"{path}: a model named {entry.get('id')!r} is already registered")
        if entry.get("default"):
            group = default_group(str(entry.get("family")))
            for m in models:
                if isinstance(m, dict) and default_group(str(m.get("family"))) == group:
                    m.pop("default", None)
        models.append(dict(entry))
        _check_loads(path, doc)


def remove_entry(path: str | Path, model_id: str, *, force: bool = False) -> dict[str, Any]:
    """Drop one entry and return it (NOT_FOUND for an unknown id). The default of its group is refused
    unless `force`: the group would silently fall back to another member."""
    path = Path(path)
    with edit(path) as doc:
        registry = Registry.load(path)
        entry = registry.get(model_id)
        default = registry.default_of_group(entry.family)
        if default is not None and default.id == model_id and not force:
            raise RegistryError(f"{model_id!r} is the default {entry.family} model; activate another one "
                                "first, or force the removal")
        removed = next(m for m in doc["models"] if isinstance(m, dict) and str(m.get("id")) == model_id)
        doc["models"].remove(removed)
        _check_loads(path, doc)
        return dict(removed)
