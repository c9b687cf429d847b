"""The Kubernetes objects of one app: Deployment, Services, PodDisruptionBudget and an
autoscaler, built as plain dicts from the app and the resolved options."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._hooks import call_each
from ..exceptions import ConfigurationError
from ._app import AppFacts, read_app
from ._image import UID, app_source
from ._manifest import Manifest
from ._metrics import METRICS_PORT, metrics_annotations, scaled_object
from ._options import KubernetesOptions

if TYPE_CHECKING:
    from ..app import BlazeApp

__all__ = ["KubernetesTarget", "kubernetes_manifests"]

#: Seconds the preStop hook waits before the server gets SIGTERM (see the Deployment's comment).
PRESTOP_SECONDS = 5
#: Seconds after the drain for GOAWAY, shutdown hooks and the process's exit.
_EXIT_MARGIN = 10


@dataclass(frozen=True)
class KubernetesTarget:
    """What a plugin's ``blazerpc_kubernetes_manifests`` hook gets: the Deployment the
    manifests run, to build more objects around it (a KServe ``ServingRuntime`` and
    ``InferenceService`` for the same image and command, say)."""

    options: KubernetesOptions  # resolved: every default filled in
    labels: dict[str, str]  # the pods' labels, also the selector
    command: tuple[str, ...]  # the container's ``blaze serve`` command
    health_services: tuple[str, ...]
    models: tuple[str, ...]
    #: The Deployment's server container (image, command, ports, env, resources, probes,
    #: preStop, security context, mounts), for a plugin to build its pods from the same
    #: one; copy it (``copy.deepcopy``) before changing it.
    container: Mapping[str, Any]
    #: The Deployment's pod-level fields besides ``containers``:
    #: ``terminationGracePeriodSeconds``, ``securityContext``, ``volumes``.
    pod: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.options.name)

    @property
    def namespace(self) -> str:
        return self.options.namespace


def _seconds(value: float) -> str:
    return f"{value:g}"


def serve_command(reference: str, options: KubernetesOptions) -> list[str]:
    """The container's ``blaze serve``, every value explicit."""
    command = [
        "blaze", "serve", reference, "--host", "0.0.0.0", "--port", str(options.port),
        "--workers", str(options.workers), "--grace-period", _seconds(options.grace_period),
        "--log-format", "json",
    ]  # fmt: skip
    if options.max_connection_age > 0:
        command += ["--max-connection-age", _seconds(options.max_connection_age)]
    return command


def _metadata(target: KubernetesTarget, name: str | None = None) -> dict[str, Any]:
    return {"name": name or target.name, "namespace": target.namespace, "labels": dict(target.labels)}


def _grpc_probe(port: int, service: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "grpc": {"port": port, "service": service},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _termination_seconds(o: KubernetesOptions) -> int:
    return PRESTOP_SECONDS + math.ceil(o.grace_period) + _EXIT_MARGIN


def _server_container(
    o: KubernetesOptions, command: Sequence[str], health_services: tuple[str, ...], metrics: bool
) -> dict[str, Any]:
    """The container that runs ``blaze serve``."""
    overall, inference = health_services
    ports: list[dict[str, Any]] = [{"name": "grpc", "containerPort": o.port, "protocol": "TCP"}]
    if metrics:
        ports.append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
    return {
        "name": "server",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "ports": ports,
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # The root filesystem is read-only: caches (model hubs, compilers) go to /tmp.
            {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        ],
        "resources": {
            "requests": {"cpu": o.cpu_request, "memory": o.memory_request},
            "limits": {"cpu": o.cpu_limit, "memory": o.memory_limit},
        },
        # Until the models are loaded and the server listens, every probe fails; the
        # startup probe allows that for --startup-timeout, then hands over to the others.
        "startupProbe": _grpc_probe(o.port, overall, 5, 5, max(1, math.ceil(o.startup_timeout / 5))),
        # Ready: the whole server is SERVING ("" in grpc.health.v1); it turns NOT_SERVING
        # as soon as a drain starts, so the pod leaves the Service's endpoints.
        "readinessProbe": _grpc_probe(o.port, overall, 5, 2, 2),
        # Alive: the inference service answers its health check.
        "livenessProbe": _grpc_probe(o.port, inference, 10, 5, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_fields(o: KubernetesOptions) -> dict[str, Any]:
    """The pod's own fields, besides its containers."""
    return {
        "terminationGracePeriodSeconds": _termination_seconds(o),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def _deployment(target: KubernetesTarget, facts: AppFacts) -> Manifest:
    o = target.options
    termination = _termination_seconds(o)
    template: dict[str, Any] = {"metadata": {"labels": dict(target.labels)}}
    if facts.metrics:
        template["metadata"]["annotations"] = metrics_annotations()
    template["spec"] = {
        **copy.deepcopy(dict(target.pod)),
        "containers": [copy.deepcopy(dict(target.container))],
    }
    spec: dict[str, Any] = {}
    if o.autoscaler == "none":
        spec["replicas"] = o.replicas
    spec["selector"] = {"matchLabels": dict(target.labels)}
    # One new pod at a time, and no old pod stops before its replacement is ready.
    spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    spec["template"] = template
    scaler = "ScaledObject" if o.autoscaler == "keda" else "HorizontalPodAutoscaler"
    scaling = (
        f"{o.replicas} replicas (--replicas)"
        if o.autoscaler == "none"
        else f"no replica count: the {scaler} keeps {o.min_replicas} to {o.max_replicas}"
    )
    about = f"""\
Generated by BlazeRPC {__version__}: blaze deploy kubernetes. Models: {", ".join(target.models)}.
Each pod runs `blaze serve` ({o.workers} worker{"s" if o.workers > 1 else ""}); {scaling}.
Probes are Kubernetes' native gRPC probes on grpc.health.v1.Health (plain h2c).
Stopping a pod: the kubelet runs preStop (sleep {PRESTOP_SECONDS} s) BEFORE it sends SIGTERM.
Removing a pod from the Service's endpoints reaches kube-proxy, DNS and clients
asynchronously; the pause lets them stop sending new calls and connections here
while the server still accepts them. Then SIGTERM: health turns NOT_SERVING, new
calls get UNAVAILABLE (clients retry them elsewhere), calls in flight have
--grace-period {_seconds(o.grace_period)} s to finish, and connections end with GOAWAY.
terminationGracePeriodSeconds ({termination}) = preStop {PRESTOP_SECONDS} + grace \
{math.ceil(o.grace_period)} + {_EXIT_MARGIN} to exit, so the kubelet never SIGKILLs a drain.
The root filesystem is read-only (the server writes nothing there); /tmp is an emptyDir."""
    if o.max_connection_age > 0:
        about += f"""
--max-connection-age {_seconds(o.max_connection_age)}: each client connection is asked to reconnect
(GOAWAY) after that long, so pods added by the autoscaler get a share of long-lived clients."""
    return Manifest(
        "deployment.yaml",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(target), "spec": spec},
        about,
    )


def _service(target: KubernetesTarget, headless: bool) -> Manifest:
    spec: dict[str, Any] = {"selector": dict(target.labels)}
    if headless:
        spec["clusterIP"] = "None"
    else:
        spec["type"] = "ClusterIP"
    spec["ports"] = [
        {
            "name": "grpc",
            "port": target.options.port,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        }
    ]
    name = f"{target.name}-headless" if headless else target.name
    address = f"{name}.{target.namespace}.svc.cluster.local:{target.options.port}"
    if headless:
        about = f"""\
Headless Service: DNS answers every ready pod's address, for client-side balancing.
A gRPC client keeps one HTTP/2 connection and sends every call on it, so behind a
ClusterIP one client sticks to one pod. Give clients dns:///{address}
and they spread calls over every pod, and see pods come and go."""
    else:
        about = f"""\
The Service: one stable address, {address}.
kube-proxy balances connections, not calls: fine for many short-lived clients; for
long-lived ones use the headless Service (or a gRPC-aware proxy). appProtocol
kubernetes.io/h2c tells gateways and meshes that the port speaks HTTP/2 without TLS."""
    return Manifest(
        f"service{'-headless' if headless else ''}.yaml",
        {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(target, name), "spec": spec},
        about,
    )


def _pdb(target: KubernetesTarget) -> Manifest:
    return Manifest(
        "poddisruptionbudget.yaml",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _metadata(target),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(target.labels)}},
        },
        "Voluntary disruptions (node drains, upgrades) take at most one pod at a time.",
    )


def _hpa(target: KubernetesTarget) -> Manifest:
    o = target.options
    return Manifest(
        "horizontalpodautoscaler.yaml",
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _metadata(target),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.name},
                "minReplicas": o.min_replicas,
                "maxReplicas": o.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": o.target_cpu},
                        },
                    }
                ],
            },
        },
        f"Keeps {o.min_replicas} to {o.max_replicas} pods at {o.target_cpu}% of their CPU request on "
        "average (needs metrics-server).",
    )


def _plugin_manifests(app: BlazeApp, target: KubernetesTarget, taken: set[str]) -> list[Manifest]:
    """Every plugin's ``blazerpc_kubernetes_manifests``, ordered by plugin name."""
    pm = app.plugin_manager()
    found: list[Manifest] = []
    offers = call_each(pm.hook.blazerpc_kubernetes_manifests, {"app": app, "target": target})
    for plugin, offered in sorted(offers, key=lambda offer: offer[0]):
        if not isinstance(offered, Sequence) or not all(isinstance(m, Manifest) for m in offered):
            raise ConfigurationError(
                f"plugin {plugin}: blazerpc_kubernetes_manifests must return a list of "
                f"blazerpc.deploy.Manifest, not {offered!r}"
            )
        for manifest in offered:
            if manifest.file in taken:
                raise ConfigurationError(
                    f"plugin {plugin}: its manifest {manifest.file} has the name of another one"
                )
            taken.add(manifest.file)
            found.append(manifest)
    return found


def kubernetes_manifests(app: BlazeApp, app_path: str, options: KubernetesOptions) -> list[Manifest]:
    """The manifests that run ``app`` (``app_path`` as ``blaze serve`` takes it) on
    Kubernetes, in the order to apply them. Raises
    :class:`~blazerpc.ConfigurationError` for an option or app that cannot work."""
    facts = read_app(app)
    resolved = options.resolved(facts.default_name, facts.metrics)
    name = str(resolved.name)
    labels = {"app.kubernetes.io/name": name}
    command = tuple(serve_command(app_source(app_path).reference, resolved))
    target = KubernetesTarget(
        options=resolved,
        labels=labels,
        command=command,
        health_services=facts.health_services,
        models=facts.models,
        container=_server_container(resolved, command, facts.health_services, facts.metrics),
        pod=_pod_fields(resolved),
    )
    manifests = [_deployment(target, facts), _service(target, False), _service(target, True), _pdb(target)]
    if resolved.autoscaler == "hpa":
        manifests.append(_hpa(target))
    elif resolved.autoscaler == "keda":
        manifests.append(scaled_object(target))
    return manifests + _plugin_manifests(app, target, {m.file for m in manifests})
