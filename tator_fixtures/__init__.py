"""Test fixtures of the Tator stack: the synthetic shapes world, its trained YOLO, the fuzz pack and the
regression harness.

Everything here is deterministic: two runs produce byte-identical data and comparable regression
summaries (across machines too, as long as numpy and Pillow compute the same floats). The constants below define the synthetic world; services and tests
import them instead of repeating the class names.
"""

from __future__ import annotations

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
    """Root of local state (`$TATOR_HOME`, default `<repo>/.tator`), as the services see it."""
    from tator_core.settings import tator_home as core_tator_home

    return core_tator_home().resolve()


def default_models_dir() -> Path:
    """Where `tator models build` writes model files and `registry.yaml`."""
    return tator_home() / "models"


def default_data_root() -> Path:
    """Root of the datasets the orchestrator lists."""
    return tator_home() / "data"


def default_synth_dir() -> Path:
    """The demo dataset: `tator data synth --seed 0 --images 200` writes here."""
    return default_data_root() / "synth"
