"""Kubernetes manifests, offline: every overlay (and the optional components
and the model-fill Job) builds with `kubectl kustomize`, every document passes
strict schema validation for k8s 1.30, and the basic wiring holds (GPU per
model service, headless Services, gRPC probes on the serving port, settings
keys the services actually read). The platform rules are in
test_deploy_k8s_rules.py."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_render import (
    FULL_NAMES,
    K8S,
    KUBECTL,
    MODEL_SERVICES,
    OVERLAYS,
    PORTS,
    ROOT,
    build,
    build_with_components,
    by_kind,
    container,
    kustomize,
    service_settings,
)

from tator_core.settings import ServiceSettings

kubernetes_validate = pytest.importorskip("kubernetes_validate")

pytestmark = [pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (needed for `kubectl kustomize`)"),
              pytest.mark.timeout(120)]

# Kinds of the Prometheus operator: no bundled schema, checked by the rules tests.
CRD_KINDS = {"PodMonitor", "ServiceMonitor"}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, build(request.param)


def test_every_document_is_valid(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    assert {d["kind"] for d in docs} >= {"Namespace", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim",
                                         "PodDisruptionBudget", "NetworkPolicy"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    (ns,) = by_kind(docs, "Namespace")
    assert namespaces == {ns}
    # The parameters object is local-config: used by replacements, never applied.
    assert "tator-params" not in by_kind(docs, "ConfigMap")


def test_components_and_model_fill_job_are_valid(tmp_path: Path) -> None:
    docs = build_with_components("gpu-cluster", ["monitoring", "tracing", "auth", "tls"],
                                 tmp_path / "with-components")
    assert {"PodMonitor"} <= {d["kind"] for d in docs}
    job = kustomize(K8S / "jobs" / "model-fill")
    for doc in docs + job:
        if doc["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(doc, "1.30", strict=True)
    assert {d["kind"] for d in job} == {"Job", "NetworkPolicy"}


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
    assert set(deps) == {*PORTS, "envoy", "web"}
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


def test_gpu_placement(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    deps = by_kind(docs, "Deployment")
    for name, dep in deps.items():
        limits = container(dep)["resources"].get("limits", {})
        if name in MODEL_SERVICES and overlay == "gpu-cluster":
            env = service_settings(docs, name)
            assert limits["nvidia.com/gpu"] == 1, name
            assert env[f"TATOR_{name.upper()}_DEVICE"] == "cuda:0"
            assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        else:
            assert "nvidia.com/gpu" not in limits, name
        if name in MODEL_SERVICES and overlay == "dev":
            assert service_settings(docs, name)[f"TATOR_{name.upper()}_DEVICE"] == "cpu"


def test_replicas_and_images(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    deps = by_kind(docs, "Deployment")
    replicas = {n: d["spec"].get("replicas") for n, d in deps.items()}
    assert replicas["orchestrator"] == 1 and deps["orchestrator"]["spec"]["strategy"]["type"] == "Recreate"
    if overlay == "gpu-cluster":
        # The autoscalers own the model services' replica counts.
        assert all(replicas[s] is None for s in MODEL_SERVICES)
        hpas = by_kind(docs, "HorizontalPodAutoscaler")
        assert hpas["detector"]["spec"]["minReplicas"] == 2 and hpas["sam3"]["spec"]["minReplicas"] == 2
    else:
        assert set(replicas.values()) == {1}
    tags = {container(d)["image"] for n, d in deps.items() if n not in ("envoy", "web")}
    assert len(tags) == 1 and ":" in tags.pop()  # one pinned image for every service
    assert container(deps["envoy"])["image"] == "envoyproxy/envoy:v1.40.0"
    assert container(deps["web"])["image"].rsplit(":", 1)[0].endswith("tator-web")


def test_volumes_and_config_references_resolve(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    pvcs, cms = by_kind(docs, "PersistentVolumeClaim"), by_kind(docs, "ConfigMap")
    assert set(pvcs) == {"tator-models", "tator-data", "tator-state"}
    shared = "ReadWriteOnce" if overlay == "dev" else "ReadWriteMany"
    assert pvcs["tator-models"]["spec"]["accessModes"] == pvcs["tator-data"]["spec"]["accessModes"] == [shared]
    assert pvcs["tator-state"]["spec"]["accessModes"] == ["ReadWriteOnce"]
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
    module = importlib.import_module(f"svc_{service}.settings")
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings]
    assert classes, f"svc_{service}.settings defines no ServiceSettings subclass"
    return set().union(*(c.model_fields for c in classes))


def test_settings_keys_are_read_by_the_services(tmp_path: Path) -> None:
    """Every TATOR_<SERVICE>_<FIELD> key in a service's ConfigMap names a real
    settings field of THAT service (a typo, or a key in the wrong service's
    ConfigMap, would be silently ignored), in every overlay and with the
    optional components; ports/addresses agree with the Services."""
    renders = [build(o) for o in OVERLAYS]
    renders.append(build_with_components("gpu-cluster", ["monitoring", "tracing", "auth", "tls"],
                                         tmp_path / "components"))
    for docs in renders:
        for service in PORTS:
            env = service_settings(docs, service)
            prefix = f"TATOR_{service.upper()}_"
            for key in env:
                assert key.startswith(prefix), f"{key} is in the {service} ConfigMap"
                field = key[len(prefix):].lower()
                assert field in _settings_fields(service), f"{key}: svc_{service} has no setting {field!r}"
            assert env[f"{prefix}PORT"] == str(PORTS[service])
            assert env[f"{prefix}HOST"] == "0.0.0.0"
        orch = service_settings(docs, "orchestrator")
        for name in MODEL_SERVICES:
            assert orch[f"TATOR_ORCHESTRATOR_{name.upper()}_ADDRESS"] == f"dns:///{name}-headless:{PORTS[name]}"


def test_envoy_configmap_is_the_validated_file(rendered: tuple[str, list[dict]]) -> None:
    """tests/test_deploy_envoy.py validates k8s/base/envoy-config/envoy.yaml; the
    ConfigMap must carry exactly that file (and the drain hook), pointing at the
    orchestrator Service."""
    _, docs = rendered
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config")]
    base = ROOT / "k8s" / "base" / "envoy-config"
    assert cm["data"]["envoy.yaml"] == (base / "envoy.yaml").read_text()
    assert cm["data"]["drain.sh"] == (base / "drain.sh").read_text()
    cfg: Any = yaml.safe_load(cm["data"]["envoy.yaml"])
    (cluster,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "orchestrator"]
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    svc = by_kind(docs, "Service")[sock["address"]]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["ports"][0]["port"] == sock["port_value"]
    listeners = {lis["name"]: lis["address"]["socket_address"]["port_value"]
                 for lis in cfg["static_resources"]["listeners"]}
    envoy = container(by_kind(docs, "Deployment")["envoy"])
    assert {"name": "http", "containerPort": listeners["grpc_web"], "protocol": "TCP"} in envoy["ports"]
    assert {"name": "metrics", "containerPort": listeners["metrics"], "protocol": "TCP"} in envoy["ports"]
    assert envoy["readinessProbe"]["httpGet"]["path"] == "/healthz"
