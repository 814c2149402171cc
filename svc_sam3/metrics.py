"""SAM3-specific Prometheus metrics.

`tator_sam3_vision_embeddings_total{result="computed"}` is the counter that
proves the image-first order: over N prompts and repeated calls on one image
(and window) it grows by one.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

VISION_EMBEDDINGS = Counter(
    "tator_sam3_vision_embeddings_total", "Vision embeddings by outcome (computed or served from the cache)",
    ["model", "result"])
TEXT_EMBEDDINGS = Counter(
    "tator_sam3_text_embeddings_total", "Prompt-text embeddings by outcome (computed or served from the cache)",
    ["model", "result"])
PROMPT_RUNS = Counter("tator_sam3_prompt_runs_total", "Prompt decodes run", ["model", "kind"])
VISION_CACHE_BYTES = Gauge("tator_sam3_vision_cache_bytes", "Bytes held by the vision-embedding cache")
VISION_CACHE_ITEMS = Gauge("tator_sam3_vision_cache_items", "Entries in the vision-embedding cache")
