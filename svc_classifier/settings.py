"""Settings of the classifier service (`TATOR_CLASSIFIER_*` / `--flag`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tator_core.settings import ServiceSettings, tator_home


class ClassifierSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "TATOR_CLASSIFIER_"
    service_name: ClassVar[str] = "classifier"

    batch_size: int = Field(32, ge=1, le=1024, description="backbone batch size (halved on CUDA OOM)")
    context_padding: float = Field(0.1, ge=0, le=2, description="crop padding as a fraction of the box size")
    heads_dir: Path | None = Field(None, description="where trained heads are written and found "
                                                      "(default $TATOR_HOME/classifier/heads)")
    data_root: Path | None = Field(None, description="base of relative TrainHead dataset_dir "
                                                     "(default $TATOR_HOME/data)")
    max_train_crops: int = Field(100_000, ge=1, description="cap on crops one TrainHead embeds")
    cpu_threads: int = Field(1, ge=0, description="torch threads when the device is cpu (0 = torch default). "
                             "1 by default: model work is already serialised on one device thread, and on a "
                             "shared CPU torch's spinning pool made the tiny backbone 25x slower (measured)")
    max_concurrent_trainings: int = Field(1, ge=1, description="TrainHead calls at once before OVERLOADED")

    def resolved_heads_dir(self) -> Path:
        return Path(self.heads_dir) if self.heads_dir else tator_home() / "classifier" / "heads"

    def resolved_data_root(self) -> Path:
        return Path(self.data_root) if self.data_root else tator_home() / "data"
