"""Exceptions -> gRPC statuses with messages a client can act on."""

from __future__ import annotations

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from ..exceptions import RequestError

__all__ = ["to_grpc_error"]

_log = structlog.get_logger("blazerpc")

# grpc-message travels in an HTTP/2 header; keep it well inside common header limits.
_MAX_MESSAGE = 2000


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def to_grpc_error(exc: Exception, model: str) -> GRPCError:
    """The status a client gets for ``exc`` raised while serving ``model``; logs it."""
    if isinstance(exc, GRPCError):
        _log.info("model returned an error status", model=model, code=exc.status.name, message=exc.message)
        return exc
    if isinstance(exc, RequestError):
        level = _log.warning if exc.status is Status.INTERNAL else _log.info
        level("request failed", model=model, code=exc.status.name, message=exc.message)
        return GRPCError(exc.status, _clip(exc.message))
    _log.error("model raised", model=model, exc_info=exc)
    return GRPCError(Status.INTERNAL, _clip(f"model {model!r} raised {type(exc).__name__}: {exc}"))
