"""`tator models build`: every model the demo stack and the tests need, plus the registry that lists them.

The YOLO detector is the committed fixture (trained on the synthetic world; see
tests/fixtures/models/yolo-synth/README.md). Everything else is tiny and built by the service that owns
the model family, so model code stays inside its service:

  svc_detector.tiny    RF-DETR Nano, random init
  svc_sam3.tiny        SAM3, random init, local tokenizer
  svc_qwen.tiny        Qwen-VL, random init, local tokenizer
  svc_classifier.tiny  CLIP + DINOv3 tiny backbones and a head trained on the synthetic train split

Building is done once: a stamp records a hash of every input (seed, YOLO weights, dataset, builder
sources); when it matches and every listed path exists, nothing is rebuilt.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from tator_core import registry as registry_mod
from tator_fixtures import DEMO_IMAGES, TRAIN_SEED, YOLO_FIXTURE
from tator_fixtures.fuzz_pack import sha256_file
from tator_fixtures.synth import GENERATOR_VERSION, SPLITS, generate
from tator_fixtures.train_yolo import YOLO_ENTRY
from tator_fixtures.trained_on import RECORD_FILE, describe, read_record, record_of, split_images

REGISTRY = "registry.yaml"
STAMP = ".build-stamp.json"
#: Service builder modules (`build(models_dir, *, seed, **kw) -> list[registry entry dict]`) and the
#: extra keyword arguments each one takes.
BUILDERS: dict[str, tuple[str, ...]] = {
    "svc_detector.tiny": (),
    "svc_sam3.tiny": (),
    "svc_qwen.tiny": (),
    "svc_classifier.tiny": ("dataset_dir",),
}


def ensure_synth(data: Path, *, seed: int = TRAIN_SEED, images: int = DEMO_IMAGES) -> Path:
    """Make sure a complete synthetic dataset is at `data`: an existing one is used as is (whatever
    its seed), one from an older generator is regenerated with its own seed and size, and a missing one
    is generated with `seed`/`images`."""
    meta_path = data / "dataset.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == GENERATOR_VERSION and set(meta.get("splits", ())) == set(SPLITS):
            return data
        seed, images = meta.get("seed", seed), meta.get("images", images)
    generate(data, seed=seed, images=images)
    return data


def _builder_source_hash(module: str) -> str:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # the service package itself is missing
        spec = None
    if spec is None or spec.origin is None:
        needed = ", ".join(BUILDERS)
        raise RuntimeError(f"model builder {module} is missing: `tator models build` needs all of {needed}")
    return sha256_file(Path(spec.origin))


def _inputs_hash(data: Path, seed: int) -> str:
    """Everything the build depends on; a change to any of it triggers a rebuild."""
    inputs = {
        "seed": seed,
        "yolo": sha256_file(YOLO_FIXTURE),
        "yolo_trained_on": sha256_file(YOLO_FIXTURE.parent / RECORD_FILE),
        "dataset": sha256_file(data / "dataset.json"),
        "builders": {module: _builder_source_hash(module) for module in BUILDERS},
        "self": sha256_file(Path(__file__)),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _up_to_date(out: Path, inputs: str) -> bool:
    stamp, registry = out / STAMP, out / REGISTRY
    if not (stamp.is_file() and registry.is_file()):
        return False
    if json.loads(stamp.read_text()).get("inputs") != inputs:
        return False
    entries = (yaml.safe_load(registry.read_text()) or {}).get("models") or []
    # A user's model (tator models add) that went missing is theirs to fix, not a reason to rebuild.
    return all((out / entry["path"]).exists() for entry in entries
               if not str(entry["path"]).startswith(f"{registry_mod.USER_DIR}/"))


def _check_entries(entries: list[dict[str, Any]]) -> None:
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"duplicate model ids from the builders: {sorted(ids)}")
    defaults = [e["family"] for e in entries if e.get("default")]
    if len(set(defaults)) != len(defaults):
        raise RuntimeError(f"more than one default model in a family: {sorted(defaults)}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _record_training(entries: list[dict[str, Any]], data: Path) -> None:
    """Attach what each trained model saw: the committed record of the YOLO fixture, and the train and
    val splits of `data` for the classifier heads (fitted on train, early-stopped on val)."""
    yolo = read_record(YOLO_FIXTURE.parent / RECORD_FILE)
    head = record_of(split_images(data, ("train", "val")), describe(data, "train split (fit) and val split"))
    for entry in entries:
        if entry["id"] == YOLO_ENTRY["id"]:
            entry["trained_on"] = yolo.to_dict()
        elif entry["family"] == "head":
            entry["trained_on"] = head.to_dict()


def merged(built: list[dict[str, Any]], existing: list[Any]) -> list[dict[str, Any]]:
    """The built entries, then every existing entry the build did not make (users' models). A kept
    entry that is its group's default stays the default: a rebuild must not undo `tator models activate`."""
    ids = {e["id"] for e in built}
    kept = [dict(m) for m in existing if isinstance(m, dict) and str(m.get("id")) not in ids]
    for chosen in (m for m in kept if m.get("default")):
        group = registry_mod.default_group(str(chosen.get("family")))
        for e in built:
            if registry_mod.default_group(str(e["family"])) == group:
                e["default"] = False
    return built + kept


def build_models(out: Path, *, data: Path, seed: int = 0, force: bool = False) -> Path:
    """Build every model into `out` (once) and return the registry path. `data` is the synthetic
    dataset the classifier head trains on; it is generated with the demo settings if absent."""
    out = out.resolve()
    data = ensure_synth(data.resolve())
    inputs = _inputs_hash(data, seed)
    if not force and _up_to_date(out, inputs):
        return out / REGISTRY

    (out / YOLO_ENTRY["path"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(YOLO_FIXTURE, out / YOLO_ENTRY["path"])
    entries: list[dict[str, Any]] = [copy.deepcopy(YOLO_ENTRY)]
    available = {"dataset_dir": data}
    for module, extra in BUILDERS.items():  # all exist: _inputs_hash checked them
        entries += importlib.import_module(module).build(out, seed=seed, **{k: available[k] for k in extra})
    _check_entries(entries)
    _record_training(entries, data)
    try:  # under the registry's lock, keeping what `tator models add|activate` put there
        with registry_mod.edit(out / REGISTRY) as doc:
            doc["models"] = merged(entries, doc["models"])
    except (registry_mod.RegistryError, yaml.YAMLError):  # an unreadable registry is replaced by the build
        _write_atomic(out / REGISTRY, "# Written by `tator models build`; paths are relative to this file.\n"
                      + yaml.safe_dump({"models": entries}, sort_keys=False))
    _write_atomic(out / STAMP, json.dumps({"inputs": inputs}, indent=2) + "\n")
    return out / REGISTRY
