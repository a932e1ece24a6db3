"""deploy/ and Dockerfile.gpu, parsed and cross-checked (PyYAML; nothing is fetched, nothing is
applied: no cluster or image build is available here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vigil.settings import VigilSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"


def documents():
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def containers(doc):
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def names_a_setting(env_name: str) -> bool:
    """VIGIL_A__B__C is the environment override of settings field a.b.c."""
    model = VigilSettings
    for part in env_name.removeprefix("VIGIL_").lower().split("__"):
        if not (isinstance(model, type) and part in getattr(model, "model_fields", {})):
            return False
        model = model.model_fields[part].annotation
    return True


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_workloads():
    docs = documents()
    control = docs[("Deployment", "control")]
    assert control["spec"]["replicas"] >= 2
    [c] = containers(control)
    assert c["readinessProbe"]["grpc"]["port"] == c["livenessProbe"]["grpc"]["port"] == 50051
    nodes = docs[("StatefulSet", "pipeline-node")]
    triton = docs[("Deployment", "triton")]
    for workload in (nodes, triton):
        spec = workload["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"vigil.io/pool": "gpu"}
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
        assert all(c["resources"]["limits"]["nvidia.com/gpu"] == 1 for c in containers(workload))
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )
    assert containers(triton)[0]["args"] == ["build-only"]  # the entrypoint's plan-building mode
    [node] = containers(nodes)
    assert node["args"][:3] == ["vigil", "node", "run"]
    # services select their pods and name real container ports
    for (kind, name), doc in docs.items():
        if kind != "Service":
            continue
        selected = [d for d in docs.values() if d["kind"] in ("Deployment", "StatefulSet")
                    and doc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, name
        ports = {p["name"] for d in selected for c in containers(d) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in doc["spec"]["ports"]} <= ports, name


def test_settings_references():
    docs = documents()
    config = docs[("ConfigMap", "vigil-config")]["data"]
    assert all(names_a_setting(key) for key in config), [k for k in config if not names_a_setting(k)]
    assert config["VIGIL_NODE__CONTROL_URL"].startswith("control.") and config["VIGIL_TRITON__URL"].startswith(
        "triton."
    )
    for doc in docs.values():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                refs = {next(iter(r.values()))["name"] for r in c.get("envFrom", [])}
                assert refs <= {"vigil-config", "vigil-secrets"}


def test_dockerfile():
    text = (ROOT / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/deepstream:[\d.]+-triton", text, re.M)
    for src in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / src).exists(), src
    assert "ENTRYPOINT [\"vigil-gpu-entrypoint\"]" in text and "deploy/docker/gpu-entrypoint.sh" in text
    env = dict(re.findall(r"^\s*(VIGIL_\w+)=(\S+)", text, re.M))
    assert env["VIGIL_NODE__DEEPSTREAM__ENGINE_DIR"] == "/var/lib/vigil/engines"
    assert env["VIGIL_NODE__DEEPSTREAM__CONFIG_DIR"] == "/opt/vigil/configs"
    # each VIGIL_A__B__C it sets names a setting (VIGIL_TRITON_REPOSITORY is the entrypoint's own)
    entrypoint = (ROOT / "deploy/docker/gpu-entrypoint.sh").read_text()
    for name in env:
        if name == "VIGIL_TRITON_REPOSITORY":
            assert "${VIGIL_TRITON_REPOSITORY:-" in entrypoint
            continue
        assert names_a_setting(name), name
    assert "${VIGIL_NODE__DEEPSTREAM__ENGINE_DIR:-/var/lib/vigil/engines}" in entrypoint  # the node's setting
