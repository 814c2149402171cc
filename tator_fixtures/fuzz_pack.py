"""The fuzz pack: a tiny, hash-pinned set of inputs the regression harness feeds to every service.

Layout (`tests/fixtures/fuzz_pack/`):
  images/*.png    4 synthetic scenes (≤ 320 px) made by `tator_fixtures.synth` with a fixed seed
  labels/*.txt    their ground truth, YOLO format (`cls cx cy w h`, normalised)
  labelmap.txt    circle, square, triangle
  glossary.json   3–5 synonyms per class
  models.yaml     registry-form entries (detector, classifier head, SAM3), paths relative to the models dir
  manifest.json   {"files": {"<relative path>": "<sha256>", ...}} for every file above

The legacy harness read the manifest but never checked the hashes, so a silently edited image could
shift every baseline count. Here loading verifies every file first and refuses on any mismatch, missing
or unlisted file, naming it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tator_core.datasets import read_yolo_labels
from tator_core.geometry import XYXY
from tator_fixtures import LABELMAP
from tator_fixtures.synth import GLOSSARY, image_name, render_scene, save_png, yolo_lines
from tator_fixtures.train_yolo import YOLO_ENTRY

MANIFEST = "manifest.json"


class FuzzPackError(RuntimeError):
    """The fuzz pack does not match its manifest; `path` names the offending file."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"fuzz pack refused: {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class FuzzPack:
    """A verified fuzz pack."""

    dir: Path
    images: list[Path]  # sorted
    labelmap: list[str]
    glossary_text: str  # the exact bytes of glossary.json, decoded
    glossary: dict[str, list[str]]
    models: list[dict[str, Any]]  # registry-form entries from models.yaml
    manifest_sha256: str  # hash of manifest.json: one value that pins the whole pack

    def label_path(self, image: Path) -> Path:
        """Ground truth of one of `images`."""
        return self.dir / "labels" / f"{image.stem}.txt"

    def ground_truth(self, image: Path, width: int, height: int) -> list[tuple[str, XYXY]]:
        """(label, pixel box) of one of `images`, read by the services' own YOLO reader so a request
        built from it carries what a dataset read by a service would. None when it has no label file;
        a line the reader cannot use refuses the pack (its files are pinned, so that is an edit)."""
        path = self.label_path(image)
        if not path.is_file():
            return []
        boxes, skipped = read_yolo_labels(path, width, height, len(self.labelmap))
        if skipped:
            raise FuzzPackError(path.relative_to(self.dir).as_posix(), f"{skipped} unusable label line(s)")
        return [(self.labelmap[cls], box) for cls, box in boxes]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pack_files(pack_dir: Path) -> list[str]:
    """Relative POSIX paths of every file in the pack except the manifest, sorted."""
    return sorted(
        p.relative_to(pack_dir).as_posix()
        for p in pack_dir.rglob("*")
        if p.is_file() and p.relative_to(pack_dir).as_posix() != MANIFEST
    )


def write_manifest(pack_dir: Path) -> dict[str, str]:
    """(Re)write manifest.json from the files on disk; used only when deliberately changing the pack."""
    files = {rel: sha256_file(pack_dir / rel) for rel in pack_files(pack_dir)}
    (pack_dir / MANIFEST).write_text(json.dumps({"files": files}, indent=2, sort_keys=True) + "\n")
    return files


def verify(pack_dir: Path) -> dict[str, str]:
    """Check every file against the manifest; raise FuzzPackError naming the first bad file."""
    manifest_path = pack_dir / MANIFEST
    if not manifest_path.is_file():
        raise FuzzPackError(MANIFEST, "missing")
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FuzzPackError(MANIFEST, f"unreadable ({exc})") from exc
    for rel, expected in sorted(files.items()):
        path = pack_dir / rel
        if not path.is_file():
            raise FuzzPackError(rel, "missing")
        actual = sha256_file(path)
        if actual != expected:
            raise FuzzPackError(rel, f"sha256 mismatch (manifest {expected[:12]}…, file {actual[:12]}…)")
    unlisted = [rel for rel in pack_files(pack_dir) if rel not in files]
    if unlisted:
        raise FuzzPackError(unlisted[0], "not listed in manifest.json")
    return files


def load_fuzz_pack(path: Path | str) -> FuzzPack:
    """Verify and load the pack at `path`."""
    pack_dir = Path(path).resolve()
    files = verify(pack_dir)
    glossary_text = (pack_dir / "glossary.json").read_text()
    labelmap = [line.strip() for line in (pack_dir / "labelmap.txt").read_text().splitlines() if line.strip()]
    models = yaml.safe_load((pack_dir / "models.yaml").read_text())["models"]
    return FuzzPack(
        dir=pack_dir,
        images=sorted(pack_dir / rel for rel in files if rel.startswith("images/")),
        labelmap=labelmap,
        glossary_text=glossary_text,
        glossary=json.loads(glossary_text),
        models=models,
        manifest_sha256=sha256_file(pack_dir / MANIFEST),
    )


#: Seed and scene indices of the pack's images (all small scenes; index % 8 != 7).
PACK_SEED = 11
PACK_SCENES = (0, 1, 2, 3)

#: The pack's model entries, registry form, paths relative to the models dir: the ids and paths that
#: `tator models build` writes (yolo-synth here, the others in svc_classifier.tiny and svc_sam3.tiny).
PACK_MODELS: list[dict[str, Any]] = [
    YOLO_ENTRY,
    {"id": "synth-clip-head", "family": "head", "path": "synth-clip-head", "default": True,
     "options": {"backbone": "clip-tiny"}},  # its classes (with background) live in the head's own meta
    {"id": "sam3-tiny", "family": "sam3", "path": "sam3-tiny", "default": True, "options": {}},
]


def build_fuzz_pack(dest: Path) -> dict[str, str]:
    """Write the pack from the synthetic generator and pin it; run only to change the pack on purpose,
    then update the regression baseline (the pack's hash is part of every summary)."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(parents=True, exist_ok=True)
    for index in PACK_SCENES:
        image, objects = render_scene(PACK_SEED, index)
        name = image_name(index)
        save_png(image, dest / "images" / name)
        (dest / "labels" / name.replace(".png", ".txt")).write_text(yolo_lines(objects, *image.size))
    (dest / "labelmap.txt").write_text("".join(f"{name}\n" for name in LABELMAP))
    (dest / "glossary.json").write_text(json.dumps(GLOSSARY, indent=2, sort_keys=True) + "\n")
    (dest / "models.yaml").write_text(
        "# Registry-form entries the fuzz pack exercises; paths are relative to the models dir.\n"
        + yaml.safe_dump({"models": PACK_MODELS}, sort_keys=False)
    )
    return write_manifest(dest)
