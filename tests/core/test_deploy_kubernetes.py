"""`blaze deploy kubernetes`, run for real: every manifest it writes validates against the
Kubernetes API schemas (kubernetes-validate), and the Deployment's own command, started as
the container would start it, answers its probes as the kubelet asks them (grpcurl is
grpc-go, the kubelet's gRPC client)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from support import QUICKSTART, Spawned

from blazerpc import BlazeApp, ConfigurationError, hookimpl
from blazerpc.deploy import KubernetesOptions, KubernetesTarget, Manifest, kubernetes_manifests, render_yaml
from blazerpc.testing import blaze_command

#: The oldest Kubernetes with GA gRPC probes, and the newest the validator knows.
VERSIONS = ("1.27", latest_version())
TWO_MODELS = """\
from blazerpc import BlazeApp

app = BlazeApp()


@app.model("text_sentiment")
def sentiment(text: list[str]) -> list[float]:
    return [0.5] * len(text)


@app.model("echo", version="2")
def echo(text: str) -> str:
    return text
"""


def blaze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def deploy(*args: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    """`blaze deploy kubernetes ARGS`: the objects of the YAML it prints."""
    done = blaze("deploy", "kubernetes", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout)]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def assert_valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        for version in VERSIONS:
            # strict: no field the schema does not define (a misspelt key fails).
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.fixture(scope="module")
def quickstart() -> list[dict[str, Any]]:
    return deploy(f"{QUICKSTART}:app", "--image", "registry.example/sentiment:1")


def test_every_manifest_validates(quickstart: list[dict[str, Any]]) -> None:
    assert [o["kind"] for o in quickstart] == [
        "Deployment", "Service", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
    ]  # fmt: skip
    assert_valid(quickstart)


def test_the_validator_catches_a_wrong_manifest(quickstart: list[dict[str, Any]]) -> None:
    """kubernetes-validate rejects what the API server would: the check can fail."""
    deployment = json.loads(json.dumps(quickstart[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)
    deployment = json.loads(json.dumps(quickstart[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_the_deployment(quickstart: list[dict[str, Any]]) -> None:
    deployment = quickstart[0]
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/sentiment:1"
    assert container["command"] == [
        "blaze", "serve", "app.py:app", "--host", "0.0.0.0", "--port", "50051", "--workers", "1",
        "--grace-period", "30", "--log-format", "json", "--max-connection-age", "300",
    ]  # fmt: skip
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert container["livenessProbe"]["grpc"] == {"port": 50051, "service": "blazerpc.InferenceService"}
    assert container["startupProbe"]["grpc"] == {"port": 50051, "service": ""}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    # preStop 5 s + grace 30 s, and time to exit, before the kubelet's SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > 5 + 30
    assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert [p["name"] for p in container["ports"]] == ["grpc"]  # no metrics plugin here
    assert "annotations" not in deployment["spec"]["template"]["metadata"]


def test_the_services_pdb_and_hpa(quickstart: list[dict[str, Any]]) -> None:
    _, service, headless, pdb, hpa = quickstart
    selector = quickstart[0]["spec"]["selector"]["matchLabels"]
    assert selector == quickstart[0]["spec"]["template"]["metadata"]["labels"]
    for svc in (service, headless):
        assert svc["spec"]["selector"] == selector
        assert svc["spec"]["ports"] == [
            {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP",
             "appProtocol": "kubernetes.io/h2c"}
        ]  # fmt: skip
    assert service["metadata"]["name"] == "sentiment"
    assert service["spec"]["type"] == "ClusterIP"
    assert headless["metadata"]["name"] == "sentiment-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sentiment",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }


def test_options_reach_the_manifests(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(TWO_MODELS)
    objects = deploy(
        "service:app", "--namespace", "ml", "--port", "8081", "--workers", "3", "--grace-period", "12.5",
        "--max-connection-age", "0", "--cpu-request", "500m", "--cpu-limit", "1500m",
        "--memory-request", "256Mi", "--memory-limit", "512Mi", "--min-replicas", "3", "--max-replicas", "7",
        "--target-cpu", "55", "--startup-timeout", "600",
        cwd=tmp_path,
    )  # fmt: skip
    assert_valid(objects)
    kinds = by_kind(objects)
    deployment = kinds["Deployment"][0]
    # The default name comes from the first model, made a valid DNS label.
    assert {o["metadata"]["name"] for o in objects} == {"text-sentiment", "text-sentiment-headless"}
    assert {o["metadata"]["namespace"] for o in objects} == {"ml"}
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "text-sentiment:latest"
    assert container["command"] == [
        "blaze", "serve", "service:app", "--host", "0.0.0.0", "--port", "8081", "--workers", "3",
        "--grace-period", "12.5", "--log-format", "json",
    ]  # fmt: skip
    assert container["readinessProbe"]["grpc"]["port"] == 8081
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert pod["terminationGracePeriodSeconds"] > 5 + 12.5
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "512Mi"}
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 55
    assert all(s["spec"]["ports"][0]["port"] == 8081 for s in kinds["Service"])


def test_fixed_replicas_without_an_autoscaler() -> None:
    objects = deploy(f"{QUICKSTART}:app", "--replicas", "4", "--name", "sent")
    assert_valid(objects)
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "Service", "PodDisruptionBudget"]
    assert objects[0]["spec"]["replicas"] == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 3, "max_replicas": 5}, "--replicas sets a fixed count"),
        ({"replicas": 3, "autoscaler": "hpa"}, "pass --min-replicas and --max-replicas instead"),
        ({"min_replicas": 5, "max_replicas": 3}, "need 1 <= min <= max"),
        ({"autoscaler": "keda"}, "install blazerpc-metrics"),
        ({"prometheus_url": "http://p:9090"}, "it needs --autoscaler keda"),
        ({"target_queue_depth": 8}, "it needs --autoscaler keda"),
        ({"autoscaler": "none", "target_cpu": 50}, "--target-cpu is for the autoscaler"),
        ({"target_cpu": 150}, "percentage of the CPU request"),
        ({"cpu_request": "3"}, "--cpu-request 3 is more than --cpu-limit 2"),
        ({"memory_request": "3Gi"}, "--memory-request 3Gi is more than --memory-limit 2Gi"),
        ({"memory_limit": "2GB"}, "'2GB' is not a Kubernetes quantity"),
        ({"name": "Sentiment_Model"}, "cannot name Kubernetes objects"),
        ({"name": "x" * 60}, "at most 54 characters"),
        ({"namespace": "ML_team"}, "is not a Kubernetes namespace name"),
        ({"autoscaler": "vpa"}, "--autoscaler must be one of auto, hpa, keda, none"),
        ({"port": 0}, "--port must be between 1 and 65535"),
        ({"grace_period": -1}, "--grace-period must be 0 or more seconds"),
    ],
)
def test_bad_options_say_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        kubernetes_manifests(_app(), "app.py:app", KubernetesOptions(**options))


def test_quantities_compare_across_suffixes() -> None:
    options = KubernetesOptions(
        cpu_request="250m", cpu_limit="0.5", memory_request="1000M", memory_limit="1Gi"
    )
    assert kubernetes_manifests(_app(), "app.py:app", options)
    with pytest.raises(ConfigurationError, match="more than --memory-limit"):
        kubernetes_manifests(
            _app(), "app.py:app", KubernetesOptions(memory_request="1100M", memory_limit="1Gi")
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--autoscaler", "keda"], "Error: --autoscaler keda scales on the queue depth"),
        (["--source", "."], "Error: --source is for the Dockerfile"),
    ],
)
def test_the_command_fails_with_the_message(args: list[str], message: str) -> None:
    done = blaze("deploy", "kubernetes", f"{QUICKSTART}:app", *args)
    assert done.returncode == 1, done.stdout
    assert message in done.stderr
    assert done.stdout == ""


def test_an_app_that_cannot_be_served_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("from blazerpc import BlazeApp\n\napp = BlazeApp()\n")
    done = blaze("deploy", "kubernetes", str(tmp_path / "empty.py"))
    assert done.returncode == 1
    assert "the app has no models" in done.stderr


def test_output_dir_writes_one_file_per_manifest_and_the_dockerfile(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    done = blaze("deploy", "kubernetes", f"{QUICKSTART}:app", "--output-dir", str(out))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "deployment.yaml", "service.yaml", "service-headless.yaml", "poddisruptionbudget.yaml",
        "horizontalpodautoscaler.yaml", "Dockerfile",
    ])  # fmt: skip
    on_stdout = deploy(f"{QUICKSTART}:app")
    written = [yaml.safe_load((out / n).read_text()) for n in names if n.endswith(".yaml")]
    assert sorted(written, key=json.dumps) == sorted(on_stdout, key=json.dumps)
    assert (out / "deployment.yaml").read_text().startswith("# Generated by BlazeRPC")
    assert "preStop (sleep 5 s) BEFORE it sends SIGTERM" in (out / "deployment.yaml").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_container_command_serves_and_answers_the_probes(grpcurl: str, tmp_path: Path) -> None:
    """The Deployment's command, run as the container runs it (only the address changed
    to a free loopback port), with two workers: every probe of the manifest gets
    SERVING from grpc-go's health client."""
    objects = deploy(f"{QUICKSTART}:app", "--workers", "2")  # with the default --max-connection-age 300
    container = objects[0]["spec"]["template"]["spec"]["containers"][0]
    command = list(container["command"])
    port = _free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    assert command[:2] == ["blaze", "serve"]
    # The image's WORKDIR is the app's directory, and the command names the app from there.
    process = subprocess.Popen(
        [*blaze_command(), *command[1:]], cwd=QUICKSTART.parent, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    proc = Spawned(process)
    try:
        proc.wait_for(lambda lines: sum("Server listening" in line for line in lines) >= 2)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = container[probe]["grpc"]
            done = subprocess.run(
                [grpcurl, "-plaintext", "-d", json.dumps({"service": grpc["service"]}),
                 f"127.0.0.1:{port}", "grpc.health.v1.Health/Check"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == {"status": "SERVING"}, probe
        grace = objects[0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert proc.stop(signal.SIGTERM, timeout=grace) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the extension point: plugins' own manifests ------------------------------------------


class _ExtraManifests:
    """A plugin adding an object built from the target (as blazerpc-oip will add KServe's)."""

    def __init__(self) -> None:
        self.targets: list[KubernetesTarget] = []

    @hookimpl
    def blazerpc_kubernetes_manifests(self, app: BlazeApp, target: KubernetesTarget) -> list[Manifest]:
        self.targets.append(target)
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{target.name}-command", "namespace": target.namespace},
            "data": {"command": " ".join(target.command), "models": ",".join(target.models)},
        }
        return [Manifest("configmap.yaml", body, about="Added by a plugin.")]


def _app(*plugins: object) -> BlazeApp:
    app = BlazeApp(plugins=plugins)

    @app.model("sentiment")
    def predict(text: list[str]) -> list[float]:
        return [0.5] * len(text)

    return app


def test_a_plugin_adds_manifests_after_cores() -> None:
    plugin = _ExtraManifests()
    manifests = kubernetes_manifests(_app(plugin), "app.py:app", KubernetesOptions(namespace="ml", workers=2))
    assert [m.file for m in manifests][-1] == "configmap.yaml"
    (target,) = plugin.targets
    assert (target.name, target.namespace) == ("sentiment", "ml")
    assert target.health_services == ("", "blazerpc.InferenceService")
    assert target.labels == {"app.kubernetes.io/name": "sentiment"}
    assert target.options.min_replicas == 2  # resolved: the defaults filled in
    text = render_yaml(manifests)
    objects = list(yaml.safe_load_all(text))
    assert objects[-1]["data"] == {"command": " ".join(target.command), "models": "sentiment v1"}
    assert "# Added by a plugin.\napiVersion: v1\nkind: ConfigMap" in text
    assert_valid(objects)


def test_a_plugin_returning_something_else_is_named() -> None:
    class Wrong:
        @hookimpl
        def blazerpc_kubernetes_manifests(self, app: BlazeApp, target: KubernetesTarget) -> object:
            return [{"kind": "ConfigMap"}]

    with pytest.raises(ConfigurationError, match=r"must return a list of blazerpc\.deploy\.Manifest"):
        kubernetes_manifests(_app(Wrong()), "app.py:app", KubernetesOptions())


def test_a_plugin_manifest_may_not_replace_cores() -> None:
    class Clash:
        @hookimpl
        def blazerpc_kubernetes_manifests(self, app: BlazeApp, target: KubernetesTarget) -> list[Manifest]:
            return [Manifest("deployment.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})]

    with pytest.raises(ConfigurationError, match=r"deployment\.yaml has the name of another one"):
        kubernetes_manifests(_app(Clash()), "app.py:app", KubernetesOptions())
