"""What a platform team checks in the rendered manifests of every overlay:
network policy, GPU-free rollouts, disruption budgets, spreading, placement,
autoscaling, drain timing, storage, per-service configuration, secrets and
scraping. Each rule is asserted on `kubectl kustomize` output."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml
from k8s_render import (
    FULL_NAMES,
    K8S,
    KUBECTL,
    METRICS_PORTS,
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

from tator_core import metrics

pytestmark = [pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (needed for `kubectl kustomize`)"),
              pytest.mark.timeout(120)]

EDGE = {"envoy": 8080, "web": 8081}
ENVOY_METRICS = 9902


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, build(request.param)


def pod_labels(docs: list[dict]) -> dict[str, dict[str, str]]:
    return {n: d["spec"]["template"]["metadata"]["labels"] for n, d in by_kind(docs, "Deployment").items()}


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + In/NotIn/Exists/DoesNotExist) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def port_set(ports: list[dict] | None) -> set[int] | None:
    """None = all ports."""
    if not ports:
        return None
    out: set[int] = set()
    for p in ports:
        out |= set(range(p["port"], p.get("endPort", p["port"]) + 1))
    return out


def allowed_flows(docs: list[dict], ns: str) -> set[tuple[str, str, int]]:
    """Every (source, destination, port) that BOTH the source's egress and the
    destination's ingress policies allow, among the Tator pods plus the
    outside actors 'prometheus', 'any' (ingress from anywhere) and 'dns'."""
    pods = pod_labels(docs)
    actors = {**{n: (ns, lab) for n, lab in pods.items()},
              "prometheus": ("monitoring", {"app.kubernetes.io/name": "prometheus"}),
              "dns": ("kube-system", {"k8s-app": "kube-dns"}),
              "any": ("elsewhere", {"app": "someone"})}
    policies = list(by_kind(docs, "NetworkPolicy").values())

    def peer_matches(peer: dict, actor: str) -> bool:
        actor_ns, labels = actors[actor]
        if "ipBlock" in peer:
            return actor == "any"
        ns_ok = (actor_ns == ns) if "namespaceSelector" not in peer else selects(
            peer["namespaceSelector"], {"kubernetes.io/metadata.name": actor_ns})
        return ns_ok and selects(peer.get("podSelector", {}), labels)

    def rules(pod: str, direction: str) -> list[dict] | None:
        """None: no policy of this direction selects the pod (all allowed)."""
        chosen = [p for p in policies if direction in p["spec"]["policyTypes"]
                  and selects(p["spec"]["podSelector"], pods[pod])]
        if not chosen:
            return None
        return [r for p in chosen for r in p["spec"].get(direction.lower(), [])]

    flows = set()
    all_ports = set(PORTS.values()) | set(METRICS_PORTS.values()) | set(EDGE.values()) | {ENVOY_METRICS, 53}
    for src in actors:
        for dst in actors:
            if src == dst or (src not in pods and dst not in pods):
                continue
            for port in all_ports:
                if dst in pods:
                    ing = rules(dst, "Ingress")
                    if ing is not None and not any(
                            (not r.get("from") or any(peer_matches(f, src) for f in r["from"]))
                            and (port_set(r.get("ports")) is None or port in port_set(r.get("ports")))
                            for r in ing):
                        continue
                    if port not in {c["containerPort"] for c in container(by_kind(docs, "Deployment")[dst])["ports"]}:
                        continue
                elif dst == "dns" and port != 53 or dst in ("any", "prometheus"):
                    continue
                if src in pods:
                    eg = rules(src, "Egress")
                    if eg is not None and not any(
                            (not r.get("to") or any(peer_matches(t, dst) for t in r["to"]))
                            and (port_set(r.get("ports")) is None or port in port_set(r.get("ports")))
                            for r in eg):
                        continue
                flows.add((src, dst, port))
    return flows


def test_network_policy_allows_exactly_the_documented_flows(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    (ns,) = by_kind(docs, "Namespace")
    deny = by_kind(docs, "NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    expected = {("envoy", "orchestrator", 50050)}
    expected |= {("orchestrator", s, PORTS[s]) for s in MODEL_SERVICES}
    expected |= {("prometheus", s, METRICS_PORTS[s]) for s in PORTS} | {("prometheus", "envoy", ENVOY_METRICS)}
    # The edge is open to everyone outside (an Ingress, a LoadBalancer, a port-forward).
    expected |= {(who, edge, port) for who in ("any", "prometheus", "dns") for edge, port in EDGE.items()}
    expected |= {("orchestrator", "dns", 53), ("envoy", "dns", 53)}
    assert allowed_flows(docs, ns) == expected


def test_network_policy_check_would_catch_an_extra_flow(rendered: tuple[str, list[dict]]) -> None:
    """The flow computation is not vacuous: one more allowed flow shows up."""
    _, docs = rendered
    (ns,) = by_kind(docs, "Namespace")
    extra = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "leak"},
             "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "detector"}},
                      "policyTypes": ["Ingress"], "ingress": [{"ports": [{"protocol": "TCP", "port": 50051}]}]}}
    assert ("any", "detector", 50051) in allowed_flows(docs + [extra], ns)
    assert ("any", "detector", 50051) not in allowed_flows(docs, ns)


def test_gpu_rollouts_need_no_spare_gpu(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    for name in MODEL_SERVICES:
        strategy = by_kind(docs, "Deployment")[name]["spec"]["strategy"]
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, name


def test_every_service_has_a_disruption_budget(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    pdbs, pods = by_kind(docs, "PodDisruptionBudget"), pod_labels(docs)
    for name, labels in pods.items():
        covering = [p for p in pdbs.values() if selects(p["spec"]["selector"], labels)]
        assert len(covering) == 1, name
        # maxUnavailable, not minAvailable: a one-replica service must not block node drains.
        assert covering[0]["spec"] == {"maxUnavailable": 1, "selector": covering[0]["spec"]["selector"]}, name


def test_topology_spread_is_per_service(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    pods = pod_labels(docs)
    for name, dep in by_kind(docs, "Deployment").items():
        spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert any(c["topologyKey"] == "kubernetes.io/hostname" for c in spread), name
        for c in spread:
            chosen = {n for n, lab in pods.items() if selects(c["labelSelector"], lab)}
            assert chosen == {name}, f"{name} spreads against {chosen}"
            assert c["matchLabelKeys"] == ["pod-template-hash"]


def test_cpu_pods_stay_off_gpu_nodes(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    for name, dep in by_kind(docs, "Deployment").items():
        spec = dep["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in container(dep).get("env", [])}
        if name in MODEL_SERVICES:
            assert "NVIDIA_VISIBLE_DEVICES" not in env
            continue
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert all({"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}
                   in t["matchExpressions"] for t in terms), name
        assert env["NVIDIA_VISIBLE_DEVICES"] == "void", name
        assert not any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])), name


def test_qwen_gpu_knob_only_in_the_gpu_overlay(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    affinity = by_kind(docs, "Deployment")["qwen"]["spec"]["template"]["spec"].get("affinity", {})
    if overlay != "gpu-cluster":
        assert "nodeAffinity" not in affinity
        return
    required = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (memory,) = [e for t in required for e in t["matchExpressions"] if e["key"] == "nvidia.com/gpu.memory"]
    assert memory["operator"] == "Gt" and int(memory["values"][0]) >= 24000
    for other in ("detector", "sam3", "classifier"):
        assert "affinity" not in by_kind(docs, "Deployment")[other]["spec"]["template"]["spec"]


def test_autoscalers_use_metrics_the_services_export(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    if overlay != "gpu-cluster":
        assert not hpas
        return
    assert set(hpas) == set(MODEL_SERVICES)
    exported = {m.describe()[0].name for m in (metrics.IN_FLIGHT, metrics.QUEUE_DEPTH)}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-adapter" / "rules.yaml").read_text())["rules"]["custom"]
    served = {r["name"]["as"] for r in rules}
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        names = {m["pods"]["metric"]["name"] for m in spec["metrics"] if m["type"] == "Pods"}
        assert names == exported and names <= served, name
        assert spec["minReplicas"] >= 1 and spec["maxReplicas"] > spec["minReplicas"]


def test_termination_grace_exceeds_prestop_plus_drain(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    for name, dep in by_kind(docs, "Deployment").items():
        spec, c = dep["spec"]["template"]["spec"], container(dep)
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        grace = spec["terminationGracePeriodSeconds"]
        if name in PORTS:
            assert pre[0] == "sleep"
            drain = float(service_settings(docs, name)[f"TATOR_{name.upper()}_GRACE_S"])
            assert grace >= int(pre[1]) + drain + 5, name
        elif name == "envoy":
            env = {e["name"]: e["value"] for e in c["env"]}
            assert pre == ["/bin/bash", "/etc/envoy/drain.sh"]
            assert grace >= float(env["TATOR_ENVOY_DRAIN_S"]) + 5
            assert "--drain-time-s" in c["args"]
            assert float(c["args"][c["args"].index("--drain-time-s") + 1]) < float(env["TATOR_ENVOY_DRAIN_S"])
        else:
            assert grace > int(pre[1]), name


def test_storage(rendered: tuple[str, list[dict]]) -> None:
    overlay, docs = rendered
    pvcs = by_kind(docs, "PersistentVolumeClaim")
    classes = {n: p["spec"]["storageClassName"] for n, p in pvcs.items()}
    assert "SET-BY-PARAMS" not in classes.values()
    if overlay == "gpu-cluster":
        assert classes == {"tator-models": "nfs-rwx", "tator-data": "nfs-rwx", "tator-state": "ssd"}
    deps = by_kind(docs, "Deployment")
    # The job/cache databases live on the block volume, mounted where the setting points.
    orch = container(deps["orchestrator"])
    state_dir = service_settings(docs, "orchestrator")["TATOR_ORCHESTRATOR_STATE_DIR"]
    vols = {v["name"]: v for v in deps["orchestrator"]["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in orch["volumeMounts"] if m["mountPath"] == state_dir]
    assert vols[mount["name"]]["persistentVolumeClaim"]["claimName"] == "tator-state"
    # Trained heads land on the read-write models volume, which every classifier pod mounts.
    heads = Path(service_settings(docs, "classifier")["TATOR_CLASSIFIER_HEADS_DIR"])
    cls = container(deps["classifier"])
    cvols = {v["name"]: v for v in deps["classifier"]["spec"]["template"]["spec"]["volumes"]}
    owner = max((m for m in cls["volumeMounts"] if heads.is_relative_to(m["mountPath"])),
                key=lambda m: len(m["mountPath"]))
    assert not owner.get("readOnly", False)
    assert cvols[owner["name"]]["persistentVolumeClaim"]["claimName"] == "tator-models"


def test_model_fill_job_writes_the_models_volume() -> None:
    docs = kustomize(K8S / "jobs" / "model-fill")
    job = by_kind(docs, "Job")["model-fill"]
    pod = job["spec"]["template"]["spec"]
    c = container(job)
    assert c["command"][:3] == ["python", "-m", "tator_core.model_fill"]
    dest = c["command"][c["command"].index("--dest") + 1]
    vols = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == dest]
    assert vols[mount["name"]]["persistentVolumeClaim"]["claimName"] == "tator-models"
    assert not mount.get("readOnly", False)
    # The same path the services read their registry from.
    assert dest + "/registry.yaml" == service_settings(build("gpu-cluster"), "detector")["TATOR_DETECTOR_REGISTRY"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_one_configmap_per_service(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    seen = {}
    for name, dep in by_kind(docs, "Deployment").items():
        refs = [r["configMapRef"]["name"] for r in container(dep).get("envFrom", [])]
        if name in PORTS:
            assert len(refs) == 1 and refs[0].startswith(f"tator-{name}-"), (name, refs)
            seen[name] = refs[0]
    assert len(set(seen.values())) == len(PORTS)


def test_secrets_mounted_for_tokens_and_tls(rendered: tuple[str, list[dict]]) -> None:
    _, docs = rendered
    for name in PORTS:
        dep = by_kind(docs, "Deployment")[name]
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
        for path, secret in (("/etc/tator/auth", "tator-auth"), ("/etc/tator/tls", "tator-tls")):
            assert mounts[path]["readOnly"] is True
            assert vols[mounts[path]["name"]]["secret"]["secretName"] == secret
    # No secret material in the repository's manifests.
    assert not by_kind(docs, "Secret")


def test_auth_component_turns_tokens_on_and_fails_closed(tmp_path: Path) -> None:
    docs = build_with_components("gpu-cluster", ["auth"], tmp_path / "auth")
    for name in PORTS:
        dep = by_kind(docs, "Deployment")[name]
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        (mount,) = [m for m in container(dep)["volumeMounts"] if m["name"] == "auth"]
        assert vols["auth"]["secret"]["optional"] is False, name  # no Secret, no pod
        tokens = service_settings(docs, name)[f"TATOR_{name.upper()}_AUTH_TOKENS_FILE"]
        assert Path(tokens).parent == Path(mount["mountPath"]), name
    env = {e["name"]: e["value"] for e in container(by_kind(docs, "Deployment")["orchestrator"])["env"]}
    assert env["TATOR_AUTH_TOKENS_FILE"] == tokens  # its client calls carry the token


def test_tls_component_turns_tls_on_everywhere_and_fails_closed(tmp_path: Path) -> None:
    """Every service serves the Secret's certificate, the model services require client certificates,
    every client (orchestrator, exec probes, Envoy) trusts the Secret's CA and presents its client
    certificate, no probe is a plaintext gRPC probe, and without the Secret no pod starts."""
    docs = build_with_components("gpu-cluster", ["tls"], tmp_path / "tls")
    deps = by_kind(docs, "Deployment")
    for name in PORTS:
        dep = deps[name]
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        (mount,) = [m for m in container(dep)["volumeMounts"] if m["name"] == "tls"]
        assert vols["tls"]["secret"] == {"secretName": "tator-tls", "optional": False, "defaultMode": 0o440}
        tls_dir = Path(mount["mountPath"])
        settings = service_settings(docs, name)
        prefix = f"TATOR_{name.upper()}_TLS_"
        assert settings[f"{prefix}CERT_FILE"] == str(tls_dir / "tls.crt"), name
        assert settings[f"{prefix}KEY_FILE"] == str(tls_dir / "tls.key"), name
        assert settings.get(f"{prefix}CLIENT_CA_FILE") == (None if name == "orchestrator" else str(tls_dir / "ca.crt"))
        env = {e["name"]: e.get("value") for e in container(dep)["env"]}
        assert (env["TATOR_TLS_CA_FILE"], env["TATOR_TLS_CERT_FILE"], env["TATOR_TLS_KEY_FILE"]) == tuple(
            str(tls_dir / f) for f in ("ca.crt", "client.crt", "client.key")), name
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container(dep)[kind]
            assert "grpc" not in probe, (name, kind)  # the kubelet's gRPC probe cannot speak TLS
            cmd = probe["exec"]["command"]
            assert cmd[:4] == ["python", "-m", "tator_core.health_probe", str(PORTS[name])], (name, kind)
        assert container(dep)["readinessProbe"]["exec"]["command"][4:] == [FULL_NAMES[name]]
    envoy = deps["envoy"]
    (mount,) = [m for m in container(envoy)["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] and envoy["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 101
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("envoy-config")]
    from tator_cli.edge import k8s_tls_envoy_config

    assert yaml.safe_load(cm["data"]["envoy.yaml"]) == k8s_tls_envoy_config(), \
        "regenerate: python -c 'from tator_cli.edge import write_k8s_tls_envoy; write_k8s_tls_envoy()'"
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_tls_envoy_config_validates_with_real_material(tmp_path: Path) -> None:
    from tator_cli import edge, tls

    if edge.envoy_binary() is None:
        pytest.skip("envoy binary not installed")
    tls.ensure_leaf(tmp_path, "client", [], client=True)
    text = edge.K8S_TLS_ENVOY.read_text().replace(edge.K8S_TLS_DIR, str(tmp_path))
    (tmp_path / "envoy.yaml").write_text(text)
    res = subprocess.run([str(edge.envoy_binary()), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metrics_are_scrapeable(rendered: tuple[str, list[dict]], tmp_path: Path) -> None:
    overlay, docs = rendered
    for name, dep in by_kind(docs, "Deployment").items():
        if name == "web":
            continue
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        port = ENVOY_METRICS if name == "envoy" else METRICS_PORTS[name]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(port)
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container(dep)["ports"]
    if overlay != "gpu-cluster":
        return
    with_mon = build_with_components(overlay, ["monitoring"], tmp_path / "mon")
    monitors = by_kind(with_mon, "PodMonitor")
    pods = pod_labels(with_mon)
    covered = {n for m in monitors.values() for n, lab in pods.items() if selects(m["spec"]["selector"], lab)}
    assert covered == set(PORTS) | {"envoy"}
    (envoy_mon,) = [m for m in monitors.values() if selects(m["spec"]["selector"], pods["envoy"])]
    assert envoy_mon["spec"]["podMetricsEndpoints"][0]["path"] == "/stats/prometheus"


def test_dns_is_the_only_cluster_egress_besides_the_flows(rendered: tuple[str, list[dict]]) -> None:
    """No policy opens egress to an IP block (the internet) from a service pod."""
    _, docs = rendered
    for pol in by_kind(docs, "NetworkPolicy").values():
        for rule in pol["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    pytest.fail(f"{pol['metadata']['name']} opens egress to {peer['ipBlock']}")
            assert rule.get("to"), f"{pol['metadata']['name']} has an egress rule to anywhere"
