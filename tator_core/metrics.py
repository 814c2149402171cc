"""Prometheus metrics shared by every service (served on a side port).

Defined once per process on the default registry; services label them with
their own name. Service-specific metrics live in the services.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_TOTAL = Counter("tator_rpc_total", "RPCs handled", ["service", "method", "code"])
RPC_LATENCY = Histogram(
    "tator_rpc_latency_seconds", "RPC wall time", ["service", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IN_FLIGHT = Gauge("tator_rpc_in_flight", "RPCs being served", ["service"])
QUEUE_DEPTH = Gauge("tator_queue_depth", "Work items waiting for a device", ["service"])
QUEUE_MS = Histogram(
    "tator_queue_ms", "Milliseconds a work item waited for the device", ["service"],
    buckets=(0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
)
MODEL_COMPUTE_MS = Histogram(
    "tator_model_compute_ms", "Milliseconds of model compute per batch", ["service", "model"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000),
)
BATCH_SIZE = Histogram(
    "tator_batch_size", "Items per device batch", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
IMAGES_DECODED = Counter("tator_images_decoded_total", "Images decoded from bytes", ["service"])
IMAGE_CACHE = Counter("tator_image_cache_total", "Image store lookups", ["service", "result"])
