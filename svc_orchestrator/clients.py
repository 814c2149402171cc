"""Typed clients of the four model services.

One small wrapper per service over `tator_core.client.ServiceClient` (which implements the image
protocol: bytes once per service, sha afterwards, one transparent resend on IMAGE_NOT_CACHED). The
wrappers build the requests from Python values, apply the per-service deadline, and return the
response together with a `CallStats` measured on that call alone: the image bytes that crossed the
wire are read off the request after the call (ServiceClient leaves `image.data` set exactly when it
sent bytes), so concurrent prepasses sharing one client never mix their counters, which a delta of
`ServiceClient.image_bytes_sent` across awaits would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from tator_core import errors
from tator_core.client import KEEPALIVE_S, KEEPALIVE_TIMEOUT_S, ServiceClient
from tator_core.convert import boxes_pb
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.classifier.v1 import classifier_pb2, classifier_pb2_grpc
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.detector.v1 import detector_pb2, detector_pb2_grpc
from tator_core.gen.tator.qwen.v1 import qwen_pb2, qwen_pb2_grpc
from tator_core.gen.tator.sam3.v1 import sam3_pb2, sam3_pb2_grpc

SERVICES = ("detector", "sam3", "qwen", "classifier")
Box = tuple[float, float, float, float]

# A restarted service must be found again within seconds, not after grpc's default backoff that
# grows to two minutes (a job rerun right after a restart would otherwise fail fast with UNAVAILABLE).
_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
              ("grpc.max_reconnect_backoff_ms", 2000)]


class RemoteCallError(errors.DownstreamError):
    """A model-service call failed; carries the decoded status (a handler that does not map it answers
    with errors.downstream_failed's status, never INTERNAL)."""


@dataclass
class CallStats:
    """What one call cost: RPCs, image bytes sent, serialized request and response bytes, wall ms."""

    calls: int = 0
    image_bytes_sent: int = 0
    ms: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0

    def add(self, other: CallStats) -> None:
        self.calls += other.calls
        self.image_bytes_sent += other.image_bytes_sent
        self.ms += other.ms
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received


class ModelServiceClient:
    """Shared part of the typed clients: calls with stats, ListModels, health."""

    service = ""
    stub_factory: Callable[[grpc.aio.Channel], Any]

    def __init__(self, address: str, *, timeout_s: float = 120.0, max_message_mb: int = 64) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.raw = ServiceClient(address, type(self).stub_factory, max_message_mb=max_message_mb,
                                 timeout_s=timeout_s, options=_RECONNECT, role="read", health_checked=True)

    async def call(self, method: str, request: Any, *, image_data: bytes | None = None,
                   timeout_s: float | None = None) -> tuple[Any, CallStats]:
        started = time.perf_counter()
        try:
            response = await self.raw.call(method, request, image_data=image_data,
                                           timeout_s=timeout_s or self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise RemoteCallError(self.service, method, parse_rpc_error(exc)) from exc
        sent = len(request.image.data) if image_data is not None and request.image.HasField("data") else 0
        # The request as it last went out (with bytes after an IMAGE_NOT_CACHED resend): the message sizes,
        # not the few bytes of HTTP/2 framing around them.
        return response, CallStats(1, sent, (time.perf_counter() - started) * 1000,
                                   request.ByteSize(), response.ByteSize())

    async def list_models(self, timeout_s: float = 3.0) -> list[common_pb2.ModelInfo]:
        """Every model of the service, from its tator.common.v1.ModelManagementService."""
        try:
            return list(await self.raw.list_models(timeout_s=timeout_s))
        except grpc.aio.AioRpcError as exc:
            raise RemoteCallError(self.service, "ListModels", parse_rpc_error(exc)) from exc

    async def health(self, timeout_s: float = 3.0) -> str:
        return await self.raw.health("", timeout_s)

    async def close(self) -> None:
        await self.raw.close()


def _image(sha: str) -> common_pb2.ImageRef:
    return common_pb2.ImageRef(sha256=sha)


class DetectorClient(ModelServiceClient):
    service = "detector"
    stub_factory = detector_pb2_grpc.DetectorServiceStub

    async def detect(self, sha: str, data: bytes, *, model_ids: Sequence[str], mode: detector_pb2.DetectMode, tile_size: int,
                     tile_overlap: float, conf: float, iou: float, merge_iou: float,
                     expected_labelmap: Sequence[str], timeout_s: float | None = None,
                     ) -> tuple[detector_pb2.DetectResponse, CallStats]:
        request = detector_pb2.DetectRequest(
            image=_image(sha), model_ids=list(model_ids), mode=mode,
            tile_plan=common_pb2.TilePlan(size=tile_size, overlap=tile_overlap), conf=conf, iou=iou,
            expected_labelmap=list(expected_labelmap),
            merge=detector_pb2.MergeSettings(method=detector_pb2.MERGE_METHOD_NMS, iou=merge_iou))
        return await self.call("Detect", request, image_data=data, timeout_s=timeout_s)


class Sam3Client(ModelServiceClient):
    service = "sam3"
    stub_factory = sam3_pb2_grpc.Sam3ServiceStub

    async def segment_text(self, sha: str, data: bytes, *, prompts: dict[str, list[str]],
                           windows: common_pb2.WindowSpec, score: float, mask_threshold: float,
                           return_masks: bool, model_id: str, timeout_s: float | None = None,
                           ) -> tuple[sam3_pb2.SegmentTextResponse, CallStats]:
        request = sam3_pb2.SegmentTextRequest(
            image=_image(sha), labels=[sam3_pb2.LabelPrompts(label=k, prompts=v) for k, v in prompts.items()],
            windows=windows, score_threshold=score, mask_threshold=mask_threshold, return_masks=return_masks,
            model_id=model_id)
        return await self.call("SegmentText", request, image_data=data, timeout_s=timeout_s)

    async def segment_exemplars(self, sha: str, data: bytes, *, exemplars: dict[str, list[Box]],
                                windows: common_pb2.WindowSpec, score: float, mask_threshold: float,
                                return_masks: bool, model_id: str, timeout_s: float | None = None,
                                ) -> tuple[sam3_pb2.SegmentExemplarsResponse, CallStats]:
        request = sam3_pb2.SegmentExemplarsRequest(
            image=_image(sha),
            exemplars=[sam3_pb2.ExemplarSet(label=k, positives=boxes_pb(v)) for k, v in exemplars.items()],
            windows=windows, score_threshold=score, mask_threshold=mask_threshold, return_masks=return_masks,
            model_id=model_id)
        return await self.call("SegmentExemplars", request, image_data=data, timeout_s=timeout_s)


class QwenClient(ModelServiceClient):
    service = "qwen"
    stub_factory = qwen_pb2_grpc.QwenServiceStub

    async def expand_synonyms(self, labels: Sequence[str], glossary: str, *, max_terms: int, model_id: str,
                              seed: int, timeout_s: float | None = None,
                              ) -> tuple[qwen_pb2.ExpandSynonymsResponse, CallStats]:
        request = qwen_pb2.ExpandSynonymsRequest(
            labels=list(labels), glossary=glossary, max_terms_per_class=max_terms, model_id=model_id,
            generation=common_pb2.GenerationSettings(seed=seed))
        return await self.call("ExpandSynonyms", request, timeout_s=timeout_s)

    async def caption(self, sha: str, data: bytes, *, windowed: bool, windows: common_pb2.WindowSpec,
                      avoid_labels: Sequence[str], hints: Sequence[qwen_pb2.LabelHint], glossary: str,
                      max_new_tokens: int, seed: int, model_id: str, timeout_s: float | None = None,
                      ) -> tuple[qwen_pb2.CaptionResponse, CallStats]:
        request = qwen_pb2.CaptionRequest(
            image=_image(sha), mode=qwen_pb2.CAPTION_MODE_WINDOWED if windowed else qwen_pb2.CAPTION_MODE_FULL,
            windows=windows if windowed else None, avoid_labels=list(avoid_labels), hints=list(hints),
            generation=common_pb2.GenerationSettings(max_new_tokens=max_new_tokens, seed=seed),
            model_id=model_id, glossary=glossary)
        return await self.call("Caption", request, image_data=data, timeout_s=timeout_s)


class ClassifierClient(ModelServiceClient):
    service = "classifier"
    stub_factory = classifier_pb2_grpc.ClassifierServiceStub

    async def classify(self, sha: str, data: bytes, boxes: Sequence[Box], *, head_id: str,
                       timeout_s: float | None = None) -> tuple[classifier_pb2.ClassifyResponse, CallStats]:
        request = classifier_pb2.ClassifyRequest(image=_image(sha), boxes=boxes_pb(boxes),
                                                 head_id=head_id)
        return await self.call("Classify", request, image_data=data, timeout_s=timeout_s)

    async def embed(self, sha: str, data: bytes, boxes: Sequence[Box], *, backbone_id: str = "",
                    normalize: bool = True, timeout_s: float | None = None,
                    ) -> tuple[classifier_pb2.EmbedResponse, CallStats]:
        request = classifier_pb2.EmbedRequest(image=_image(sha), boxes=boxes_pb(boxes),
                                              backbone_id=backbone_id, normalize=normalize)
        return await self.call("Embed", request, image_data=data, timeout_s=timeout_s)


@dataclass
class ServiceState:
    """One service as the orchestrator last saw it."""

    service: str
    address: str
    health: str
    models: list[common_pb2.ModelInfo] = field(default_factory=list)
    error: str = ""


# How long a service that answered may go unanswered before a probe says so: the keepalive's time to
# drop a silent connection, and a margin.
SILENT_PEER_GRACE_S = KEEPALIVE_S + KEEPALIVE_TIMEOUT_S + 5.0


class ServiceClients:
    """The four typed clients plus a short-lived cache of their ListModels answers."""

    def __init__(self, addresses: dict[str, str], timeouts: dict[str, float] | None = None, *,
                 max_message_mb: int = 64, health_timeout_s: float = 3.0, models_ttl_s: float = 2.0) -> None:
        timeouts = timeouts or {}
        kw = {"max_message_mb": max_message_mb}
        self.detector = DetectorClient(addresses["detector"], timeout_s=timeouts.get("detector", 120.0), **kw)
        self.sam3 = Sam3Client(addresses["sam3"], timeout_s=timeouts.get("sam3", 180.0), **kw)
        self.qwen = QwenClient(addresses["qwen"], timeout_s=timeouts.get("qwen", 180.0), **kw)
        self.classifier = ClassifierClient(addresses["classifier"], timeout_s=timeouts.get("classifier", 120.0),
                                           **kw)
        self.health_timeout_s = health_timeout_s
        self.models_ttl_s = models_ttl_s
        self._states: dict[str, tuple[float, ServiceState]] = {}
        self._last_serving: dict[str, tuple[float, ServiceState]] = {}
        self._lock = asyncio.Lock()

    def by_name(self, service: str) -> ModelServiceClient:
        return getattr(self, service)

    async def _probe(self, service: str) -> ServiceState:
        client = self.by_name(service)
        try:
            models = await client.list_models(self.health_timeout_s)
        except RemoteCallError as exc:
            last = self._last_serving.get(service)
            if (exc.remote.code == grpc.StatusCode.DEADLINE_EXCEEDED and last is not None
                    and time.monotonic() - last[0] < SILENT_PEER_GRACE_S
                    and client.raw.channel.get_state() == grpc.ChannelConnectivity.READY):
                # No answer at all, from a service that answered moments ago and whose channel still has
                # a live connection: one of its replicas went silent (a dead host sends no reset) and round
                # robin picked it. Keepalive drops that replica within the grace and the model calls are
                # retried on the others, so the last answer stands until then instead of failing the
                # stage now. A service that is down (connections refused) is not READY: reported as such.
                return last[1]
            health = await client.health(self.health_timeout_s)
            if health == "SERVING" and exc.remote.code == grpc.StatusCode.UNAVAILABLE:
                # The probe has its own channel. After a restart the call channel reconnects on its own
                # backoff (up to ~2 s), and until then every call fails: the service is not SERVING for callers.
                health = "UNREACHABLE"
            return ServiceState(service, client.address, health, [], exc.remote.message)
        health = await client.health(self.health_timeout_s)
        state = ServiceState(service, client.address, health, models)
        if health == "SERVING":
            self._last_serving[service] = (time.monotonic(), state)
        return state

    async def states(self, services: Sequence[str] = SERVICES, *, fresh: bool = False) -> dict[str, ServiceState]:
        """Health and models of each service; answers younger than models_ttl_s are reused."""
        now = time.monotonic()
        out: dict[str, ServiceState] = {}
        todo = []
        async with self._lock:
            for s in services:
                hit = self._states.get(s)
                if not fresh and hit is not None and now - hit[0] < self.models_ttl_s:
                    out[s] = hit[1]
                else:
                    todo.append(s)
        probed = await asyncio.gather(*(self._probe(s) for s in todo))
        async with self._lock:
            for state in probed:
                out[state.service] = state
                if state.health == "SERVING":
                    self._states[state.service] = (time.monotonic(), state)
                else:
                    self._states.pop(state.service, None)
        return {s: out[s] for s in services}

    async def close(self) -> None:
        await asyncio.gather(*(self.by_name(s).close() for s in SERVICES))
