"""Starting and stopping a BlazeRPC server: the one code path behind ``blaze serve``,
``BlazeApp.serve`` and ``blazerpc.testing``."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl as _ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import structlog
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health

from .._grpclib import Server as GrpclibServer
from .._grpclib import goaway, reflection_services
from .._h2 import install as install_h2_repr
from .._hooks import call_each, iter_calls, log_failure
from .._limits import Limits
from ..wire import MethodSchema, Schema
from ._calls import CallTracker
from ._connections import Connections, check_connection_age
from ._executor import MODEL_THREADS, ModelThreads
from ._host import ServedModel, ServiceHost, plugin_services
from ._loop import LoopName, loop_factory
from ._pipeline import Codec, Pipeline, Runner
from ._service import BlazeCodec, InferenceService, MethodTable
from ._transport import CoalescingTransport

if TYPE_CHECKING:
    from .._model import ModelSpec
    from ..app import BlazeApp

__all__ = ["BlazeServer", "ServerInfo", "format_address", "run", "serve_until_signal"]

_log = structlog.get_logger("blazerpc")
INFERENCE_SERVICE = "blazerpc.InferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
#: Seconds between the last call of a drain and GOAWAY (see BlazeServer.stop).
_GOAWAY_LINGER = 0.5
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


def format_address(host: str, port: int) -> str:
    """``host:port`` for a client, ``[host]:port`` for an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ServerInfo:
    """What a started server serves and where; passed to lifecycle hooks.

    ``methods`` has one :class:`~blazerpc.wire.MethodSchema` per model; ``options`` are
    the values of plugins' ``blaze serve`` options; ``tls`` says whether it serves TLS.
    """

    host: str
    port: int
    methods: tuple[MethodSchema, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    tls: bool = False

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)


class _Server(GrpclibServer):
    """grpclib's server, keeping its HTTP/2 connections so a drain can end them, and
    coalescing their writes while more than one of ``calls`` is in flight."""

    def __init__(
        self, *args: Any, calls: CallTracker, age: tuple[float, float | None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        in_flight = calls.in_flight
        self._busy: Callable[[], bool] = lambda: len(in_flight) > 1
        self.connections = Connections(goaway, *(age or ()))
        install_h2_repr()

    def wrap_transport(self, transport: asyncio.Transport) -> asyncio.Transport:
        return cast(asyncio.Transport, CoalescingTransport(transport, self._busy))

    def connection_made(self, protocol: Any, transport: asyncio.Transport) -> None:
        self.connections.watch(protocol, transport)

    def goaway(self) -> None:
        """Send GOAWAY on every connection and close it."""
        for protocol in list(self.protocols):
            goaway(protocol)


class BlazeServer:
    """A BlazeRPC server for one app. Create and use it inside a running event loop.

    Args:
        app: the app to serve.
        options: values of plugins' ``blaze serve`` options, for lifecycle hooks.
        limits: overrides of the app's :class:`Limits` (``None`` fields keep the app's).
        max_connection_age: seconds (+-10%) after which a client's connection gets
            GOAWAY, so that the client reconnects (maybe to another replica); ``None``:
            connections live as long as their clients keep them.
        max_connection_age_grace: seconds an aged connection's calls may still run
            before it is closed under them (``None``: as long as they take).
    """

    def __init__(
        self,
        app: BlazeApp,
        *,
        options: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        max_connection_age: float | None = None,
        max_connection_age_grace: float | None = None,
    ) -> None:
        check_connection_age(max_connection_age, max_connection_age_grace)
        self.app = app
        self.options = dict(options or {})
        from ..app import build_runtime  # app imports this package: not at module level

        self._runtime = runtime = build_runtime(app, self.options)
        self.limits = limits or app.limits
        self._calls = CallTracker(self.limits)
        self._executor = ModelThreads(max_workers=MODEL_THREADS)
        inference = InferenceService(
            runtime.models,
            runtime.schema,
            self._executor,
            runtime.plans,
            runtime.to_array,
            self._calls,
            runtime.middleware,
            runtime.batch_listeners,
        )
        self._batchers = inference.batchers
        self._log_plans()
        self._status = ServiceStatus()
        host = self._host(inference)
        added = plugin_services(runtime.pm, host, inference)
        health = Health({inference: [self._status], **{service: [self._status] for service in added}})
        names = [INFERENCE_SERVICE, *sorted({n for names in added.values() for n in names})]
        names += [HEALTH_SERVICE, *REFLECTION_SERVICES]
        files = [runtime.schema.file, *host.files]
        reflection = reflection_services(names, runtime.schema.pool, files)
        age = None if max_connection_age is None else (max_connection_age, max_connection_age_grace)
        self._server = _Server(
            [inference, *added, health, *reflection], codec=BlazeCodec(), calls=self._calls, age=age
        )
        self._server.replace_method_table(MethodTable)
        self._force = asyncio.Event()
        self._stopping = False
        self.info: ServerInfo | None = None
        #: Sync model calls still running in their threads when :meth:`stop` ended.
        self.abandoned = 0
        #: The plugins whose shutdown hook runs (``None``: every plugin).
        self._shutdown_plugins: list[str] | None = None

    def _host(self, inference: InferenceService) -> ServiceHost:
        """What ``blazerpc_services`` gets: each model's runner, to build pipelines on."""
        runtime = self._runtime

        def maker(spec: ModelSpec, runner: Runner) -> Callable[[str, Codec | None], Pipeline]:
            def make(path: str, codec: Codec | None) -> Pipeline:
                return Pipeline(
                    path=path,
                    model=spec.name,
                    version=spec.version,
                    codec=codec,
                    runner=runner,
                    middleware=runtime.middleware,
                    calls=self._calls,
                    errors=inference.errors,
                    max_message_size=self.limits.max_message_size,
                )

            return make

        models = []
        for (spec, method), plan, runner in zip(
            runtime.models, runtime.plans, inference.runners, strict=True
        ):
            c = plan.config
            models.append(
                ServedModel(
                    model=spec,
                    method=method,
                    max_batch_size=c.max_batch_size if plan.batched else None,
                    batch_timeout_ms=c.timeout * 1000 if plan.batched else None,
                    _make=maker(spec, runner),
                )
            )
        status = self._status
        calls = self._calls
        self._draining = asyncio.Event()
        return ServiceHost(
            app=self.app,
            options=self.options,
            schema=runtime.schema,
            limits=self.limits,
            models=tuple(models),
            _ready=lambda: bool(status.__status__()) and not calls.draining,
            _draining=self._draining,
        )

    def _log_plans(self) -> None:
        """One line per model: whether it is batched, and how many of its calls run at
        once (the rule: ``blazerpc.batching``)."""
        for (spec, method), plan in zip(self._runtime.models, self._runtime.plans, strict=True):
            c = plan.config
            model = f"{spec.name} v{spec.version}"
            if method.streaming:
                _log.info(f"Model {model} streams: not batched and not limited", model=spec.name)
            elif plan.batched:
                batches = "1 batch" if c.max_concurrency == 1 else f"{c.max_concurrency} batches"
                _log.info(
                    f"Batching model {model}: {c.policy} policy, up to {c.max_batch_size} rows, "
                    f"{c.timeout * 1000:g} ms, {batches} at a time",
                    model=spec.name,
                    max_concurrency=c.max_concurrency,
                    max_queue_size=c.max_queue_size,
                )
            elif plan.limit is not None:
                _log.info(
                    f"Model {model} is not batched: {plan.why_not}; up to {plan.limit} calls at a "
                    f"time, {c.max_queue_size} waiting",
                    model=spec.name,
                    max_concurrency=plan.limit,
                    max_queue_size=c.max_queue_size,
                )
            elif spec.kind == "coroutine":
                calls = self.limits.max_concurrent_calls
                _log.info(
                    f"Model {model} is not batched: {plan.why_not}; async, so no limit of its own "
                    f"(the server's max_concurrent_calls, {calls})",
                    model=spec.name,
                )
            else:
                _log.info(
                    f"Model {model} is not batched: {plan.why_not}; sync, so up to {MODEL_THREADS} "
                    "calls at a time (the model threads, shared by every sync model)",
                    model=spec.name,
                )

    @property
    def schema(self) -> Schema:
        """The schema this server serves."""
        return self._runtime.schema

    async def start(
        self,
        host: str = "0.0.0.0",
        port: int = 50051,
        *,
        ssl: _ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> ServerInfo:
        """Listen on ``host:port`` (port 0 picks a free one), run start-up hooks, report SERVING."""
        await self._server.start(host, port, ssl=ssl, reuse_port=reuse_port or None)
        for batcher in self._batchers:
            batcher.start()
        listener: Any = self._server.listener
        sockets = listener.sockets if listener is not None else ()
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.info = ServerInfo(host, bound_port, self._runtime.schema.methods, self.options, ssl is not None)
        started: list[str] = []
        try:
            for plugin, _ in iter_calls(
                self._runtime.pm.hook.blazerpc_startup, {"app": self.app, "server": self.info}
            ):
                started.append(plugin)
        except BaseException:
            # Only the plugins whose start-up ran release what it acquired.
            self._shutdown_plugins = started
            await self.stop()
            self.info = None
            raise
        self._status.set(True)
        return self.info

    def force_stop(self) -> None:
        """End a drain now: calls still running are cancelled with ``UNAVAILABLE``."""
        self._force.set()

    async def stop(self, grace: float = 0.0) -> None:
        """Stop serving, gracefully for up to ``grace`` seconds.

        Health turns ``NOT_SERVING`` and new calls get ``UNAVAILABLE`` at once; the
        listener closes; calls in flight (queued ones included) may finish for
        ``grace`` seconds, after which they are cancelled with ``UNAVAILABLE``; then
        every connection gets GOAWAY and is closed, and shutdown hooks run.

        A sync model call cannot be interrupted in its thread: one still running then
        is abandoned (counted in :attr:`abandoned` and logged). Its thread is a daemon
        thread, so it does not keep the process alive.
        """
        if self._stopping:
            return
        self._stopping = True
        self._status.set(False)
        self._calls.draining = True
        self._draining.set()
        listener = self._server.listener
        if listener is not None:
            listener.close()  # no new connections
        pending = set(self._calls.in_flight)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if pending and grace > 0 and not self._force.is_set():
            _log.info(f"Draining {len(pending)} calls (up to {grace:g} s)", calls=len(pending), grace=grace)
            force = asyncio.ensure_future(self._force.wait())
            while pending and not force.done() and loop.time() < deadline:
                await asyncio.wait(
                    [*pending, force], timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
                )
                pending = {t for t in pending if not t.done()}
            force.cancel()
        pending = {t for t in self._calls.in_flight if not t.done()}
        if pending:
            _log.warning(f"Cancelling {len(pending)} calls still running", calls=len(pending))
            self._calls.cancel_all()
            await asyncio.wait(pending, timeout=5)
        if self._server.protocols and not self._force.is_set():
            # grpclib's client fails every stream it has not consumed yet when GOAWAY
            # arrives, even one whose answer is already in its buffer: give clients a
            # moment to read the last answers before the connections end.
            await asyncio.sleep(max(0.0, min(_GOAWAY_LINGER, deadline - loop.time())))
        if not self._force.is_set():
            # GOAWAY, then each connection closes once the calls refused at the last
            # moment have their answer: closing at once would leave them unanswered.
            await self._server.connections.end_all(min(5.0, deadline - loop.time()))
        self._server.goaway()
        if listener is not None:
            self._server.close()
            await self._server.wait_closed()
        for batcher in self._batchers:
            await batcher.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.abandoned = self._executor.running
        if self.abandoned:
            _log.warning(
                f"Abandoning {self.abandoned} model calls still running in worker threads "
                "(sync model code cannot be interrupted); the process does not wait for them",
                abandoned=self.abandoned,
            )
        if self.info is not None:
            self._run_shutdown_hooks(self.info)

    def _run_shutdown_hooks(self, info: ServerInfo) -> None:
        # Every plugin gets its shutdown call, whatever an earlier one raised, in the
        # reverse of the start-up order; after a failed start-up, only those whose
        # start-up ran.
        hook = self._runtime.pm.hook.blazerpc_shutdown
        call_each(
            hook,
            {"app": self.app, "server": info},
            reverse=True,
            plugins=self._shutdown_plugins,
            on_error=log_failure(hook.name),
        )


async def serve_until_signal(
    server: BlazeServer,
    host: str,
    port: int,
    *,
    ssl: _ssl.SSLContext | None = None,
    grace_period: float = 30.0,
    reuse_port: bool = False,
    on_ready: Callable[[ServerInfo], None] | None = None,
    parent_pid: int | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM, then drain for up to ``grace_period`` seconds; a
    second signal ends the drain at once. A worker (``parent_pid``) also stops when
    its parent is gone. Returns how many sync model calls were abandoned."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            _log.warning("Second signal: stopping now")
            server.force_stop()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    info = await server.start(host, port, ssl=ssl, reuse_port=reuse_port)
    if on_ready is not None:
        on_ready(info)
    orphan_watch = None
    if parent_pid is not None:
        orphan_watch = asyncio.ensure_future(_stop_when_orphaned(parent_pid, stop))
    try:
        await stop.wait()
        _log.info("Shutting down", grace_period=grace_period)
    finally:
        if orphan_watch is not None:
            orphan_watch.cancel()
        await server.stop(grace_period)
    return server.abandoned


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    _log.warning("The supervising process is gone; shutting down")
    stop.set()


def run(
    app: BlazeApp,
    host: str = "0.0.0.0",
    port: int = 50051,
    *,
    ssl: _ssl.SSLContext | None = None,
    options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    grace_period: float = 30.0,
    reuse_port: bool = False,
    on_ready: Callable[[ServerInfo], None] | None = None,
    parent_pid: int | None = None,
    loop: LoopName = "auto",
    max_connection_age: float | None = None,
    max_connection_age_grace: float | None = None,
) -> int:
    """Serve ``app`` until SIGINT or SIGTERM, then drain gracefully. Blocks; returns how
    many sync model calls were still running, abandoned, when the server stopped.

    ``loop``: ``uvloop`` or ``asyncio``'s own; ``auto`` is uvloop when installed.
    ``max_connection_age``, ``max_connection_age_grace``: see :class:`BlazeServer`.
    """
    check_connection_age(max_connection_age, max_connection_age_grace)

    async def main() -> int:
        server = BlazeServer(
            app,
            options=options,
            limits=limits,
            max_connection_age=max_connection_age,
            max_connection_age_grace=max_connection_age_grace,
        )
        return await serve_until_signal(
            server,
            host,
            port,
            ssl=ssl,
            grace_period=grace_period,
            reuse_port=reuse_port,
            on_ready=on_ready,
            parent_pid=parent_pid,
        )

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main())
