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

#: Seed of the training world: the fixture YOLO and the classifier head were fitted on its train and val
#: splits, so no evaluation may use it (the calibration refuses a test split that holds its images).
TRAIN_SEED = 0
#: Seed and size of the demo dataset `synth` (`tator data synth` defaults): nothing in the stack was
#: trained on it, so the demo, the Tier 1/2 steps and the regression baseline evaluate on unseen images.
DEMO_SEED = 7
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
    """The demo dataset: `tator data synth` (seed DEMO_SEED, 200 images) writes here."""
    return default_data_root() / "synth"


def default_train_dir() -> Path:
    """The training world (seed TRAIN_SEED) the classifier head is fitted on: outside the data root, so
    the orchestrator never lists it as a dataset to evaluate on."""
    return tator_home() / "train" / "synth"
