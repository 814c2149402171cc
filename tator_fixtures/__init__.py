"""Test fixtures of the Tator stack: the synthetic shapes world, its trained YOLO, the fuzz pack and the
regression harness.

Everything here is deterministic so that two runs on two machines produce byte-identical data and
comparable regression summaries. The constants below define the synthetic world; services and tests
import them instead of repeating the class names.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root (the package lives at `<repo>/tator_fixtures`).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Class names of the synthetic world, in class-id order.
LABELMAP: tuple[str, ...] = ("circle", "square", "triangle")

#: Committed YOLO weights trained on the synthetic world (see tests/fixtures/models/yolo-synth/README.md).
YOLO_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "models" / "yolo-synth" / "best.pt"

#: The committed fuzz pack.
FUZZ_PACK_DIR = REPO_ROOT / "tests" / "fixtures" / "fuzz_pack"

#: Seed and size of the demo dataset (`tator data synth` defaults).
DEMO_SEED = 0
DEMO_IMAGES = 200


def tator_home() -> Path:
    """Root of local state: `$TATOR_HOME`, else `<repo>/.tator` (git-ignored)."""
    return Path(os.environ.get("TATOR_HOME") or REPO_ROOT / ".tator").resolve()


def default_models_dir() -> Path:
    """Where `tator models build` writes model files and `registry.yaml`."""
    return tator_home() / "models"


def default_data_root() -> Path:
    """Root of the datasets the orchestrator lists."""
    return tator_home() / "data"


def default_synth_dir() -> Path:
    """The demo dataset: `tator data synth --seed 0 --images 200` writes here."""
    return default_data_root() / "synth"
