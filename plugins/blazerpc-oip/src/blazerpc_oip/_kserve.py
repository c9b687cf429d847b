"""KServe's ``ServingRuntime`` and ``InferenceService`` for ``blaze deploy kubernetes``:
the app as a custom gRPC predictor speaking the Open Inference Protocol (``grpc-v2``).

Built from the Deployment core writes (the same image, ``blaze serve`` command, port,
resources, probes and security context), for KServe's RawDeployment mode: a plain
Deployment, so Kubernetes' native gRPC probes work and the port is the Deployment's.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from blazerpc import BlazeApp
from blazerpc.deploy import KubernetesTarget, Manifest

if TYPE_CHECKING:
    from blazerpc.deploy import KubernetesOptions

__all__ = ["DEPLOYMENT_MODE", "MODEL_FORMAT", "RUNTIME_CONTAINER", "kserve_manifests"]

#: The ``supportedModelFormats`` name of the runtime; an InferenceService's
#: ``predictor.model.modelFormat.name`` must be this for KServe to pick the runtime.
MODEL_FORMAT = "blazerpc"
#: KServe merges the predictor's container into the runtime's one of this name.
RUNTIME_CONTAINER = "kserve-container"
#: ``serving.kserve.io/deploymentMode``: a Deployment and a Service, no Knative.
DEPLOYMENT_MODE = "RawDeployment"


def _metrics_port(target: KubernetesTarget) -> int | None:
    """The port the Deployment's container exports metrics on (blazerpc-metrics serves
    the app), or ``None``."""
    for port in target.container.get("ports", ()):
        if port.get("name") == "metrics":
            return int(port["containerPort"])
    return None


def _without_port(command: tuple[str, ...]) -> list[str]:
    """``blaze serve`` without ``--port``: it listens on ``$PORT`` (set in the container's
    environment, and by Knative in its own mode) instead."""
    out: list[str] = []
    skip = False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--port":
            skip = True
        elif not arg.startswith("--port="):
            out.append(arg)
    return out


def _container(target: KubernetesTarget) -> dict[str, Any]:
    """The Deployment's server container as KServe's predictor container: its name,
    one port named h2c (HTTP/2 without TLS), and ``blaze serve`` on ``$PORT``."""
    container = copy.deepcopy(dict(target.container))
    port = target.options.port
    container["name"] = RUNTIME_CONTAINER
    container["command"] = _without_port(target.command)
    container["ports"] = [{"name": "h2c", "containerPort": port, "protocol": "TCP"}]
    container["env"] = [{"name": "PORT", "value": str(port)}, *container.get("env", [])]
    return container


def _metadata(target: KubernetesTarget, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": target.namespace, "labels": dict(target.labels)}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def runtime_name(target: KubernetesTarget) -> str:
    return f"{target.name}-runtime"


def _serving_runtime(target: KubernetesTarget, metrics: int | None) -> Manifest:
    spec: dict[str, Any] = {}
    if metrics is not None:
        spec["annotations"] = {
            "prometheus.kserve.io/port": str(metrics),
            "prometheus.kserve.io/path": "/metrics",
        }
    spec.update(
        supportedModelFormats=[{"name": MODEL_FORMAT, "version": "1", "autoSelect": True}],
        protocolVersions=["v2", "grpc-v2"],
        multiModel=False,
        containers=[_container(target)],
        volumes=copy.deepcopy(target.pod["volumes"]),
    )
    about = f"""\
KServe ServingRuntime (blazerpc-oip): how KServe runs this app as a custom gRPC predictor.
The container is the Deployment's: `blaze serve` with the app, which serves the Open
Inference Protocol (inference.GRPCInferenceService, grpc-v2) beside the app's own service,
on one port named h2c. It listens on $PORT ({target.options.port}; Knative sets PORT itself).
Probes are native gRPC probes on grpc.health.v1.Health: KServe's RawDeployment mode.
An InferenceService uses this runtime when its predictor.model.modelFormat.name is
{MODEL_FORMAT!r} (or names it in predictor.model.runtime)."""
    if metrics is not None:
        about += f"""
prometheus.kserve.io/port: blazerpc-metrics serves /metrics on {metrics}."""
    return Manifest(
        "kserve-servingruntime.yaml",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": _metadata(target, runtime_name(target), {}),
            "spec": spec,
        },
        about,
    )


def _scaling(o: KubernetesOptions) -> dict[str, Any]:
    if o.autoscaler == "none":
        return {"minReplicas": o.replicas, "maxReplicas": o.replicas}
    return {
        "minReplicas": o.min_replicas,
        "maxReplicas": o.max_replicas,
        "scaleMetric": "cpu",
        "scaleTarget": o.target_cpu,
    }


def _inference_service(target: KubernetesTarget, metrics: int | None) -> Manifest:
    o = target.options
    annotations = {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE}
    if metrics is not None:
        annotations["serving.kserve.io/enable-prometheus-scraping"] = "true"
    termination = target.pod["terminationGracePeriodSeconds"]
    predictor: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": MODEL_FORMAT},
            "runtime": runtime_name(target),
            "protocolVersion": "grpc-v2",
        },
        **_scaling(o),
        "terminationGracePeriodSeconds": termination,
        "securityContext": copy.deepcopy(target.pod["securityContext"]),
    }
    host = f"{target.name}-predictor.{target.namespace}.svc.cluster.local"
    about = f"""\
KServe InferenceService (blazerpc-oip), RawDeployment mode: KServe makes a Deployment
{target.name}-predictor and a Service of that name from the ServingRuntime {runtime_name(target)},
so apply it INSTEAD of deployment.yaml and the Services, not beside them (or keep both
on purpose: two sets of pods). V2 clients call {host}
(inference.GRPCInferenceService); the app's own service answers there too.
Models: {", ".join(target.models)}. terminationGracePeriodSeconds {termination}, as the \
Deployment's (preStop, then --grace-period {o.grace_period:g} s, then time to exit)."""
    if o.autoscaler != "none":
        about += f"""
KServe's HPA keeps {o.min_replicas} to {o.max_replicas} pods at {o.target_cpu}% CPU (KServe does not scale
on blazerpc-metrics' queue depth here: the Deployment's ScaledObject does)."""
    return Manifest(
        "kserve-inferenceservice.yaml",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": _metadata(target, target.name, annotations),
            "spec": {"predictor": predictor},
        },
        about,
    )


def kserve_manifests(app: BlazeApp, target: KubernetesTarget) -> list[Manifest]:
    """The ServingRuntime and InferenceService that serve ``app`` on KServe."""
    metrics = _metrics_port(target)
    return [_serving_runtime(target, metrics), _inference_service(target, metrics)]
