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
outcome, with the status, message and elapsed time filled in. Each call has its own
:class:`CallContext`, passed to both; keep per-call state in ``context.state``.

Order: the app's middleware in the order given, then plugins' (``blazerpc_middleware``)
by ``order`` and then class name. ``on_request`` runs in that order, ``on_response`` in
reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from grpclib.const import Status

__all__ = ["CallContext", "Middleware"]


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
        status: the call's final status (set before ``on_response``).
        message: the status message, if any.
        elapsed: seconds from the call's arrival to its end (set before ``on_response``).
        messages_sent: response messages sent (1 for a unary call that succeeded).
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


class Middleware:
    """Base class for middleware; override either method or both."""

    #: Position among plugins' middleware: lower runs its ``on_request`` earlier.
    order: ClassVar[int] = 0

    async def on_request(self, context: CallContext) -> None:
        """Before the call runs. Raise ``GRPCError`` to reject it."""

    async def on_response(self, context: CallContext) -> None:
        """After the call ended (successfully or not)."""
