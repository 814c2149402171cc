"""No server path in what a client reads: error statuses (message, ErrorInfo metadata, field
violations), ModelInfo reasons and extras, job errors. A path is cut to its last part, so the
message still names the file. Real servers built by start_server, and the real classifier service
over a registry whose weights are missing."""

from __future__ import annotations

import grpc
import pytest
import yaml

from tator_core import errors
from tator_core.client import ServiceClient
from tator_core.convert import ModelStatus, model_info_pb
from tator_core.errors import parse_rpc_error, scrub_paths
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
from tator_core.gen.tator.sam3.v1 import sam3_pb2 as sam3_pb
from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc as sam3_pbg
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings


@pytest.mark.parametrize(("text", "expected"), [
    ("weights not found at /srv/models/clip/best.pt", "weights not found at …/best.pt"),
    ("(/etc/passwd) is outside the data root", "(…/passwd) is outside the data root"),
    ("dataset_dir: /srv/data/../secret/", "dataset_dir: …/secret"),
    # Not server paths: URLs, gRPC targets, rates, relative paths, fractions.
    ("dns:///detector-headless:50051 and http://otel:4317/v1", "dns:///detector-headless:50051 and http://otel:4317/v1"),
    ("12 img/s, yolo-synth/best.pt, 1/2 of it", "12 img/s, yolo-synth/best.pt, 1/2 of it"),
])
def test_scrub_paths(text, expected):
    assert scrub_paths(text) == expected


class Leaky(mpbg.ModelManagementServiceServicer):
    async def ListModels(self, request, context):
        raise errors.invalid_argument("dataset_dir", "/srv/tator/data/../../etc is outside the data root",
                                      path="/srv/tator/data")


async def test_error_statuses_carry_no_server_path():
    spec = ServiceSpec("classifier", "tator.classifier.v1.ClassifierService",
                       lambda s: mpbg.add_ModelManagementServiceServicer_to_server(Leaky(), s))
    running = await start_server(spec, ServiceSettings(warmup=False))
    await running.ready.wait()
    client = ServiceClient(running.address, mpbg.ModelManagementServiceStub, timeout_s=10, token="")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.call("ListModels", mpb.ListModelsRequest())
        err = parse_rpc_error(info.value)
        text = " ".join([err.message, *err.metadata.values(), *(d for _, d in err.field_violations)])
        assert "/srv" not in text and "…/etc is outside" in err.message
        assert err.metadata["path"] == "…/data" and err.field_violations[0][0] == "dataset_dir"
    finally:
        await client.close()
        await running.stop(0)


def test_model_info_reason_and_extra_carry_no_server_path():
    info = model_info_pb(ModelStatus(id="h", family="head", version="", device="cpu", state="MISSING",
                                     reason="weights not found at /home/op/.tator/models/h.pt",
                                     extra={"backbone_dir": "/home/op/.tator/models/clip", "classes": "3"}))
    assert info.reason == "weights not found at …/h.pt"
    assert dict(info.extra) == {"backbone_dir": "…/clip", "classes": "3"}


async def test_list_models_of_a_real_service_names_a_missing_file_without_its_path(tmp_path):
    from svc_classifier.server import build_spec
    from svc_classifier.settings import ClassifierSettings

    registry = tmp_path / "models" / "registry.yaml"
    registry.parent.mkdir()
    registry.write_text(yaml.safe_dump({"models": [
        {"id": "clip-gone", "family": "clip", "path": "clip-gone"},
        {"id": "head-gone", "family": "head", "path": str(tmp_path / "heads" / "head-gone.pt")}]}))
    settings = ClassifierSettings(host="127.0.0.1", port=0, metrics_port=-1, device="cpu", registry=registry,
                                  heads_dir=tmp_path / "heads", data_root=tmp_path / "data", warmup=False)
    spec = build_spec(settings)
    running = await start_server(spec, settings)
    await running.ready.wait()
    client = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=30, token="")
    try:
        stub = mpbg.ModelManagementServiceStub(client.channel)
        resp = await client.call("ListModels", mpb.ListModelsRequest(), stub=stub)
        reasons = {m.id: m.reason for m in resp.models}
        assert set(reasons) >= {"clip-gone", "head-gone"}
        for mid in ("clip-gone", "head-gone"):
            assert str(tmp_path) not in reasons[mid] and mid in reasons[mid], reasons
        assert str(tmp_path) not in resp.SerializeToString().decode("utf-8", "replace")
    finally:
        await client.close()
        await running.stop(0)


class AnySam3(sam3_pbg.Sam3ServiceServicer, mpbg.ModelManagementServiceServicer):
    async def SegmentText(self, request, context):
        return sam3_pb.SegmentTextResponse()

    async def ListModels(self, request, context):
        raise errors.TatorError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "x" * 100_000,
                                {f"k{i}": "v" * 1000 for i in range(100)},
                                [(f"labels[{i}]", "bad " * 50) for i in range(1000)])


async def test_a_request_with_a_thousand_bad_items_still_gets_its_invalid_argument():
    """The status details travel in a trailer that gRPC clients refuse past 16 KiB (the call then fails
    RESOURCE_EXHAUSTED, "received metadata size exceeds hard limit"): they are capped."""
    def add(server) -> None:
        sam3_pbg.add_Sam3ServiceServicer_to_server(AnySam3(), server)
        mpbg.add_ModelManagementServiceServicer_to_server(AnySam3(), server)

    spec = ServiceSpec("sam3", "tator.sam3.v1.Sam3Service", add)
    running = await start_server(spec, ServiceSettings(warmup=False))
    await running.ready.wait()
    client = ServiceClient(running.address, sam3_pbg.Sam3ServiceStub, timeout_s=10, token="")
    try:
        # 192 empty prompts: protovalidate finds 192 violations at the door.
        request = sam3_pb.SegmentTextRequest(
            image=common_pb2.ImageRef(sha256="0" * 64),
            labels=[sam3_pb.LabelPrompts(label=f"l{j}", prompts=[""] * 64) for j in range(3)])
        for call in (client.call("SegmentText", request), client.list_models()):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            err = parse_rpc_error(info.value)
            assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"), err.message[:200]
            assert 0 < len(err.field_violations) <= errors.MAX_VIOLATIONS
            assert int(err.metadata["violations_total"]) in (192, 1000) and len(err.message) <= 400
            assert err.metadata["request_id"]  # kept whatever else is trimmed
    finally:
        await client.close()
        await running.stop(0)
