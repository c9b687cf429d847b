"""Middleware: code that runs around every call of a model.

    from grpclib.const import Status
    from grpclib.exceptions import GRPCError
    from blazerpc.server.middleware import Middleware

    class AuthMiddleware(Middleware):
        async def on_request(self, event):
            token = dict(event.metadata).get("authorization")
            if not token:
                raise GRPCError(Status.UNAUTHENTICATED, "Missing token")

        async def on_response(self, event):
            pass

    app = BlazeApp(middleware=[AuthMiddleware()])

``on_request`` runs before the request is decoded; raising ``GRPCError`` there rejects
the call with that status. ``on_response`` runs once the call has ended, whatever its
outcome, with the status the client gets, the message and the elapsed time filled in,
before the trailers go out. Each call has its own :class:`CallContext`, passed to
both; keep per-call state in ``context.state``.

Response metadata: ``context.add_initial_metadata(key, value)`` from ``on_request``
(sent with the response headers, before the first message), and
``context.add_trailing_metadata(key, value)`` from ``on_request`` or ``on_response``
(sent with the trailers, after the status is known). Both go with every answer the
server gives, an error status included, for unary and streaming calls::

    class RequestId(Middleware):
        async def on_request(self, context):
            context.state["id"] = request_id = uuid.uuid4().hex
            context.add_initial_metadata("x-request-id", request_id)

        async def on_response(self, context):
            context.add_trailing_metadata("x-elapsed-ms", f"{context.elapsed * 1000:.1f}")

Order (computed once, at start-up, by ``blazerpc.server._pipeline.order_middleware``):
first the *outer* middleware (``outer = True``: observers such as
:class:`LoggingMiddleware` and the metrics plugin's ``MetricsMiddleware``, which must see
every call, including those another middleware rejects), by ``order`` and then class
name; then the server's own admission (``UNAVAILABLE`` while it drains,
``RESOURCE_EXHAUSTED`` at ``max_concurrent_calls``; the ``default_timeout`` of a call
starts here); then the app's middleware in the order given; then plugins'
(``blazerpc_middleware``) by ``order`` and then class name. ``on_request`` runs in that
order, ``on_response`` in reverse, and only for middleware whose ``on_request`` ran. So
outer middleware see every call, with the status its client gets: refused by the
server, cut off by the default timeout (``DEADLINE_EXCEEDED``) or at the end of a
drain (``UNAVAILABLE``), or ended by the client (``CANCELLED``, or
``DEADLINE_EXCEEDED`` when its deadline passed); the app's and plugins' middleware never
run for a call the server refused.

An exception other than ``GRPCError`` raised by a middleware's ``on_request`` is mapped
like a model's (see :class:`ExceptionMiddleware`), by the ``ExceptionMiddleware`` that
come before it in that order (they wrap it), then by core's mapping: ``INTERNAL``,
``middleware 'Name' raised ValueError: ...``.

Built-ins:
    :class:`LoggingMiddleware`: one log line per call. Core's ``access-log`` built-in adds
    it to every app; ``blaze serve --no-access-log`` turns it off.
    :class:`ExceptionMiddleware`: maps the exceptions a model raises to statuses.
    ``MetricsMiddleware``: Prometheus metrics, from the ``blazerpc-metrics`` plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import encode_metadata

from .._install import plugin_install

__all__ = ["CallContext", "ExceptionMiddleware", "LoggingMiddleware", "Middleware"]


def _checked(key: str, value: str | bytes) -> tuple[str, str | bytes]:
    try:
        encode_metadata(((key, value),))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"invalid response metadata {key!r}: {value!r} ({exc}); a key is lowercase ASCII "
            "letters, digits, '-', '_' and '.' (not 'grpc-...', 'te', 'content-type' or "
            "'user-agent'), and its value printable ASCII text, or bytes when the key ends in '-bin'"
        ) from None
    return key, value


@dataclass
class CallContext:
    """One call, as middleware sees it.

    Attributes:
        method: the gRPC path, ``/blazerpc.InferenceService/PredictSentiment``.
        model: the model's name; ``version`` its version.
        metadata: the request's metadata (a multidict; ``dict(metadata)`` for a plain one).
        peer: the client's address, ``host:port``, when known.
        deadline: seconds left until the client's deadline when the call arrived, or None.
        state: scratch space for middleware, private to this call.
        status: the status the client gets (set before ``on_response``).
        message: the status message, if any.
        elapsed: seconds from the call's arrival to its end (set before ``on_response``).
        messages_sent: response messages sent (1 for a unary call that succeeded).
        streaming: the model is server-streaming.
        initial_metadata: the ``(key, value)`` pairs sent with the response headers, as
            added by :meth:`add_initial_metadata`; ``None`` when there are none.
        trailing_metadata: the pairs sent with the trailers, as added by
            :meth:`add_trailing_metadata`; ``None`` when there are none.
    """

    method: str
    model: str
    version: str
    metadata: Any
    peer: str | None
    deadline: float | None
    state: dict[str, Any] = field(default_factory=dict)
    status: Status | None = None
    message: str | None = None
    elapsed: float = 0.0
    messages_sent: int = 0
    streaming: bool = False
    initial_metadata: list[tuple[str, str | bytes]] | None = None
    trailing_metadata: list[tuple[str, str | bytes]] | None = None

    def _initial_open(self) -> bool:
        """Initial metadata may still be added (the server's own contexts say when not)."""
        return True

    def _trailing_open(self) -> bool:
        """Trailing metadata may still be added."""
        return True

    def add_initial_metadata(self, key: str, value: str | bytes) -> None:
        """Send ``key: value`` in the response headers, which go out before the model
        runs (or with the error that ended the call first). Call it from ``on_request``;
        later it raises ``RuntimeError`` (use :meth:`add_trailing_metadata` then).

        A key is lowercase (``x-request-id``); its value ``str``, or ``bytes`` for a key
        ending in ``-bin``. An invalid one raises ``ValueError`` here. Adding a key twice
        sends it twice.
        """
        if not self._initial_open():
            raise RuntimeError(
                f"initial metadata {key!r} is too late: the response headers go out when every "
                "on_request has run; add it in on_request, or use add_trailing_metadata"
            )
        pair = _checked(key, value)
        if self.initial_metadata is None:
            self.initial_metadata = [pair]
        else:
            self.initial_metadata.append(pair)

    def add_trailing_metadata(self, key: str, value: str | bytes) -> None:
        """Send ``key: value`` in the trailers, with the call's status: from
        ``on_request`` or ``on_response`` (the trailers go out after every
        ``on_response`` has run). Same rules for keys and values as
        :meth:`add_initial_metadata`; after the trailers went out it raises
        ``RuntimeError``."""
        if not self._trailing_open():
            raise RuntimeError(f"trailing metadata {key!r} is too late: the call's trailers were sent")
        pair = _checked(key, value)
        if self.trailing_metadata is None:
            self.trailing_metadata = [pair]
        else:
            self.trailing_metadata.append(pair)


class Middleware:
    """Base class for middleware; override either method or both."""

    #: Position among plugins' middleware (or among outer middleware): lower runs its
    #: ``on_request`` earlier.
    order: ClassVar[int] = 0

    #: Wraps every other middleware, the app's own included, so it sees every call,
    #: even one that another middleware rejects. For observers (logs, metrics) that
    #: never reject a call themselves.
    outer: ClassVar[bool] = False

    async def on_request(self, context: CallContext) -> None:
        """Before the call runs. Raise ``GRPCError`` to reject it. May add initial and
        trailing response metadata (``context.add_initial_metadata``,
        ``context.add_trailing_metadata``)."""

    async def on_response(self, context: CallContext) -> None:
        """After the call ended (successfully or not), before its trailers go out: may
        add trailing metadata (``context.add_trailing_metadata``)."""


class LoggingMiddleware(Middleware):
    """One structured log line per call, when it ends: an access log.

    The event is ``"call"``, with ``method``, ``model``, ``version``, ``peer``,
    ``status`` (``OK``, ``INTERNAL``...), ``duration_ms``; ``messages_sent`` for a
    streaming call; ``message`` when the call failed. Logged at ``info``.

    Core's ``access-log`` built-in adds one to every app (``blaze serve
    --no-access-log``, or ``options={"access_log": False}``, leaves it out).
    """

    outer = True

    def __init__(self, logger: Any = None, *, event: str = "call") -> None:
        self.log = logger if logger is not None else structlog.get_logger("blazerpc.access")
        self.event = event

    async def on_response(self, context: CallContext) -> None:
        status = context.status.name if context.status is not None else "UNKNOWN"
        fields: dict[str, Any] = {
            "method": context.method,
            "model": context.model,
            "version": context.version,
            "peer": context.peer,
            "status": status,
            "duration_ms": round(context.elapsed * 1000, 3),
        }
        if context.streaming:
            fields["messages_sent"] = context.messages_sent
        if context.status is not Status.OK and context.message:
            fields["message"] = context.message
        self.log.info(self.event, **fields)


class ExceptionMiddleware(Middleware):
    """Maps the exceptions a model raises to the status its client gets.

        class ShopErrors(ExceptionMiddleware):
            exception_map = {
                ItemNotFound: Status.NOT_FOUND,
                PermissionError: Status.PERMISSION_DENIED,
            }

        app = BlazeApp(middleware=[ShopErrors()])

    When a model raises, the exception is offered to every ``ExceptionMiddleware`` of
    the app (its own and plugins'), innermost first (the reverse of the middleware
    order, as nested ``try``/``except`` blocks would see it); when another middleware's
    ``on_request`` raises, to those that come before it in that order. The first whose
    :meth:`map_exception` returns an error decides. ``exception_map`` is looked up
    along the exception's class hierarchy, so the entry for the most specific class
    wins (a ``KeyError`` matches ``KeyError`` before ``LookupError``). What no
    middleware maps gets core's own mapping, which is itself an ``ExceptionMiddleware``
    (``blazerpc.server._errors.CoreExceptionMapping``): a ``GRPCError`` keeps its status,
    a :class:`blazerpc.RequestError` has its ``status``, anything else is ``INTERNAL``
    with the exception's type and message.

    A ``GRPCError`` raised by the model is never remapped: it already says its status.
    Override :meth:`message_for` to change the message, or :meth:`map_exception` to
    decide from more than the type (return ``None`` to pass).
    """

    #: Exception class -> the status a client gets when the model raises it.
    exception_map: ClassVar[Mapping[type[BaseException], Status]] = {}

    def status_for(self, exc: BaseException) -> Status | None:
        """The status for ``exc``: the entry of its most specific class in ``exception_map``."""
        table = self.exception_map
        if not table:
            return None
        for cls in type(exc).__mro__:
            status = table.get(cls)
            if status is not None:
                return status
        return None

    def message_for(self, exc: BaseException, context: CallContext) -> str:
        """The status message for ``exc``: its text, or its type's name when it has none."""
        return str(exc) or type(exc).__name__

    def map_exception(self, exc: Exception, context: CallContext) -> GRPCError | None:
        """The error the client gets for ``exc``, or ``None`` to leave it to the next."""
        status = self.status_for(exc)
        if status is None:
            return None
        return GRPCError(status, self.message_for(exc, context))


def __getattr__(name: str) -> Any:
    # ``from blazerpc.server.middleware import MetricsMiddleware`` (the seed's import
    # path) works when the metrics plugin is installed, and says what to install if not.
    if name == "MetricsMiddleware":
        try:
            plugin = importlib.import_module("blazerpc_metrics")
        except ImportError as exc:
            raise ImportError(
                "MetricsMiddleware is provided by the metrics plugin, which is not installed: "
                + plugin_install("blazerpc-metrics"),
                name="blazerpc_metrics",
            ) from exc
        return plugin.MetricsMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
