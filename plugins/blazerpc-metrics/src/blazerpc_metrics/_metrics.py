"""The metrics of one app, the middleware that counts calls, and the batch listener."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grpclib.const import Status
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from blazerpc import CallContext, Middleware
from blazerpc.batching import BatchEvent, BatchListener

__all__ = ["DURATION_BUCKETS", "ROW_BUCKETS", "AppMetrics", "MetricsMiddleware"]

#: Seconds, for call, queue-wait and model times: from well under a millisecond (a
#: small model on a CPU) to a minute (a long generation).
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Rows per model call.
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Level:
    """A gauge's value, changed on the event loop only.

    In one process it is a plain int that the gauge reads when scraped (no lock per
    change); in multiprocess mode every change is also written to the gauge's file.
    """

    __slots__ = ("_child", "_shared", "value")

    def __init__(self, child: Any, shared: bool) -> None:
        self.value = 0
        self._child = child
        self._shared = shared
        if not shared:
            child.set_function(lambda: self.value)

    def add(self, amount: int) -> None:
        self.value += amount
        if self._shared:
            self._child.set(self.value)

    def set(self, value: int) -> None:
        self.value = value
        if self._shared:
            self._child.set(value)


@dataclass
class _MethodMetrics:
    """The metric children of one RPC, resolved once: the request path does no label lookups."""

    model: str
    method: str
    in_flight: _Level
    duration: Any
    stream_messages: Any = None  # streaming models only
    codes: dict[Status, Any] = field(default_factory=dict)


@dataclass
class _ModelMetrics:
    batch_size: Any
    queue_wait: Any
    inference: Any
    queue_depth: _Level
    in_flight: _Level
    depths: dict[str, int] = field(default_factory=dict)  # rows waiting, per version


class AppMetrics:
    """Every metric of one app, in the app's own registry (never the global default, so
    two apps in one process never collide).

    In prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), values go
    to that directory and the exporter reads them from there; gauges then add up the
    live processes' values.
    """

    def __init__(self, models: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "blazerpc_requests",
            "Calls of a model that ended, by status code.",
            ["model", "method", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "blazerpc_request_duration_seconds",
            "Seconds from a call's arrival to its end.",
            ["model", "method"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "blazerpc_requests_in_flight",
            "Calls of a model in progress.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.stream_messages = Counter(
            "blazerpc_stream_messages",
            "Messages sent by streaming models (counted when each stream ends).",
            ["model"],
            registry=r,
        )
        self.batch_size = Histogram(
            "blazerpc_batch_size",
            "Rows per model call (1 per call for an unbatched model).",
            ["model"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "blazerpc_queue_depth",
            "Rows waiting for a model (calls, for an unbatched model).",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "blazerpc_queue_wait_seconds",
            "Seconds a request waited before its model call started.",
            ["model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "blazerpc_inference_duration_seconds",
            "Seconds per model call (one batch).",
            ["model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        if multiprocess_dir() is None:
            # In multiprocess mode the exporter reports processes itself.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._shared = multiprocess_dir() is not None
        #: By path and model: one path may serve several models (the V2 protocol's ModelInfer).
        self._methods: dict[tuple[str, str], _MethodMetrics] = {}
        self._models: dict[str, _ModelMetrics] = {}
        for model in models:
            self._model(model)
        self.listener = _BatchMetrics(self)

    # --- children, resolved once per method / model -------------------------------------

    def method(self, path: str, model: str) -> _MethodMetrics:
        """The children of the RPC at ``path`` for ``model`` (created on first use)."""
        found = self._methods.get((path, model))
        if found is None:
            rpc = path.rsplit("/", 1)[-1]
            found = self._methods[(path, model)] = _MethodMetrics(
                model=model,
                method=rpc,
                in_flight=self._model(model).in_flight,
                duration=self.duration.labels(model=model, method=rpc),
            )
        return found

    def _model(self, model: str) -> _ModelMetrics:
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = _ModelMetrics(
                batch_size=self.batch_size.labels(model=model),
                queue_wait=self.queue_wait.labels(model=model),
                inference=self.inference.labels(model=model),
                queue_depth=_Level(self.queue_depth.labels(model=model), self._shared),
                in_flight=_Level(self.in_flight.labels(model=model), self._shared),
            )
        return found

    def code(self, method: _MethodMetrics, status: Status) -> Any:
        counter = method.codes.get(status)
        if counter is None:
            counter = method.codes[status] = self.requests.labels(
                model=method.model, method=method.method, code=status.name
            )
        return counter

    def streamed(self, method: _MethodMetrics) -> Any:
        if method.stream_messages is None:
            method.stream_messages = self.stream_messages.labels(model=method.model)
        return method.stream_messages

    def prepare(self, methods: Iterable[Any]) -> None:
        """Create every series a server will report, so each exists (at 0) from start-up."""
        for m in methods:
            children = self.method(m.path, m.model)
            self.code(children, Status.OK)
            if m.streaming:
                self.streamed(children)


class MetricsMiddleware(Middleware):
    """Counts every call: ``blazerpc_requests_total``, its duration, calls in flight and
    stream messages. The metrics plugin adds one to every app; it is an *outer*
    middleware, so calls another middleware rejects (say ``UNAUTHENTICATED``) count too.
    """

    outer = True

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics

    async def on_request(self, context: CallContext) -> None:
        self.metrics.method(context.method, context.model).in_flight.add(1)

    async def on_response(self, context: CallContext) -> None:
        metrics = self.metrics
        method = metrics.method(context.method, context.model)
        method.in_flight.add(-1)
        method.duration.observe(context.elapsed)
        metrics.code(method, context.status if context.status is not None else Status.UNKNOWN).inc()
        if context.streaming:
            (method.stream_messages or metrics.streamed(method)).inc(context.messages_sent)


class _BatchMetrics(BatchListener):
    """Model calls, their rows, queue waits and queue depth, from the batcher."""

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics

    def on_batch(self, event: BatchEvent) -> None:
        model = self.metrics._model(event.model)
        model.batch_size.observe(event.rows)
        model.inference.observe(event.duration)
        for wait in event.queue_waits:
            model.queue_wait.observe(wait)

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        metrics = self.metrics._model(model)
        metrics.depths[version] = rows
        # One series per model: the versions' queues add up.
        metrics.queue_depth.set(rows if len(metrics.depths) == 1 else sum(metrics.depths.values()))
