"""Exceptions -> gRPC statuses with messages a client can act on.

Core's own mapping is an :class:`~blazerpc.server.middleware.ExceptionMiddleware`
(:class:`CoreExceptionMapping`), consulted last: after every ``ExceptionMiddleware`` the
app and its plugins provide. :class:`ErrorMapper` runs that chain for one app.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from ..exceptions import RequestError
from .middleware import CallContext, ExceptionMiddleware, Middleware

__all__ = ["CORE_EXCEPTIONS", "CoreExceptionMapping", "ErrorMapper"]

_log = structlog.get_logger("blazerpc")

# grpc-message travels in an HTTP/2 header; keep it well inside common header limits.
_MAX_MESSAGE = 2000


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _clipped(error: GRPCError) -> GRPCError:
    message = error.message
    if message is None or len(message) <= _MAX_MESSAGE:
        return error
    return GRPCError(error.status, _clip(message), error.details)


class CoreExceptionMapping(ExceptionMiddleware):
    """Core's own mapping, the last word on any exception no other middleware maps.

    ``GRPCError``: its own status and message. :class:`~blazerpc.RequestError` (and so
    ``InvalidInputError``, ``InferenceError``): its ``status`` and message. Anything
    else: ``INTERNAL``, ``model 'name' raised ValueError: the message``.
    """

    def status_for(self, exc: BaseException) -> Status:
        if isinstance(exc, (GRPCError, RequestError)):
            return exc.status
        return Status.INTERNAL

    def message_for(self, exc: BaseException, context: CallContext) -> str:
        if isinstance(exc, RequestError):
            return exc.message
        return f"model {context.model!r} raised {type(exc).__name__}: {exc}"

    def map_exception(self, exc: Exception, context: CallContext) -> GRPCError:
        if isinstance(exc, GRPCError):
            return exc
        return GRPCError(self.status_for(exc), self.message_for(exc, context))


#: The instance every app falls back to.
CORE_EXCEPTIONS = CoreExceptionMapping()


class ErrorMapper:
    """Turns an exception raised while serving a call into the ``GRPCError`` its client
    gets, through the ``ExceptionMiddleware`` that wrap the point where it was raised
    (innermost first) and then core's mapping; logs each error once.

    ``middleware`` is the app's, in the order of the chain: every
    ``ExceptionMiddleware`` wraps the model (decoding and encoding included), and one
    that comes before another middleware wraps that middleware's ``on_request``.
    """

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self._middleware = tuple(middleware)
        # Per position in the chain: the mappers before it, innermost first.
        self._wrapping = [
            tuple(reversed([m for m in self._middleware[:i] if isinstance(m, ExceptionMiddleware)]))
            for i in range(len(self._middleware) + 1)
        ]

    def __call__(self, exc: Exception, context: CallContext) -> GRPCError:
        """The error for ``exc``, raised by the model (or decoding its request, or
        encoding its result)."""
        where = {"model": context.model, "method": context.method}
        if isinstance(exc, GRPCError):
            _log.info("model returned an error status", **where, status=exc.status.name, message=exc.message)
            return _clipped(exc)
        error = self._mapped(exc, context, self._wrapping[-1], where)
        if error is not None:
            return error
        error = CORE_EXCEPTIONS.map_exception(exc, context)
        if isinstance(exc, RequestError):
            level = _log.warning if exc.status is Status.INTERNAL else _log.info
            level("request failed", **where, status=exc.status.name, message=exc.message)
        else:
            # The traceback names each frame's file, line, function and code, never its
            # locals (see blazerpc._logging): those hold the request and its metadata.
            _log.error("model raised", **where, status=error.status.name, message=error.message, exc_info=exc)
        return _clipped(error)

    def middleware_error(self, exc: Exception, context: CallContext, index: int) -> GRPCError:
        """The error for ``exc``, raised by the ``on_request`` of the middleware at
        ``index`` in the chain. A ``GRPCError`` is that middleware's answer, as it is."""
        if isinstance(exc, GRPCError):
            return _clipped(exc)
        name = type(self._middleware[index]).__name__
        where = {"model": context.model, "method": context.method, "middleware": name}
        error = self._mapped(exc, context, self._wrapping[index], where)
        if error is not None:
            return error
        status = CORE_EXCEPTIONS.status_for(exc)
        if isinstance(exc, RequestError):
            error = GRPCError(status, exc.message)
        else:
            error = GRPCError(status, f"middleware {name!r} raised {type(exc).__name__}: {exc}")
        _log.error("middleware raised", **where, status=status.name, message=error.message, exc_info=exc)
        return _clipped(error)

    def _mapped(
        self,
        exc: Exception,
        context: CallContext,
        mappers: Sequence[ExceptionMiddleware],
        where: dict[str, str],
    ) -> GRPCError | None:
        for mapper in mappers:
            try:
                error = mapper.map_exception(exc, context)
            except Exception:  # noqa: BLE001 - a broken mapper must not lose the call's error
                _log.exception("ExceptionMiddleware failed", **where, mapper=type(mapper).__name__)
                continue
            if error is not None:
                _log.info(
                    f"{'middleware' if 'middleware' in where else 'model'} raised {type(exc).__name__}",
                    **where,
                    status=error.status.name,
                    message=error.message,
                    mapped_by=type(mapper).__name__,
                )
                return _clipped(error)
        return None
