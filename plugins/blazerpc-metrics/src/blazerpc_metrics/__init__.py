"""BlazeRPC plugin: Prometheus metrics.

Installed, it is active: every call, batch and queue of a served app is measured, and
``blaze serve`` serves them at ``http://HOST:9464/metrics`` (``--metrics-port``,
``--metrics-host``). With ``blaze serve --workers N`` one scrape returns the sum over
the workers (prometheus-client's multiprocess mode, set up by the supervising parent).
"""

from ._exporter import MetricsServer
from ._metrics import DURATION_BUCKETS, ROW_BUCKETS, AppMetrics, MetricsMiddleware
from .hooks import DEFAULT_PORT, endpoint_for, metrics_for

__all__ = [
    "DEFAULT_PORT",
    "DURATION_BUCKETS",
    "ROW_BUCKETS",
    "AppMetrics",
    "MetricsMiddleware",
    "MetricsServer",
    "endpoint_for",
    "metrics_for",
]
