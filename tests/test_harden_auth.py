"""Bearer tokens with two roles and TLS (optionally mutual) on a real server built by start_server.

Without a token a caller gets UNAUTHENTICATED for everything but Health and reflection; the read
role is PERMISSION_DENIED on the admin methods; clients find their token the way the CLI does
(TATOR_TOKEN, else the stack's tokens file). TLS material is made with the openssl CLI.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from stand_in import one_model

from tator_core.auth import generate_tokens, is_admin_method
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

FULL = "tator.classifier.v1.ClassifierService"


class Fake(pbg.ClassifierServiceServicer):
    async def TrainHead(self, request, context):
        yield pb.TrainHeadResponse()


async def serve(**settings):
    # ListModels is the shared model-management service's, served next to the fake by the bootstrap.
    spec = ServiceSpec("classifier", FULL, lambda s: pbg.add_ClassifierServiceServicer_to_server(Fake(), s),
                       models=one_model())
    running = await start_server(spec, ServiceSettings(warmup=False, **settings))
    await running.ready.wait()
    return running


@pytest.fixture
def tokens(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "tokens.json"
    toks = generate_tokens(path)
    monkeypatch.delenv("TATOR_TOKEN", raising=False)
    monkeypatch.setenv("TATOR_AUTH_TOKENS_FILE", str(path))
    return path, toks


def train_request() -> pb.TrainHeadRequest:
    return pb.TrainHeadRequest(dataset_dir="d", head_id="h")


async def code_of(coro) -> grpc.StatusCode:
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def first(call):
    async for item in call:
        return item


def test_tokens_file_is_private_and_roles_cover_the_state_changers(tokens):
    path, toks = tokens
    assert path.stat().st_mode & 0o077 == 0 and toks.read != toks.admin
    assert generate_tokens(path) == toks                      # a second start reuses them
    for method in ("LoadModel", "UnloadModel", "SetDefaultModel", "TrainHead", "PutGlossary", "DeleteRecipe", "ImportRecipe",
                   "CancelJob"):
        assert is_admin_method(method), method
    for method in ("Detect", "Classify", "ListModels", "GetJob", "WatchJob", "Prepass", "Replay", "ExportRecipe"):
        assert not is_admin_method(method), method


async def test_no_token_gets_nothing_but_health_and_reflection(tokens):
    path, toks = tokens
    running = await serve(auth_tokens_file=path)
    try:
        async with grpc.aio.insecure_channel(running.address) as ch:
            stub = pbg.ClassifierServiceStub(ch)
            manage = mpbg.ModelManagementServiceStub(ch)
            for meta in ((), (("authorization", "Bearer wrong-token-0123456789"),), (("authorization", "Basic x"),)):
                with pytest.raises(grpc.aio.AioRpcError) as ei:
                    await manage.ListModels(mpb.ListModelsRequest(), metadata=meta, timeout=5)
                err = parse_rpc_error(ei.value)
                assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
            assert await code_of(first(stub.TrainHead(train_request()))) == grpc.StatusCode.UNAUTHENTICATED
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

            async def reqs():
                yield reflection_pb2.ServerReflectionRequest(list_services="")

            async for resp in reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(reqs()):
                assert FULL in {s.name for s in resp.list_services_response.service}
                break

            read = (("authorization", f"Bearer {toks.read[0]}"),)
            admin = (("authorization", f"Bearer {toks.admin[0]}"),)
            assert (await manage.ListModels(mpb.ListModelsRequest(), metadata=read, timeout=5)).models[0].id == "m"
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await first(stub.TrainHead(train_request(), metadata=read))
            err = parse_rpc_error(ei.value)
            assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
            assert await code_of(first(stub.TrainHead(train_request(), metadata=admin))) == grpc.StatusCode.OK
    finally:
        await running.stop()


async def test_clients_find_their_token_like_the_cli(tokens, monkeypatch):
    path, toks = tokens
    running = await serve(auth_tokens_file=path)
    try:
        admin = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=5)
        read = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=5, role="read")
        assert admin.token == toks.admin[0] and read.token == toks.read[0]
        assert (await read.list_models())[0].id == "m"
        assert await code_of(first(read.stream("TrainHead", train_request()))) == grpc.StatusCode.PERMISSION_DENIED
        assert await code_of(first(admin.stream("TrainHead", train_request()))) == grpc.StatusCode.OK
        monkeypatch.setenv("TATOR_TOKEN", "not-a-known-token-at-all")
        stranger = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=5)
        assert await code_of(stranger.list_models()) == grpc.StatusCode.UNAUTHENTICATED
        for c in (admin, read, stranger):
            await c.close()
    finally:
        await running.stop()


def make_pki(d):
    """A CA, a server cert for 127.0.0.1/localhost and a client cert, with the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=tator-test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext")
    return d


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_tls_and_mutual_tls(tmp_path, monkeypatch):
    pki = make_pki(tmp_path)
    monkeypatch.delenv("TATOR_TOKEN", raising=False)
    monkeypatch.setenv("TATOR_AUTH_TOKENS_FILE", str(tmp_path / "none.json"))
    running = await serve(tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key",
                          tls_client_ca_file=pki / "ca.pem")
    try:
        plain = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=3)
        assert await code_of(plain.list_models()) == grpc.StatusCode.UNAVAILABLE
        monkeypatch.setenv("TATOR_TLS_CA_FILE", str(pki / "ca.pem"))
        no_cert = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=3)
        assert await code_of(no_cert.list_models()) == grpc.StatusCode.UNAVAILABLE
        monkeypatch.setenv("TATOR_TLS_CERT_FILE", str(pki / "client.pem"))
        monkeypatch.setenv("TATOR_TLS_KEY_FILE", str(pki / "client.key"))
        mutual = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=5)
        assert (await mutual.list_models())[0].id == "m"
        for c in (plain, no_cert, mutual):
            await c.close()
    finally:
        await running.stop()
        await asyncio.sleep(0)


def test_tator_up_hands_tokens_to_every_service_and_the_edge(tmp_path, monkeypatch):
    from tator_cli import edge, stack

    monkeypatch.setenv("TATOR_HOME", str(tmp_path))
    monkeypatch.delenv("TATOR_AUTH_TOKENS_FILE", raising=False)
    monkeypatch.delenv("TATOR_AUTH", raising=False)
    services = stack.load_config(None)
    for name in ("detector", "orchestrator"):
        _, env = stack.command_for(services[name], services)
        assert env[f"TATOR_{name.upper()}_AUTH_TOKENS_FILE"] == str(tmp_path / "secrets" / "tokens.json")
    admin = json.loads((tmp_path / "secrets" / "tokens.json").read_text())["admin"]
    cfg = edge.render_envoy_config(edge.load_edge({}), "127.0.0.1:50050", token=admin)
    dumped = json.dumps(cfg)
    assert f"Bearer {admin}" in dumped
    monkeypatch.setenv("TATOR_AUTH", "off")
    _, env = stack.command_for(services["detector"], services)
    assert "TATOR_DETECTOR_AUTH_TOKENS_FILE" not in env
