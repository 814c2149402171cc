"""Limits that one service enforces and another must respect, written down once.

The detector and SAM3 refuse work above these bounds; the orchestrator checks a prepass config
against the same numbers at the door, so a config the services would refuse is INVALID_ARGUMENT
when it arrives instead of a STAGE_FAILED half way through a job. A service's settings default to
these values; an operator who changes one on a service sets the matching orchestrator setting
(`detector_max_tiles`, `sam3_max_prompt_runs`) to the same value.
"""

from __future__ import annotations

#: Side of a detector tile (SAHI window), pixels.
TILE_MIN = 64
TILE_MAX = 8192
#: Tiles one Detect call may plan for one image (svc_detector `max_tiles`).
DETECTOR_MAX_TILES = 256
#: Prompt runs (prompts x contexts) one SAM3 call may plan (svc_sam3 `max_prompt_runs`).
SAM3_MAX_PROMPT_RUNS = 256
#: Repeated-field items one request may hold, every level together (every service's `max_request_items`):
#: far above any request the services make of each other (SAM3: 64 labels x 64 prompts; the classifier:
#: 4,096 boxes).
MAX_REQUEST_ITEMS = 20_000
