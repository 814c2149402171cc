"""The autoscalers (k8s/overlays/gpu-cluster/hpa.yaml) scale on tator_queue_depth:
a service exports it from the moment its batcher exists, before any request,
and creating another batcher for the same service does not reset a live value."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tator_core.batching import MicroBatcher
from tator_core.metrics import QUEUE_DEPTH


def depth(service: str) -> float | None:
    return REGISTRY.get_sample_value("tator_queue_depth", {"service": service})


def test_queue_depth_is_exported_before_the_first_request() -> None:
    assert depth("queue-metric-test") is None
    first = MicroBatcher(lambda items: items, service="queue-metric-test")
    assert depth("queue-metric-test") == 0
    QUEUE_DEPTH.labels("queue-metric-test").set(3)
    second = MicroBatcher(lambda items: items, service="queue-metric-test", model="other")
    assert depth("queue-metric-test") == 3
    for b in (first, second):
        b.executor.shutdown(wait=False)
