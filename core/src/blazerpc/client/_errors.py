"""The client's two exceptions: :class:`CallError` for a call that did not succeed, and
:class:`ClientInputError` for one the client refused to send; and the mapping of
transport errors onto ``CallError``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from ..exceptions import BlazeRPCError

__all__ = ["TRANSPORT_ERRORS", "CallError", "ClientInputError", "status_of", "translate_errors"]


class CallError(GRPCError, BlazeRPCError):
    """A call did not succeed: ``.status`` (a ``grpclib.const.Status``) and ``.message``.

    Raised for the server's non-OK statuses as they came, and for what went wrong on the
    client's side with the status a gRPC client reports for it: ``UNAVAILABLE`` when
    the server cannot be reached or the connection breaks, ``DEADLINE_EXCEEDED`` when
    the call's timeout passes, ``UNIMPLEMENTED`` for a model the server does not serve (as
    its schema says). It is a ``grpclib.exceptions.GRPCError``, so code catching that catches this too.
    Inputs the client refuses to send raise :class:`ClientInputError` instead.
    """

    def __init__(self, status: Status, message: str | None = None, details: Any = None) -> None:
        super().__init__(status, message, details)

    @property
    def code(self) -> str:
        """The status's name: ``"INVALID_ARGUMENT"``."""
        return self.status.name

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}" if self.message else self.status.name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.message, self.details))


class ClientInputError(BlazeRPCError, ValueError):
    """The client refused to send a call: nothing reached the server, and there is no gRPC
    status. Its message starts with ``refused by the client, nothing sent:`` and names
    the input, the type the model's field takes, and the value given::

        refused by the client, nothing sent: input 'n' of model 'generate' expects int64,
        got 1.5 (float)

    Raised for a value the input's field cannot hold, an input the model does not have,
    an ambiguous or non-string ``version``, and ``predict()`` of a streaming model.
    ``blaze call`` prints the same message after ``Error:``. ``model`` and ``field`` say
    what was refused (``field`` is ``None`` when the refusal is not about one input),
    ``expected`` the field's type as ``blaze call --list`` shows it (``float32[batch, 3]``),
    ``value`` the value given.
    """

    PREFIX = "refused by the client, nothing sent: "

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(self.PREFIX + message)
        self.message = self.PREFIX + message
        self.model = model
        self.field = field
        self.expected = expected
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.message.removeprefix(self.PREFIX), self.model, self.field, self.expected)


def _rebuild(message: str, model: str | None, field: str | None, expected: str | None) -> ClientInputError:
    return ClientInputError(message, model=model, field=field, expected=expected)


#: What a failed call can raise on the client's side, besides GRPCError.
TRANSPORT_ERRORS = (TimeoutError, StreamTerminatedError, ProtocolError, OSError)


def status_of(exc: BaseException) -> Status:
    """The status a gRPC client reports for ``exc``: a ``GRPCError``'s own,
    ``DEADLINE_EXCEEDED`` for a timeout, ``UNAVAILABLE`` for the connection failing."""
    if isinstance(exc, GRPCError):
        return exc.status
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return Status.DEADLINE_EXCEEDED
    return Status.UNAVAILABLE


@contextlib.contextmanager
def translate_errors(target: str) -> Iterator[None]:
    """Turn grpclib's and the network's exceptions into :class:`CallError`."""
    try:
        yield
    except CallError:
        raise
    except GRPCError as exc:
        raise CallError(exc.status, exc.message, exc.details) from None
    except TRANSPORT_ERRORS as exc:
        status = status_of(exc)
        if status is Status.DEADLINE_EXCEEDED:
            raise CallError(status, "deadline exceeded") from None
        raise CallError(status, f"cannot reach {target}: {exc or type(exc).__name__}") from None
