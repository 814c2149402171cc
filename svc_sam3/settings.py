"""Settings of the SAM3 service (`TATOR_SAM3_<FIELD>` or `--field-name`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from tator_core import limits
from tator_core.settings import ServiceSettings


class Sam3Settings(ServiceSettings):
    env_prefix: ClassVar[str] = "TATOR_SAM3_"
    service_name: ClassVar[str] = "sam3"

    max_prompt_runs: int = Field(
        limits.SAM3_MAX_PROMPT_RUNS, ge=1, le=100_000,
        description="per-call cap on prompt runs (sum over labels of prompts x contexts); above it the call is "
                    "refused with FANOUT_CAP_EXCEEDED")
    vision_cache_mb: int = Field(
        2048, ge=0, description="memory bound of the vision-embedding LRU (image sha x window); 0 = keep none "
                                "between calls")
    vision_cache_items: int = Field(256, ge=1, description="entry bound of the vision-embedding LRU")
    text_cache_items: int = Field(1024, ge=0, description="prompt-text embeddings kept (LRU); 0 = keep none")
    max_raw_detections: int = Field(
        2048, ge=1, le=1_000_000,
        description="per-call bound on raw detections (with their low-res masks) held until the merge: beyond it "
                    "only the best-scored are kept and the answer says so (warning raw_detections_capped). A low "
                    "score_threshold over many prompts would otherwise hold every query of every prompt run; with "
                    "SAM3's 288x288 fp16 mask probabilities that is ~166 KB each")
    prompt_batch: int = Field(8, ge=1, le=256, description="prompts decoded together against one vision embedding")
