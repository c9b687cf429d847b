"""The metrics plugin's hooks (entry point ``metrics`` in the ``blazerpc`` group).

Installed, it is active: every app served gets :class:`MetricsMiddleware` and the batch
listener, and ``blaze serve`` serves ``/metrics`` on ``--metrics-port`` (default
:data:`DEFAULT_PORT`; 0 picks a free port) at ``--metrics-host`` (default: ``--host``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from blazerpc import ConfigurationError, hookimpl
from blazerpc.cli import ServeOption

from ._exporter import MetricsServer
from ._metrics import AppMetrics, MetricsMiddleware, multiprocess_dir
from ._multiprocess import Supervision, options_endpoint, supervised_worker

if TYPE_CHECKING:
    from blazerpc import BlazeApp, Middleware
    from blazerpc.batching import BatchListener
    from blazerpc.server import ServerInfo, SupervisorInfo

__all__ = ["DEFAULT_PORT", "metrics_for"]

_log = structlog.get_logger("blazerpc")
#: ``/metrics`` is served here unless ``--metrics-port`` says otherwise. A fixed port
#: is what scrape configurations and Kubernetes annotations point at; 9464 is the
#: port Prometheus exporters of application metrics commonly use.
DEFAULT_PORT = 9464


@dataclass
class _AppState:
    metrics: AppMetrics
    #: The endpoint of each running server of this app (held with its ServerInfo,
    #: compared by identity while both are alive).
    servers: list[tuple[ServerInfo, MetricsServer]] = field(default_factory=list)


_apps: weakref.WeakKeyDictionary[BlazeApp, _AppState] = weakref.WeakKeyDictionary()
_supervision: Supervision | None = None


def _state(app: BlazeApp) -> _AppState:
    state = _apps.get(app)
    if state is None:
        state = _apps[app] = _AppState(AppMetrics(spec.name for spec in app.models))
    return state


def metrics_for(app: BlazeApp) -> AppMetrics:
    """The metrics of ``app`` (its registry is ``metrics_for(app).registry``)."""
    return _state(app).metrics


def endpoint_for(app: BlazeApp) -> MetricsServer | None:
    """The ``/metrics`` endpoint of the app's most recently started server in this process."""
    servers = _state(app).servers
    return servers[-1][1] if servers else None


# --- command line ------------------------------------------------------------------------


@hookimpl
def blazerpc_serve_options() -> Sequence[ServeOption]:
    return [
        ServeOption(
            "metrics_port",
            int,
            DEFAULT_PORT,
            f"Port of the Prometheus /metrics endpoint (default {DEFAULT_PORT}; 0 picks a free one).",
        ),
        ServeOption(
            "metrics_host",
            str,
            "",
            "Address of the /metrics endpoint (default: the server's --host).",
        ),
    ]


# --- request path ------------------------------------------------------------------------


@hookimpl
def blazerpc_middleware(app: BlazeApp) -> Sequence[Middleware]:
    return [MetricsMiddleware(metrics_for(app))]


@hookimpl
def blazerpc_batch_listeners(app: BlazeApp) -> Sequence[BatchListener]:
    return [metrics_for(app).listener]


# --- one server ----------------------------------------------------------------------------


@hookimpl
def blazerpc_startup(app: BlazeApp, server: ServerInfo) -> None:
    state = _state(app)
    state.metrics.prepare(server.methods)
    if supervised_worker():
        return  # the supervising parent serves every worker's metrics
    host, port = options_endpoint(server.host, server.options)
    registry: Any = state.metrics.registry
    path = multiprocess_dir()
    if path is not None:  # multiprocess mode set up by the operator: report the directory
        from prometheus_client import CollectorRegistry

        from ._multiprocess import _MultiProcessCollector

        registry = CollectorRegistry()
        _MultiProcessCollector(registry, path=path)
    try:
        endpoint = MetricsServer(registry, host, port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            "pass --metrics-port PORT (0 picks a free one)"
        ) from None
    state.servers.append((server, endpoint))
    _log.info(f"Metrics at {endpoint.url}", metrics_port=endpoint.port, metrics_host=host)


@hookimpl
def blazerpc_shutdown(app: BlazeApp, server: ServerInfo) -> None:
    state = _apps.get(app)
    if state is None:
        return
    for i, (info, endpoint) in enumerate(state.servers):
        if info is server:
            del state.servers[i]
            endpoint.close()
            return


# --- the supervising parent of `blaze serve --workers N` -----------------------------------


@hookimpl
def blazerpc_supervisor_start(supervisor: SupervisorInfo) -> None:
    global _supervision
    if _supervision is not None:
        raise ConfigurationError("the metrics plugin is already supervising workers in this process")
    host, port = options_endpoint(supervisor.host, supervisor.options)
    _supervision = Supervision.start(host, port)


@hookimpl
def blazerpc_worker_exit(supervisor: SupervisorInfo, pid: int) -> None:
    if _supervision is not None:
        _supervision.worker_exited(pid)


@hookimpl
def blazerpc_supervisor_stop(supervisor: SupervisorInfo) -> None:
    global _supervision
    if _supervision is not None:
        _supervision.stop()
        _supervision = None
