"""``BlazeApp``: the model registry and the entry point to serving.

:func:`build_runtime` and :func:`set_default_max_queue_size` are for BlazeRPC's own
server and CLI (they read the app's settings, which live here); they are not public API
(``__all__``).
"""

from __future__ import annotations

import dataclasses
import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pluggy

from ._limits import Limits
from ._model import Model, ModelSpec, build_method, check_defaults, make_to_array
from .batching import BatchConfig, BatchListener, BatchPolicy
from .batching._plan import BatchSettings, ModelPlan, plan_model
from .exceptions import ConfigurationError, ModelRegistrationError
from .plugins import check_plugin, new_plugin_manager
from .server._loop import LoopName
from .server._pipeline import order_middleware
from .server.middleware import Middleware
from .wire._proto_text import render_proto
from .wire._schema import MethodSchema, Schema, build_schema

__all__ = ["BlazeApp"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Runtime:
    """Everything computed once at start-up from the app and its plugins."""

    pm: pluggy.PluginManager
    schema: Schema
    models: tuple[tuple[ModelSpec, MethodSchema], ...]
    middleware: tuple[Middleware, ...]  # in the chain's order (order_middleware)
    plans: tuple[ModelPlan, ...]  # per model: how its calls are scheduled
    to_array: Callable[[Any], np.ndarray]  # the plugins' array converters
    batch_listeners: tuple[BatchListener, ...]


class BlazeApp:
    """A set of models served together as ``blazerpc.InferenceService``.

    Args:
        plugins: plugin objects or modules to register on this app, in addition to the
            installed ones found through the ``blazerpc`` entry points.
        middleware: :class:`~blazerpc.server.middleware.Middleware` to run around every
            call, in this order: after plugins' ``outer`` middleware (access log, metrics),
            before any other plugin's.
        enable_batching: join concurrent requests into one model call, for every model
            whose inputs and outputs all have a batch axis (see ``blazerpc.batching``).
            A model's own ``batching=True`` or ``False`` on :meth:`model` overrides it.
        max_batch_size: the most rows in one batch. A request with more runs alone.
        batch_timeout_ms: the longest a request waits for others to join its batch.
        batch_policy: when a batch leaves the queue: ``"adaptive"`` (dispatch at once
            while the model is idle, gather while it is busy) or ``"fixed"`` (wait for a
            full batch or the timeout), or a plugin's policy.
        max_concurrency: calls (batches, for a batched model) of one model running at
            the same time. Unset, it depends on the model: the rule is in
            ``blazerpc.batching`` ("How many calls of a model run at once").
        max_queue_size: rows (calls, for an unbatched model with a ``max_concurrency``)
            that may wait for one model; beyond that a request gets
            ``RESOURCE_EXHAUSTED`` at once.
        max_message_size: the largest request, in bytes (default 64 MiB).
        max_concurrent_calls: inference calls in progress at once, server-wide.
        default_timeout: seconds a unary call may run when its client sent no
            deadline (``None``: no limit).

    Every batching setting can be overridden per model on :meth:`model`. The last three
    are ``app.limits``, a :class:`~blazerpc.Limits`.
    """

    def __init__(
        self,
        *,
        plugins: Iterable[object] = (),
        middleware: Iterable[Middleware] = (),
        enable_batching: bool = True,
        max_batch_size: int = 32,
        batch_timeout_ms: float = 10.0,
        batch_policy: str = "adaptive",
        max_concurrency: int | None = None,
        max_queue_size: int = 2048,
        max_message_size: int = Limits.max_message_size,
        max_concurrent_calls: int = Limits.max_concurrent_calls,
        default_timeout: float | None = Limits.default_timeout,
    ) -> None:
        self.limits = Limits(
            max_message_size=max_message_size,
            max_concurrent_calls=max_concurrent_calls,
            default_timeout=default_timeout,
        )
        self._batching = BatchSettings(
            enabled=bool(enable_batching),
            max_batch_size=max_batch_size,
            batch_timeout_ms=batch_timeout_ms,
            batch_policy=batch_policy,
            max_concurrency=max_concurrency,
            max_queue_size=max_queue_size,
        ).check("BlazeApp")
        self._models: list[ModelSpec] = []
        self._plugins: list[object] = []
        self._middleware = list(middleware)
        for m in self._middleware:
            if not isinstance(m, Middleware):
                raise ConfigurationError(f"middleware must be Middleware instances, got {m!r}")
        for plugin in plugins:
            self.register_plugin(plugin)

    # --- plugins ---------------------------------------------------------------------

    def register_plugin(self, plugin: object) -> None:
        """Register a plugin (an object or module with ``@blazerpc.hookimpl`` functions)
        on this app only. Raises :class:`~blazerpc.PluginError` if its hooks do not match
        the hook specs."""
        check_plugin(plugin)
        self._plugins.append(plugin)

    def plugin_manager(self) -> pluggy.PluginManager:
        """A plugin manager with the installed plugins, then the app's own, as they are now."""
        return new_plugin_manager(self._plugins)

    # --- models ----------------------------------------------------------------------

    @property
    def models(self) -> tuple[Model, ...]:
        """The registered models (:class:`~blazerpc.Model`), in registration order."""
        return tuple(self._models)

    def model(
        self,
        name: str,
        *,
        version: str | None = None,
        streaming: bool = False,
        batching: bool | None = None,
        max_batch_size: int | None = None,
        batch_timeout_ms: float | None = None,
        batch_policy: str | None = None,
        max_concurrency: int | None = None,
        max_queue_size: int | None = None,
    ) -> Callable[[F], F]:
        """Register a function as model ``name``; its annotations define the schema.

        Args:
            name: the model's name; the RPC is ``Predict<Name>`` (``"text-embed"`` ->
                ``PredictTextEmbed``).
            version: a version string. Without one the model is version ``"1"`` and its
                RPC is ``Predict<Name>``; with one, ``Predict<Name>V<version>``, so
                several versions of a model can be served side by side.
            streaming: the function is a generator; each value it yields is one message
                of a server-streaming RPC.
            batching: ``None`` (the default) follows the app's ``enable_batching``: the
                model is batched if batching is on and every input and output has a
                batch axis. ``True`` batches this model even when the app has batching
                off (start-up fails if it has no batch axis); ``False`` never batches
                it.
            max_batch_size, batch_timeout_ms, batch_policy, max_concurrency,
                max_queue_size: this model's own values for the app's settings (how
                many calls run at once by default: see ``blazerpc.batching``).

        Returns the function unchanged. Raises :class:`ModelRegistrationError` (or its
        :class:`TypeMappingError`) if the model cannot be served as declared.
        """

        def register(obj: F) -> F:
            pm = self.plugin_manager()
            func = pm.hook.blazerpc_adapt_model(obj=obj, name=name) or obj
            overrides = BatchSettings(
                enabled=batching,
                max_batch_size=max_batch_size,
                batch_timeout_ms=batch_timeout_ms,
                batch_policy=batch_policy,
                max_concurrency=max_concurrency,
                max_queue_size=max_queue_size,
            )
            spec = ModelSpec.create(name, version, func, streaming, overrides)
            self._check_unique(spec)
            # Map every annotation, build the model's messages and check its defaults
            # now: fail early.
            method = build_method(spec, pm, _to_array(pm))
            check_defaults(method, build_schema([method]))
            self._models.append(spec)
            return obj

        return register

    def _check_unique(self, spec: ModelSpec) -> None:
        for other in self._models:
            if (other.name, other.version) == (spec.name, spec.version):
                raise ModelRegistrationError(
                    f"model {spec.name!r} version {spec.version!r} is already registered "
                    f"(by {getattr(other.func, '__qualname__', other.func)!r}); "
                    "pass a different version= to serve both"
                )
            if other.base_name == spec.base_name:
                raise ModelRegistrationError(
                    f"models {other.name!r} and {spec.name!r} would both be served as "
                    f"Predict{spec.base_name}; rename one of them"
                )

    # --- schema ----------------------------------------------------------------------

    def _policies(self, pm: pluggy.PluginManager) -> dict[str, Callable[[BatchConfig], BatchPolicy]]:
        policies: dict[str, Callable[[BatchConfig], BatchPolicy]] = {}
        for group in pm.hook.blazerpc_batching_policies():
            for name, factory in group.items():
                if name in policies:
                    raise ConfigurationError(f"two plugins provide the batching policy {name!r}")
                policies[name] = factory
        return policies

    def _plugin_middleware(self, pm: pluggy.PluginManager, options: Mapping[str, Any]) -> list[Middleware]:
        found = [m for group in pm.hook.blazerpc_middleware(app=self, options=options) for m in group]
        for m in found:
            if not isinstance(m, Middleware):
                raise ConfigurationError(f"a plugin's blazerpc_middleware returned {m!r}, not a Middleware")
        return found

    def schema(self) -> Schema:
        """The generated protobuf schema: file descriptor, pool and message classes."""
        return build_runtime(self).schema

    def proto(self, header: str | None = None) -> str:
        """The generated ``blaze_service.proto`` as text."""
        return render_proto(self.schema().file, header=header)

    # --- serving ---------------------------------------------------------------------

    def serve(
        self,
        host: str = "0.0.0.0",
        port: int = 50051,
        *,
        ssl: _ssl.SSLContext | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_ca_certs: str | None = None,
        grace_period: float = 30.0,
        options: Mapping[str, Any] | None = None,
        loop: LoopName = "auto",
        max_connection_age: float | None = None,
        max_connection_age_grace: float | None = None,
    ) -> int:
        """Serve until SIGINT or SIGTERM, then drain for up to ``grace_period`` seconds.

        TLS: pass ``ssl_certfile`` and ``ssl_keyfile`` (and ``ssl_ca_certs`` to require
        client certificates signed by those CAs), or a ready ``ssl`` context. ``loop``:
        ``uvloop`` or ``asyncio``'s own (``auto``: uvloop when installed). ``blaze serve``
        serves through the same code (in one process, or one per worker).

        ``max_connection_age``: seconds (+-10%) after which a client's connection gets
        GOAWAY and is closed once its calls are done (or ``max_connection_age_grace``
        seconds later), so that clients reconnect and new replicas get their share.

        Returns how many sync model calls were still running in their threads when the
        server stopped, abandoned (their threads do not keep the process alive). ``blaze
        serve`` then ends its process at once, so that nothing waits on such a call; a
        script may do the same (``os._exit``).

        Unless structlog is configured already, logs go to stderr as ``blaze serve``'s
        console lines (tracebacks without local variables).
        """
        import structlog

        from ._logging import configure_logging
        from .server import run
        from .server._tls import tls_from_files

        if ssl is not None and ssl_certfile is not None:
            raise ConfigurationError("pass ssl or ssl_certfile (with ssl_keyfile, ssl_ca_certs), not both")
        ssl = ssl or tls_from_files(ssl_certfile, ssl_keyfile, ssl_ca_certs)
        if not structlog.is_configured():
            configure_logging("console")
        return run(
            self,
            host,
            port,
            ssl=ssl,
            options=options,
            grace_period=grace_period,
            loop=loop,
            max_connection_age=max_connection_age,
            max_connection_age_grace=max_connection_age_grace,
        )


def _to_array(pm: pluggy.PluginManager) -> Callable[[Any], np.ndarray]:
    converters = [c for group in pm.hook.blazerpc_array_converters() for c in group]
    return make_to_array(converters)


def build_runtime(app: BlazeApp, options: Mapping[str, Any] | None = None) -> Runtime:
    """Map every model of ``app`` through its current plugins and build the schema, once
    per server start-up; ``options`` are the server's option values, for the plugins'
    middleware."""
    if not app._models:
        raise ConfigurationError("the app has no models: register one with @app.model(...)")
    pm = app.plugin_manager()
    to_array = _to_array(pm)
    methods = [build_method(spec, pm, to_array) for spec in app._models]
    policies = app._policies(pm)
    return Runtime(
        pm=pm,
        schema=build_schema(methods),
        models=tuple(zip(app._models, methods, strict=True)),
        middleware=order_middleware(app._middleware, app._plugin_middleware(pm, options or {})),
        to_array=to_array,
        plans=tuple(
            plan_model(spec.batching, app._batching, method, policies)
            for spec, method in zip(app._models, methods, strict=True)
        ),
        batch_listeners=tuple(
            listener for group in pm.hook.blazerpc_batch_listeners(app=app) for listener in group
        ),
    )


def set_default_max_queue_size(app: BlazeApp, rows: int) -> None:
    """``blaze serve --max-queue-size``: the app-wide default, before start-up."""
    app._batching = dataclasses.replace(app._batching, max_queue_size=rows).check("--max-queue-size")
