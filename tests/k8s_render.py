"""Rendering the kustomize trees for the manifest tests (kubectl kustomize, offline)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
KUBECTL = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
OVERLAYS = ["dev", "gpu-cluster"]
COMPONENTS = ["monitoring", "tracing"]
MODEL_SERVICES = ["detector", "sam3", "qwen", "classifier"]
PORTS = {"orchestrator": 50050, "detector": 50051, "sam3": 50052, "qwen": 50053, "classifier": 50054}
METRICS_PORTS = {"orchestrator": 9460, "detector": 9461, "sam3": 9462, "qwen": 9463, "classifier": 9464}
FULL_NAMES = {"orchestrator": "tator.orchestrator.v1.OrchestratorService",
              "detector": "tator.detector.v1.DetectorService", "sam3": "tator.sam3.v1.Sam3Service",
              "qwen": "tator.qwen.v1.QwenService", "classifier": "tator.classifier.v1.ClassifierService"}


def kustomize(path: Path) -> list[dict]:
    assert KUBECTL is not None
    res = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def build(overlay: str) -> list[dict]:
    return kustomize(K8S / "overlays" / overlay)


def build_with_components(overlay: str, components: list[str], workdir: Path) -> list[dict]:
    """An overlay plus optional components, the way a user adds them: a
    kustomization next to it (kustomize refuses absolute paths, so relative)."""
    def rel(p: Path) -> str:
        return os.path.relpath(p, workdir)

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [rel(K8S / "overlays" / overlay)],
        "components": [rel(K8S / "components" / c) for c in components]}))
    return kustomize(workdir)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(dep: dict) -> dict:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def service_settings(docs: list[dict], service: str) -> dict[str, str]:
    """The env a service's pods get from their ConfigMap(s)."""
    cms = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for ref in container(by_kind(docs, "Deployment")[service]).get("envFrom", []):
        env.update(cms[ref["configMapRef"]["name"]]["data"])
    return env
