"""Starting and stopping a BlazeRPC server: the one code path behind ``blaze serve``,
``BlazeApp.serve`` and ``blazerpc.testing``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import ssl as _ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.reflection.v1alpha.reflection_grpc import ServerReflectionBase as _V1AlphaBase
from grpclib.server import Server

from ..wire._schema import MethodSchema, Schema
from ._service import BlazeCodec, InferenceService, MethodTable

if TYPE_CHECKING:
    from ..app import BlazeApp

__all__ = ["BlazeServer", "ServerInfo", "run"]

_log = structlog.get_logger("blazerpc")
INFERENCE_SERVICE = "blazerpc.InferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


@dataclass(frozen=True)
class ServerInfo:
    """What a started server serves and where; passed to lifecycle hooks."""

    host: str
    port: int
    methods: tuple[MethodSchema, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    tls: bool = False

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class BlazeServer:
    """A BlazeRPC server for one app. Create and use it inside a running event loop."""

    def __init__(self, app: BlazeApp, *, options: Mapping[str, Any] | None = None) -> None:
        self.app = app
        self.options = dict(options or {})
        self._runtime = app._build()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="blazerpc-model"
        )
        runtime = self._runtime
        inference = InferenceService(
            runtime.models,
            runtime.schema,
            self._executor,
            runtime.plans,
            runtime.to_array,
            runtime.middleware,
            runtime.batch_listeners,
        )
        self._batchers = inference.batchers
        for (spec, _), plan in zip(runtime.models, runtime.plans, strict=True):
            c = plan.config
            if not plan.batched:
                _log.info(
                    f"Model {spec.name} v{spec.version} is not batched: {plan.why_not}",
                    model=spec.name,
                    max_concurrency=c.max_concurrency,
                )
            else:
                _log.info(
                    f"Batching model {spec.name} v{spec.version}: {c.policy} policy, up to "
                    f"{c.max_batch_size} rows, {c.timeout * 1000:g} ms",
                    model=spec.name,
                    max_concurrency=c.max_concurrency,
                    max_queue_size=c.max_queue_size,
                )
        self._status = ServiceStatus()
        health = Health({inference: [self._status]})
        names = [INFERENCE_SERVICE, HEALTH_SERVICE, *REFLECTION_SERVICES]
        pool = self._runtime.schema.pool
        reflection = ServerReflection(_service_names=names, _pool=pool)
        reflection_v1alpha = _reflection_v1alpha(names, pool)
        self._server = Server([inference, health, reflection, reflection_v1alpha], codec=BlazeCodec())
        # grpclib looks methods up with mapping.get(path), set up in its constructor.
        self._server._mapping = MethodTable(self._server._mapping)
        self.info: ServerInfo | None = None

    @property
    def schema(self) -> Schema:
        """The schema this server serves."""
        return self._runtime.schema

    async def start(
        self, host: str = "0.0.0.0", port: int = 50051, *, ssl: _ssl.SSLContext | None = None
    ) -> ServerInfo:
        """Listen on ``host:port`` (port 0 picks a free one), run start-up hooks, report SERVING."""
        await self._server.start(host, port, ssl=ssl)
        for batcher in self._batchers:
            batcher.start()
        # grpclib keeps its asyncio server private; it is where the bound port is.
        listener: Any = self._server._server
        sockets = listener.sockets if listener is not None else ()
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.info = ServerInfo(host, bound_port, self._runtime.schema.methods, self.options, ssl is not None)
        try:
            self._runtime.pm.hook.blazerpc_startup(app=self.app, server=self.info)
        except BaseException:
            self._server.close()
            await self._server.wait_closed()
            raise
        self._status.set(True)
        return self.info

    async def stop(self) -> None:
        """Stop serving: health NOT_SERVING, close the listener and connections, run shutdown hooks."""
        self._status.set(False)
        self._server.close()
        await self._server.wait_closed()
        for batcher in self._batchers:
            await batcher.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.info is not None:
            self._run_shutdown_hooks(self.info)

    def _run_shutdown_hooks(self, info: ServerInfo) -> None:
        # Every plugin gets its shutdown call, whatever an earlier one raised, in the
        # reverse of pluggy's call order (get_hookimpls() lists impls in that reverse).
        for impl in self._runtime.pm.hook.blazerpc_shutdown.get_hookimpls():
            try:
                impl.function(app=self.app, server=info)
            except Exception:  # noqa: BLE001 - one failing plugin must not skip the others
                _log.exception("plugin shutdown failed", plugin=impl.plugin_name)


def _reflection_v1alpha(names: list[str], pool: Any) -> _V1AlphaBase:
    from grpclib.reflection._deprecated import ServerReflection as V1Alpha

    return V1Alpha(_service_names=names, _pool=pool)


async def _serve_until_signal(server: BlazeServer, host: str, port: int, ssl: _ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start(host, port, ssl=ssl)
    try:
        await stop.wait()
        _log.info("Shutting down")
    finally:
        await server.stop()


def run(
    app: BlazeApp,
    host: str = "0.0.0.0",
    port: int = 50051,
    *,
    ssl: _ssl.SSLContext | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM. Blocks."""

    async def main() -> None:
        server = BlazeServer(app, options=options)
        await _serve_until_signal(server, host, port, ssl)

    asyncio.run(main())
