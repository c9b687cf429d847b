"""``BlazeApp``: the model registry and the entry point to serving."""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pluggy

from ._model import ModelSpec, build_method, make_to_array
from .exceptions import ConfigurationError, ModelRegistrationError
from .plugins import new_plugin_manager
from .server.middleware import Middleware
from .wire._proto_text import render_proto
from .wire._schema import MethodSchema, Schema, build_schema

__all__ = ["BlazeApp"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Runtime:
    """Everything computed once at start-up from the app and its plugins."""

    pm: pluggy.PluginManager
    schema: Schema
    models: tuple[tuple[ModelSpec, MethodSchema], ...]
    middleware: tuple[Middleware, ...]


class BlazeApp:
    """A set of models served together as ``blazerpc.InferenceService``.

    Args:
        plugins: plugin objects or modules to register on this app, in addition to the
            installed ones found through the ``blazerpc`` entry points.
        middleware: :class:`~blazerpc.server.middleware.Middleware` to run around every
            call, in this order, before any plugin's.
    """

    def __init__(self, *, plugins: Iterable[object] = (), middleware: Iterable[Middleware] = ()) -> None:
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
        on this app only."""
        self._plugins.append(plugin)

    def plugin_manager(self) -> pluggy.PluginManager:
        """A plugin manager with the installed plugins, then the app's own, as they are now."""
        return new_plugin_manager(self._plugins)

    def _to_array(self, pm: pluggy.PluginManager) -> Callable[[Any], np.ndarray]:
        converters = [c for group in pm.hook.blazerpc_array_converters() for c in group]
        return make_to_array(converters)

    # --- models ----------------------------------------------------------------------

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """The registered models, in registration order."""
        return tuple(self._models)

    def model(self, name: str, *, version: str | None = None, streaming: bool = False) -> Callable[[F], F]:
        """Register a function as model ``name``; its annotations define the schema.

        Args:
            name: the model's name; the RPC is ``Predict<Name>`` (``"text-embed"`` ->
                ``PredictTextEmbed``).
            version: a version string. Without one the model is version ``"1"`` and its
                RPC is ``Predict<Name>``; with one, ``Predict<Name>V<version>``, so
                several versions of a model can be served side by side.
            streaming: the function is a generator; each value it yields is one message
                of a server-streaming RPC.

        Returns the function unchanged. Raises :class:`ModelRegistrationError` (or its
        :class:`TypeMappingError`) if the model cannot be served as declared.
        """

        def register(obj: F) -> F:
            pm = self.plugin_manager()
            func = pm.hook.blazerpc_adapt_model(obj=obj, name=name) or obj
            spec = ModelSpec.create(name, version, func, streaming)
            self._check_unique(spec)
            build_method(spec, pm, self._to_array(pm))  # map every annotation now: fail early
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

    def _build(self) -> _Runtime:
        """Map every model through the current plugins and build the schema."""
        if not self._models:
            raise ConfigurationError("the app has no models: register one with @app.model(...)")
        pm = self.plugin_manager()
        to_array = self._to_array(pm)
        methods = [build_method(spec, pm, to_array) for spec in self._models]
        return _Runtime(
            pm=pm,
            schema=build_schema(methods),
            models=tuple(zip(self._models, methods, strict=True)),
            middleware=(*self._middleware, *self._plugin_middleware(pm)),
        )

    def _plugin_middleware(self, pm: pluggy.PluginManager) -> list[Middleware]:
        found = [m for group in pm.hook.blazerpc_middleware(app=self) for m in group]
        for m in found:
            if not isinstance(m, Middleware):
                raise ConfigurationError(f"a plugin's blazerpc_middleware returned {m!r}, not a Middleware")
        return sorted(found, key=lambda m: (m.order, type(m).__qualname__))

    def schema(self) -> Schema:
        """The generated protobuf schema: file descriptor, pool and message classes."""
        return self._build().schema

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
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Serve until SIGINT or SIGTERM. ``blaze serve`` runs exactly this."""
        from .server import run

        run(self, host, port, ssl=ssl, options=options)
