"""The hooks a BlazeRPC plugin can implement.

A plugin is a module or object with functions marked ``@blazerpc.hookimpl`` and named
after the specs below; it is found through the ``blazerpc`` entry-point group, or
registered on an app with ``BlazeApp(plugins=[...])`` / ``app.register_plugin(...)``.

Every hook runs while the server starts (or while the CLI is built), never per request:
hooks build plain objects (wire types, converters, middleware) that the request path
then uses directly.

Hooks marked *first result* stop at the first implementation that returns something
other than ``None``; core's own defaults are registered ``trylast`` so a plugin always
gets the first word. The other hooks collect a result from every plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from .app import BlazeApp
    from .batching import BatchConfig, BatchListener, BatchPolicy
    from .cli import ServeOption
    from .deploy import KubernetesTarget, Manifest
    from .server import ServerInfo, ServiceHost, SupervisorInfo
    from .wire import ArrayConverter, FieldContext, WireType

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("blazerpc")
hookimpl = pluggy.HookimplMarker("blazerpc")


# --- type mapping and serialization ----------------------------------------------------


@hookspec(firstresult=True)
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    """Map a parameter's or result's annotation to a protobuf field and its converters.

    Return ``None`` if this plugin does not handle ``annotation``. Use
    ``context.resolve(inner)`` to map an inner annotation (the ``T`` of ``list[T]``)
    through all plugins, and :func:`blazerpc.wire.tensor_wire_type` to declare a tensor.

    Called once per parameter and result at registration and at start-up.
    First result: stops at the first non-``None`` value.
    """


@hookspec
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    """Converters from a framework's array type to ``np.ndarray``.

    A model may return a ``torch.Tensor`` (say) for a tensor result; the converter for
    its type turns it into a numpy array before it is serialized. Exact types are looked
    up first, then base classes.

    Called once at start-up. Collects the converters of every plugin.
    """


# --- models ------------------------------------------------------------------------------


@hookspec(firstresult=True)
def blazerpc_adapt_model(obj: Any, name: str) -> Callable[..., Any] | None:
    """Turn a framework object (an ``nn.Module``, an ONNX model, a SavedModel...) into
    a servable function.

    Return ``None`` unless ``obj`` is something this plugin serves. The function returned
    must carry the annotations its schema is built from (set ``__signature__`` when they
    are computed, e.g. from an ONNX graph).

    Called once per ``@app.model(...)`` registration.
    First result: stops at the first non-``None`` value.
    """


# --- request path ------------------------------------------------------------------------


@hookspec
def blazerpc_middleware(app: BlazeApp, options: Mapping[str, Any]) -> Sequence[Any]:
    """Middleware to run around every call of ``app``.

    Return :class:`blazerpc.Middleware` instances. Core orders all middleware
    (``blazerpc.server._pipeline.order_middleware``; the rule is told in
    ``blazerpc.server.middleware``): those marked ``outer = True`` first (logging and
    metrics, so they see calls the app's own middleware rejects), by ``order`` and then
    class name; then the app's own, as given; then the other plugins', by ``order`` and
    then class name; never by registration order.

    ``options`` are the server's option values (``blaze serve``'s plugin options, by
    name; empty when the app is only being inspected): a plugin whose option turns its
    middleware off returns none, so the calls do not pay for it.

    Called once at start-up. Collects the middleware of every plugin.
    """


@hookspec
def blazerpc_services(host: ServiceHost) -> Sequence[Any]:
    """gRPC services to serve beside ``blazerpc.InferenceService``, on the same port:
    another protocol for the same models (``blazerpc-oip`` adds the Open Inference
    Protocol this way), or anything else.

    Return grpclib servicers (objects whose ``__mapping__()`` returns ``{path:
    grpclib.const.Handler}``). A handler of an inference call gets its model's
    pipeline once, at start-up, from ``host.models[i].pipeline(path, codec)``, and
    per call awaits ``pipeline.handle(stream)`` (or ``handle(stream, data, codec)``
    when it read the request itself, to find the model it names): middleware,
    admission (limits, drain), the model's batcher or concurrency limit, execution and
    the mapping of exceptions to statuses are the app's, shared with the native
    protocol; only decode and encode (a :class:`blazerpc.server.Codec`) are the
    protocol's. Handlers whose messages are bytes use
    :class:`blazerpc.server.RawMessage` as their request and reply types; others use
    classes from ``host.schema.pool`` (add the ``.proto`` with ``host.add_file``, which
    also serves it through reflection). ``host.ready`` is the health service's
    answer (false before start-up ends and while draining); ``await host.draining()``
    returns when the drain starts, for a long-lived call to end between requests. The services are listed
    by reflection and reported by the health service under their own names; two
    plugins serving one path is a start-up error. ``host.options`` are the serve
    options: a plugin whose option turns it off returns no services.

    Called once per server start-up, after the models' batchers are built. Collects
    the services of every plugin.
    """


# --- batching ----------------------------------------------------------------------------


@hookspec
def blazerpc_batching_policies() -> Mapping[str, Callable[[BatchConfig], BatchPolicy]]:
    """Batching policies by name: ``{"my-policy": lambda config: MyPolicy(config)}``.

    A model picks one with ``batch_policy="my-policy"`` (on the app or the model); the
    factory is called once per batched model at start-up with its settings. Core
    provides ``"adaptive"`` (the default) and ``"fixed"``; two plugins offering the same
    name is a start-up error. If a policy's ``delay`` raises (or returns no number), the
    requests it was deciding about fail with ``INTERNAL`` naming the policy, the error is
    logged, and batching goes on.

    Called once at start-up. Collects the policies of every plugin.
    """


@hookspec
def blazerpc_batch_listeners(app: BlazeApp) -> Sequence[BatchListener]:
    """Listeners told about every batch (rows, requests, queue waits, model time) and
    every change of queue depth; see :class:`blazerpc.batching.BatchListener`. A
    listener that raises is logged and skipped; it never affects a call.

    Called once at start-up. Collects the listeners of every plugin.
    """


# --- command line ------------------------------------------------------------------------


@hookspec
def blazerpc_cli(cli: typer.Typer) -> None:
    """Add commands to the ``blaze`` command line (``@cli.command()``).

    Called once when the CLI is built. Every plugin is called.
    """


@hookspec
def blazerpc_serve_options() -> Sequence[ServeOption]:
    """Options that ``blaze serve`` should accept, such as ``--metrics-port``.

    Their values reach :func:`blazerpc_startup` in ``server.options`` under the option's
    parameter name. Give every option a default: it must work when not passed.

    Called once when the CLI is built. Collects the options of every plugin.
    """


# --- server lifecycle --------------------------------------------------------------------


@hookspec
def blazerpc_startup(app: BlazeApp, server: ServerInfo) -> None:
    """The server is listening and about to report ``SERVING``.

    ``server`` says where it listens, which models it serves and the values of the
    plugins' serve options. Raise to abort start-up (with a message saying why).

    Every plugin is called, in pluggy's order: the most recently registered first,
    ``tryfirst``/``trylast`` respected (core's start-up log line is ``trylast``).
    """


@hookspec
def blazerpc_shutdown(app: BlazeApp, server: ServerInfo) -> None:
    """The server has stopped serving; release what :func:`blazerpc_startup` acquired.

    Every plugin is called, in the reverse order of :func:`blazerpc_startup`, even if
    an earlier one raised. When a start-up hook raised, only the plugins whose start-up
    had run are called.
    """


# --- the supervising parent of `blaze serve --workers N` / `--reload` ------------------


@hookspec
def blazerpc_supervisor_start(supervisor: SupervisorInfo) -> None:
    """In the supervising parent, before its first worker process starts.

    Changes to ``os.environ`` made here reach every worker (a shared directory for
    per-process data, say). Raise :class:`blazerpc.ConfigurationError` to abort
    start-up with a message.

    Every plugin is called, in pluggy's order; stops at the first exception.
    """


@hookspec
def blazerpc_worker_exit(supervisor: SupervisorInfo, pid: int, returncode: int) -> None:
    """In the parent, after a worker process exited (a crash, a reload or a stop) and
    was reaped, before any replacement starts. ``returncode`` is negative for a signal.

    Every plugin is called; one that raises is logged and does not stop the others.
    """


@hookspec
def blazerpc_supervisor_stop(supervisor: SupervisorInfo) -> None:
    """In the parent, after every worker has exited; release what
    :func:`blazerpc_supervisor_start` set up. Called only for plugins whose start hook
    ran without raising, in reverse order, each even if another raised.
    """


# --- deployment: `blaze deploy kubernetes` ------------------------------------------------


@hookspec
def blazerpc_kubernetes_manifests(app: BlazeApp, target: KubernetesTarget) -> Sequence[Manifest]:
    """More objects for ``blaze deploy kubernetes`` to write beside core's Deployment,
    Services, PodDisruptionBudget and autoscaler (a KServe ``ServingRuntime`` and
    ``InferenceService`` for the Open Inference Protocol, say).

    ``target`` is the Deployment they go with: its name, namespace, pod labels, the
    container's ``blaze serve`` command and the resolved options (image, port...).
    Return :class:`blazerpc.deploy.Manifest` objects; each file name must be new.

    Called once per command. Collects every plugin's, ordered by plugin name.
    """
