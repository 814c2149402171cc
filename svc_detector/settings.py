"""Settings of the detector service (`TATOR_DETECTOR_<FIELD>` or `--field-name`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tator_core import limits
from tator_core.settings import ServiceSettings


class DetectorSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "TATOR_DETECTOR_"
    service_name: ClassVar[str] = "detector"

    max_batch: int = Field(8, ge=1, le=1024,
                           description="Detect jobs of one model run together in one device batch")
    max_delay_ms: float = Field(5.0, ge=0, le=10_000,
                                description="how long a job waits for others to batch with; 0 disables waiting")
    max_queue: int = Field(64, ge=1, le=100_000,
                           description="jobs waiting per model; a full queue answers RESOURCE_EXHAUSTED")
    max_tiles: int = Field(limits.DETECTOR_MAX_TILES, ge=1, le=100_000,
                           description="tiles per image; a tile plan above it is refused (FANOUT_CAP_EXCEEDED)")
    max_images_per_call: int = Field(32, ge=1, le=4096,
                                     description="images (tiles) per model forward; larger batches are chunked")
