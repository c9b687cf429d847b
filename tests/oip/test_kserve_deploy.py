"""`blaze deploy kubernetes` with blazerpc-oip installed: a KServe ServingRuntime and
InferenceService for a custom gRPC predictor, beside core's objects.

What is checked, and how:
- Core's objects (Deployment, Services, PodDisruptionBudget, HPA) still validate against
  the Kubernetes API schemas (kubernetes-validate, strict). The KEDA ScaledObject is
  tests/metrics' business.
- No package on PyPI ships KServe's CRD schema (the ``kserve`` wheel has no CRD yaml);
  it ships the API types generated from KServe's OpenAPI spec (``kserve.models``). Both
  KServe objects are checked against those types, recursively and strictly (every field
  must exist in its type, with the right JSON type; the pod parts through the Kubernetes
  client's ``V1...`` types), in kserve's own environment (clients/kserve_schema.py).
  Not checked: required fields and KServe's webhook rules (e.g. that the runtime's
  container is named kserve-container: asserted below by hand).
- The runtime's container, with the predictor's pod fields merged in as KServe merges
  them, validates as a Kubernetes Pod (kubernetes-validate, strict).
- The runtime's command really serves: run as the container runs it, with ``PORT`` set
  as Knative sets it, it answers the V2 protocol (grpcurl) and its probes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from oip_support import HERE, client_python

from blazerpc.testing import blaze_command
from blazerpc_metrics.hooks import DEFAULT_PORT as METRICS_PORT
from blazerpc_oip._kserve import MODEL_FORMAT, RUNTIME_CONTAINER

APP_DIR = HERE / "apps"
APP = "oip_app.py:app"
VERSIONS = ("1.27", latest_version())
KSERVE_KINDS = {"ServingRuntime": "V1alpha1ServingRuntime", "InferenceService": "V1beta1InferenceService"}


def deploy(*args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`blaze deploy kubernetes oip_app.py:app ARGS` run from the app's directory (as the
    image's WORKDIR is): its objects by kind (the headless Service as "Service-headless")."""
    done = subprocess.run(
        [*blaze_command(), "deploy", "kubernetes", APP, *args],
        capture_output=True, text=True, cwd=APP_DIR, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = [doc for doc in yaml.safe_load_all(done.stdout)]
    kinds = {obj["kind"] + ("-headless" if obj["metadata"]["name"].endswith("-headless") else ""): obj
             for obj in objects}  # fmt: skip
    assert len(kinds) == len(objects)
    return kinds


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return deploy("--port", "8081", "--name", "scaler", "--namespace", "models")


def test_core_objects_still_validate(objects: dict[str, dict[str, Any]]) -> None:
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(objects)
    assert "Service-headless" in objects
    for kind, obj in objects.items():
        if kind in KSERVE_KINDS or kind == "ScaledObject":
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_kserve_objects_match_kserves_api_types(objects: dict[str, dict[str, Any]]) -> None:
    checks = [[KSERVE_KINDS[kind], objects[kind]] for kind in KSERVE_KINDS]
    # a misspelt field is caught: the checker is not blind
    wrong = json.loads(json.dumps(objects["ServingRuntime"]))
    wrong["spec"]["protocolVersion"] = ["grpc-v2"]
    wrong["spec"]["containers"][0]["port"] = 1
    checks.append(["V1alpha1ServingRuntime", wrong])
    done = subprocess.run(
        [str(client_python("kserve")), str(HERE / "clients" / "kserve_schema.py")],
        input=json.dumps(checks), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)) == [
        "V1alpha1ServingRuntime.spec.containers[0].port: no such field in V1Container",
        "V1alpha1ServingRuntime.spec.protocolVersion: no such field in V1alpha1ServingRuntimeSpec",
    ]


def test_the_runtime_is_a_custom_grpc_predictor(objects: dict[str, dict[str, Any]]) -> None:
    runtime, service = objects["ServingRuntime"], objects["InferenceService"]
    deployment = objects["Deployment"]["spec"]["template"]["spec"]
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]
    assert [f["name"] for f in spec["supportedModelFormats"]] == [MODEL_FORMAT]
    [container] = spec["containers"]
    assert container["name"] == RUNTIME_CONTAINER
    assert container["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    assert {"name": "PORT", "value": "8081"} in container["env"]
    assert "--port" not in container["command"]
    [native] = deployment["containers"]
    for field in ("image", "resources", "securityContext", "startupProbe", "readinessProbe", "livenessProbe"):
        assert container[field] == native[field], field
    # Metrics installed: KServe's scrape annotations name the plugin's port.
    assert spec["annotations"] == {"prometheus.kserve.io/port": str(METRICS_PORT),
                                   "prometheus.kserve.io/path": "/metrics"}  # fmt: skip
    assert runtime["metadata"]["namespace"] == service["metadata"]["namespace"] == "models"
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = service["spec"]["predictor"]
    model = {"modelFormat": {"name": MODEL_FORMAT}, "runtime": runtime["metadata"]["name"],
             "protocolVersion": "grpc-v2"}  # fmt: skip
    assert predictor["model"] == model
    assert predictor["securityContext"] == deployment["securityContext"]
    assert predictor["terminationGracePeriodSeconds"] == deployment["terminationGracePeriodSeconds"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
    # As KServe makes the predictor's pod: the runtime's container and volumes, the
    # predictor's pod fields. It is a valid Pod.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "scaler-predictor", "annotations": spec["annotations"]},
        "spec": {
            "containers": spec["containers"],
            "volumes": spec["volumes"],
            "securityContext": predictor["securityContext"],
            "terminationGracePeriodSeconds": predictor["terminationGracePeriodSeconds"],
        },
    }
    for version in VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


def test_fixed_replicas_pin_the_predictor() -> None:
    predictor = deploy("--replicas", "3")["InferenceService"]["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 3)
    assert "scaleMetric" not in predictor


def test_without_the_metrics_plugin_no_scrape_annotations() -> None:
    """Served without blazerpc-metrics (only this plugin loaded): nothing to scrape."""
    objects = deploy(env={"BLAZERPC_PLUGINS": "oip"})
    assert "ScaledObject" not in objects
    assert "annotations" not in objects["ServingRuntime"]["spec"]
    annotations = objects["InferenceService"]["metadata"]["annotations"]
    assert annotations == {"serving.kserve.io/deploymentMode": "RawDeployment"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_runtime_command_serves_v2_on_port(grpcurl: str) -> None:
    """The runtime's command as the container runs it, from the app's directory, with
    PORT set as Knative sets it (a free port here); only the host is changed to loopback
    and the metrics port to a free one, so tests can run side by side."""
    objects = deploy()  # with the default --max-connection-age 300
    [container] = objects["ServingRuntime"]["spec"]["containers"]
    command = list(container["command"])
    assert command[:2] == ["blaze", "serve"]
    command[command.index("--host") + 1] = "127.0.0.1"
    port = _free_port()
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}, "PORT": str(port)}
    process = subprocess.Popen(
        [*blaze_command(), *command[1:], "--metrics-port", "0"],
        cwd=APP_DIR, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not any("Server listening" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        listening = json.loads(next(line for line in lines if "Server listening" in line))
        assert listening["port"] == port

        def call(method: str, data: object) -> Any:
            done = subprocess.run(
                [grpcurl, "-plaintext", "-d", json.dumps(data), f"127.0.0.1:{port}", method],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        assert call("inference.GRPCInferenceService/ServerReady", {}) == {"ready": True}
        reply = call("inference.GRPCInferenceService/ModelInfer", {
            "model_name": "scale",
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [2, 3],
                 "contents": {"fp32_contents": [1, 2, 3, 4, 5, 6]}},
                {"name": "factor", "datatype": "FP64", "shape": [1], "contents": {"fp64_contents": [3]}},
            ],
        })  # fmt: skip
        assert reply["outputs"][0]["shape"] == ["2", "3"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            service = container[probe]["grpc"]["service"]
            assert call("grpc.health.v1.Health/Check", {"service": service}) == {"status": "SERVING"}, probe
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_manifests_name_their_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [*blaze_command(), "deploy", "kubernetes", APP, "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=APP_DIR, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runtime = (tmp_path / "kserve-servingruntime.yaml").read_text()
    assert "modelFormat.name is\n# 'blazerpc'" in runtime
    assert "RawDeployment" in (tmp_path / "kserve-inferenceservice.yaml").read_text()
