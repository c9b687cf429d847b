"""What the metrics plugin (blazerpc-metrics) adds: the pods' scrape annotations and a
KEDA ``ScaledObject`` on the queue depth it exports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._manifest import Manifest

if TYPE_CHECKING:
    from ._kubernetes import KubernetesTarget

__all__ = ["METRICS_PORT", "QUEUE_DEPTH_METRIC", "metrics_annotations", "scaled_object"]

#: The plugin's ``/metrics`` port when ``--metrics-port`` is not given
#: (``blazerpc_metrics.hooks.DEFAULT_PORT``; tests/metrics checks they agree).
METRICS_PORT = 9464
#: The plugin's gauge of rows waiting for a model, summed over workers, labelled ``model``.
QUEUE_DEPTH_METRIC = "blazerpc_queue_depth"


def metrics_annotations() -> dict[str, str]:
    """The ``prometheus.io/*`` annotations Prometheus' pod discovery scrapes by."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


def queue_depth_query(target: KubernetesTarget) -> str:
    """Rows waiting in every pod of the Deployment (``NAME-<hash>-<id>``), all models."""
    pods = f"{target.name}-[a-z0-9]+-[a-z0-9]+"
    return f'sum({QUEUE_DEPTH_METRIC}{{namespace="{target.namespace}",pod=~"{pods}"}})'


def scaled_object(target: KubernetesTarget) -> Manifest:
    o = target.options
    triggers: list[dict[str, Any]] = [
        {
            "type": "prometheus",
            "name": "queue-depth",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": str(o.prometheus_url),
                "query": queue_depth_query(target),
                "threshold": str(o.target_queue_depth),
            },
        },
        {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": str(o.target_cpu)}},
    ]
    body = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": target.name, "namespace": target.namespace, "labels": dict(target.labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.name},
            "minReplicaCount": o.min_replicas,
            "maxReplicaCount": o.max_replicas,
            "pollingInterval": 15,
            "triggers": triggers,
        },
    }
    about = f"""\
KEDA ScaledObject (needs KEDA installed): keeps {o.min_replicas} to {o.max_replicas} pods so that on average
{o.target_queue_depth} rows or fewer wait per pod ({QUEUE_DEPTH_METRIC}, exported by blazerpc-metrics on
port {METRICS_PORT}), and CPU stays under {o.target_cpu}% of the request. KEDA makes the HPA itself: do
not apply another HPA for this Deployment (blaze deploy kubernetes --autoscaler hpa writes a
plain CPU one instead). The query assumes Prometheus scrapes pods by their prometheus.io
annotations and labels series with namespace and pod (the prometheus-community chart does);
--prometheus-url says where that Prometheus answers."""
    return Manifest("scaledobject.yaml", body, about)
