"""Training records: which image files a fixture model was fitted or selected on.

The model registry carries them (`trained_on`), so the calibration can refuse a test split that holds a
model's own training images. Images are identified by the SHA-256 of the file bytes, which is what the
orchestrator can compute for any dataset, whatever its layout or file names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tator_core.registry import TrainingRecord
from tator_fixtures.fuzz_pack import sha256_file

#: The committed record of the fixture YOLO, next to its weights.
RECORD_FILE = "trained_on.json"


def record_of(images: Iterable[Path], description: str) -> TrainingRecord:
    return TrainingRecord(description, frozenset(sha256_file(p) for p in images))


def split_images(data: Path, splits: Iterable[str]) -> list[Path]:
    """Every image of the given splits of a synthetic (YOLO-layout) dataset, sorted."""
    return sorted(p for s in splits for p in (data / s / "images").glob("*.png"))


def describe(data: Path, what: str) -> str:
    meta_path = data / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    seed = f"seed {meta['seed']}, " if "seed" in meta else ""
    return f"synthetic shapes world ({seed}{meta.get('images', '?')} images): {what}"


def write_record(record: TrainingRecord, path: Path) -> Path:
    path.write_text(json.dumps(record.to_dict(), indent=1) + "\n")
    return path


def read_record(path: Path) -> TrainingRecord:
    return TrainingRecord.parse(json.loads(path.read_text()), str(path))
