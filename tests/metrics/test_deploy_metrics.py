"""`blaze deploy kubernetes` with the metrics plugin installed: the pods get the plugin's
/metrics port and Prometheus' scrape annotations, and KEDA scales them on the queue depth
the plugin really exports.

The Kubernetes objects validate with kubernetes-validate. No package on PyPI ships KEDA's
CRD schema (cloudcoil-models-keda has pydantic models generated from it, which ignore
unknown fields), so the ScaledObject is checked against the fields KEDA documents for
ScaledObject, its prometheus and cpu triggers (SCALED_OBJECT below), with no other field
allowed: the structure and types, not KEDA's own admission checks.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from metrics_support import app_target, scrape

from blazerpc.deploy._metrics import METRICS_PORT, QUEUE_DEPTH_METRIC
from blazerpc.testing import blaze_command
from blazerpc_metrics.hooks import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_TRIGGER_FIELDS = {
    "type": {"type": "string"},
    "name": {"type": "string"},
    "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
    "useCachedMetrics": {"type": "boolean"},
    "authenticationRef": {"type": "object"},
}
_COUNTS = ("pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
           "minReplicaCount", "maxReplicaCount")  # fmt: skip
_PROMETHEUS_METADATA = ["serverAddress", "query", "threshold", "activationThreshold", "namespace",
                        "customHeaders", "ignoreNullValues", "unsafeSsl", "timeout"]  # fmt: skip
#: keda.sh/v1alpha1 ScaledObject as KEDA 2.x documents it (reference/scaledobject-spec,
#: scalers/prometheus, scalers/cpu): trigger metadata is a map of strings.
SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRINGS},
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                **{field: {"type": "integer", "minimum": 0} for field in _COUNTS},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["type", "metadata"],
                                "additionalProperties": False,
                                "properties": {
                                    **_TRIGGER_FIELDS,
                                    "type": {"const": "prometheus"},
                                    "metricType": {"enum": ["AverageValue", "Value"]},
                                    "metadata": {
                                        **_STRINGS,
                                        "required": ["serverAddress", "query", "threshold"],
                                        "propertyNames": {"enum": _PROMETHEUS_METADATA},
                                    },
                                },
                            },
                            {
                                "type": "object",
                                "required": ["type", "metadata", "metricType"],
                                "additionalProperties": False,
                                "properties": {
                                    **_TRIGGER_FIELDS,
                                    "type": {"const": "cpu"},
                                    "metricType": {"enum": ["Utilization", "AverageValue"]},
                                    "metadata": {
                                        **_STRINGS,
                                        "required": ["value"],
                                        "propertyNames": {"enum": ["value", "containerName"]},
                                    },
                                },
                            },
                        ]
                    },
                },
            },
        },
    },
}


def deploy(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*blaze_command(), "deploy", "kubernetes", app_target("shop"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return deploy("--namespace", "ml", "--prometheus-url", "http://prom.monitoring:9090")


def test_the_port_is_the_plugins() -> None:
    assert METRICS_PORT == DEFAULT_PORT


def test_keda_replaces_the_hpa_and_everything_validates(manifests: list[dict[str, Any]]) -> None:
    assert [o["kind"] for o in manifests] == [
        "Deployment", "Service", "Service", "PodDisruptionBudget", "ScaledObject",
    ]  # fmt: skip
    for obj in manifests[:-1]:
        for version in ("1.27", latest_version()):
            kubernetes_validate.validate(obj, version, strict=True)
    jsonschema.validate(manifests[-1], SCALED_OBJECT)


def test_the_structure_check_can_fail(manifests: list[dict[str, Any]]) -> None:
    scaled = json.loads(json.dumps(manifests[-1]))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 32  # KEDA wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)
    scaled = json.loads(json.dumps(manifests[-1]))
    scaled["spec"]["maxReplicas"] = 3  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)


def test_the_scaled_object(manifests: list[dict[str, Any]]) -> None:
    spec = manifests[-1]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "score"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 10)
    queue, cpu = spec["triggers"]
    assert queue["metricType"] == "AverageValue"  # the sum over pods, divided by the pods
    assert queue["metadata"] == {
        "serverAddress": "http://prom.monitoring:9090",
        "query": f'sum({QUEUE_DEPTH_METRIC}{{namespace="ml",pod=~"score-[a-z0-9]+-[a-z0-9]+"}})',
        "threshold": "32",
    }
    assert cpu == {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}


def test_the_pods_are_scraped(manifests: list[dict[str, Any]]) -> None:
    template = manifests[0]["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(DEFAULT_PORT),
        "prometheus.io/path": "/metrics",
    }
    ports = template["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": DEFAULT_PORT, "protocol": "TCP"} in ports


def test_hpa_on_request_and_keda_options() -> None:
    kinds = [o["kind"] for o in deploy("--autoscaler", "hpa")]
    assert kinds[-1] == "HorizontalPodAutoscaler"
    assert "ScaledObject" not in kinds
    (scaled,) = [
        o for o in deploy("--target-queue-depth", "8", "--target-cpu", "60") if o["kind"] == "ScaledObject"
    ]
    queue, cpu = scaled["spec"]["triggers"]
    assert queue["metadata"]["threshold"] == "8"
    assert queue["metadata"]["serverAddress"] == "http://prometheus-server.monitoring.svc.cluster.local"
    assert cpu["metadata"]["value"] == "60"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_container_exports_the_metric_keda_queries() -> None:
    """The Deployment's command (two workers) on a free loopback port, and the metrics on a
    free port rather than the fixed one: its /metrics has the queue depth per model."""
    (deployment, *_) = deploy("--workers", "2")  # with the default --max-connection-age 300
    command = list(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(_free_port())
    process = subprocess.Popen(
        [*blaze_command(), *command[1:], "--metrics-port", "0"],
        cwd=Path(app_target("shop").partition(":")[0]).parent,  # the image's WORKDIR
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    logs: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: logs.extend(json.loads(x) for x in process.stderr or () if x.startswith("{")),
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while sum(str(e.get("event", "")).startswith("Server listening") for e in list(logs)) < 2:
            assert process.poll() is None, f"exited with {process.returncode}: {logs}"
            assert time.monotonic() < deadline, f"the workers did not start: {logs}"
            time.sleep(0.1)
        (metrics_port,) = {e["metrics_port"] for e in list(logs) if "metrics_port" in e}
        assert scrape(metrics_port).matching(QUEUE_DEPTH_METRIC, model="score")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def test_the_dockerfile_installs_the_plugin_from_the_checkout() -> None:
    done = subprocess.run(
        [*blaze_command(), "deploy", "dockerfile", app_target("shop"), "--source", str(ROOT)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "COPY --from=blazerpc core /opt/blazerpc/core" in lines
    assert "COPY --from=blazerpc plugins/blazerpc-metrics /opt/blazerpc/plugins/blazerpc-metrics" in lines
    assert "RUN pip install '/opt/blazerpc/core[speed]' /opt/blazerpc/plugins/blazerpc-metrics" in lines
    assert f"EXPOSE 50051 {DEFAULT_PORT}" in lines
    assert (ROOT / "plugins" / "blazerpc-metrics" / "pyproject.toml").is_file()
