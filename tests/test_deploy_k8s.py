"""Kubernetes manifests, offline: every overlay builds with `kubectl kustomize`,
every document passes strict schema validation for k8s 1.30, and the
placement rules hold (GPU per model service, headless Services, gRPC probes
on the serving port, settings keys the services actually read)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tator_core.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ["dev", "gpu-cluster"]
KUBECTL = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
kubernetes_validate = pytest.importorskip("kubernetes_validate")

pytestmark = [pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (needed for `kubectl kustomize`)"),
              pytest.mark.timeout(60)]

MODEL_SERVICES = ["detector", "sam3", "qwen", "classifier"]
PORTS = {"orchestrator": 50050, "detector": 50051, "sam3": 50052, "qwen": 50053, "classifier": 50054}
FULL_NAMES = {"orchestrator": "tator.orchestrator.v1.OrchestratorService",
              "detector": "tator.detector.v1.DetectorService", "sam3": "tator.sam3.v1.Sam3Service",
              "qwen": "tator.qwen.v1.QwenService", "classifier": "tator.classifier.v1.ClassifierService"}
# Settings the orchestrator must grow for the cluster (one address per model service).
ORCHESTRATOR_EXTRA = {f"{s}_address" for s in MODEL_SERVICES}


def build(overlay: str) -> list[dict]:
    res = subprocess.run([KUBECTL, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, build(request.param)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(dep: dict) -> dict:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def settings_map(docs: list[dict]) -> dict[str, str]:
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("tator-settings")]
    return cm["data"]


def test_every_document_is_valid(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    assert {d["kind"] for d in docs} >= {"Namespace", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    (ns,) = by_kind(docs, "Namespace")
    assert namespaces == {ns}


def test_strict_validation_catches_a_typo(rendered: tuple[str, list[dict]]) -> None:
    """The check above would fail on an unknown field: strict mode is on."""
    _, docs = rendered
    dep = dict(by_kind(docs, "Deployment")["detector"])
    dep["spec"] = {**dep["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, "1.30", strict=True)


def test_one_deployment_and_service_per_service(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    deps, svcs = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert set(deps) == {*PORTS, "envoy"}
    for name, port in PORTS.items():
        svc = svcs[f"{name}-headless"]["spec"]
        assert svc["clusterIP"] == "None", f"{name}: gRPC client-side balancing needs a headless Service"
        pod_labels = deps[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["selector"].items() <= pod_labels.items()
        grpc_port = next(p for p in svc["ports"] if p["name"] == "grpc")
        assert grpc_port["port"] == port and grpc_port["appProtocol"] == "grpc"
        c = container(deps[name])
        assert c["command"] == ["python", "-m", f"svc_{name}"]
        assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in c["ports"]


def test_native_grpc_probes_on_the_serving_port(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    deps = by_kind(docs, "Deployment")
    for name, port in PORTS.items():
        c = container(deps[name])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == port, (name, probe)
        # Readiness names the service whose health status flips after warm-up.
        assert c["readinessProbe"]["grpc"]["service"] == FULL_NAMES[name]
        grace = deps[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert float(settings_map(docs)[f"TATOR_{name.upper()}_GRACE_S"]) < grace


def test_gpu_placement(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    deps, env = by_kind(docs, "Deployment"), settings_map(docs)
    for name, dep in deps.items():
        limits = container(dep)["resources"].get("limits", {})
        if name in MODEL_SERVICES and overlay == "gpu-cluster":
            assert limits["nvidia.com/gpu"] == 1, name
            assert env[f"TATOR_{name.upper()}_DEVICE"] == "cuda:0"
            assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        else:
            assert "nvidia.com/gpu" not in limits, name
        if name in MODEL_SERVICES and overlay == "dev":
            assert env[f"TATOR_{name.upper()}_DEVICE"] == "cpu"


def test_replicas_and_images(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    deps = by_kind(docs, "Deployment")
    replicas = {n: d["spec"]["replicas"] for n, d in deps.items()}
    assert replicas["orchestrator"] == 1 and deps["orchestrator"]["spec"]["strategy"]["type"] == "Recreate"
    if overlay == "gpu-cluster":
        assert replicas["detector"] == 2 and replicas["sam3"] == 2
        assert set(by_kind(docs, "PodDisruptionBudget")) == {"detector", "sam3", "envoy"}
    else:
        assert set(replicas.values()) == {1}
    tags = {container(d)["image"] for n, d in deps.items() if n != "envoy"}
    assert len(tags) == 1 and ":" in tags.pop()  # one pinned image for every service
    assert container(deps["envoy"])["image"] == "envoyproxy/envoy:v1.40.0"


def test_volumes_and_config_references_resolve(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    pvcs, cms = by_kind(docs, "PersistentVolumeClaim"), by_kind(docs, "ConfigMap")
    assert set(pvcs) == {"tator-models", "tator-data"}
    mode = "ReadWriteOnce" if overlay == "dev" else "ReadWriteMany"
    assert all(p["spec"]["accessModes"] == [mode] for p in pvcs.values())
    for name, dep in by_kind(docs, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        for vol in pod["volumes"]:
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in pvcs
            if "configMap" in vol:
                assert vol["configMap"]["name"] in cms
        for ref in container(dep).get("envFrom", []):
            assert ref["configMapRef"]["name"] in cms  # the hashed generator name
        mounts = {m["mountPath"]: m for m in container(dep).get("volumeMounts", [])}
        if name in MODEL_SERVICES:
            # Only the classifier writes models (trained heads).
            assert mounts["/tator/models"].get("readOnly", False) is (name != "classifier")


def _settings_fields(service: str) -> set[str]:
    """Fields of the service's settings class, or the shared ones until it exists."""
    try:
        module = importlib.import_module(f"svc_{service}.settings")
    except ImportError:
        return set(ServiceSettings.model_fields) | (ORCHESTRATOR_EXTRA if service == "orchestrator" else set())
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings]
    assert classes, f"svc_{service}.settings defines no ServiceSettings subclass"
    return set().union(*(c.model_fields for c in classes))


def test_settings_keys_are_read_by_the_services(rendered: tuple[str, list[dict]]) -> None:
    """Every TATOR_<SERVICE>_<FIELD> key names a real settings field (a typo would
    be silently ignored by the service), and ports/addresses agree with the Services."""
    _, docs = rendered
    env = settings_map(docs)
    for key in env:
        if key in ("TATOR_HOME", "HOME"):
            continue
        service = next((s for s in PORTS if key.startswith(f"TATOR_{s.upper()}_")), None)
        assert service, f"{key} belongs to no service"
        field = key[len(f"TATOR_{service.upper()}_"):].lower()
        assert field in _settings_fields(service), f"{key}: svc_{service} has no setting {field!r}"
    for name, port in PORTS.items():
        assert env[f"TATOR_{name.upper()}_PORT"] == str(port)
        assert env[f"TATOR_{name.upper()}_HOST"] == "0.0.0.0"
    for name in MODEL_SERVICES:
        assert env[f"TATOR_ORCHESTRATOR_{name.upper()}_ADDRESS"] == f"dns:///{name}-headless:{PORTS[name]}"


def test_envoy_configmap_is_the_validated_file(rendered: tuple[str, list[dict]]) -> None:
    """tests/test_deploy_envoy.py validates k8s/base/envoy-config/envoy.yaml; the
    ConfigMap must carry exactly that file, pointing at the orchestrator Service."""
    _, docs = rendered
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config")]
    text = cm["data"]["envoy.yaml"]
    assert text == (ROOT / "k8s" / "base" / "envoy-config" / "envoy.yaml").read_text()
    cfg: Any = yaml.safe_load(text)
    (cluster,) = cfg["static_resources"]["clusters"]
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    svc = by_kind(docs, "Service")[sock["address"]]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["ports"][0]["port"] == sock["port_value"]
    listen = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    envoy = container(by_kind(docs, "Deployment")["envoy"])
    assert {"name": "http", "containerPort": listen, "protocol": "TCP"} in envoy["ports"]
    assert envoy["readinessProbe"]["httpGet"]["path"] == "/healthz"
