"""The path of one call, top to bottom: :class:`Pipeline`.

One pipeline per served method, built once at start-up. Its steps, in order::

    middleware in (outer)   access log, metrics: they see every call, refused ones too
    admission               draining, max_concurrent_calls, the default timeout (_calls)
    middleware in           the app's, then plugins' (order_middleware)
    decode                  request bytes -> the model's arguments      (the codec)
    batch or limit          the model's batcher, or its concurrency limit (the runner)
    execute                 the model: on the loop, or in a worker thread (_executor)
    encode                  the result -> response bytes, sent          (the codec)
    middleware out          every on_response due, innermost first; then the trailers

Decode and encode are the protocol's ends (:class:`Codec`): a second protocol serves the
same models through a pipeline of its own codec and the same runners (:class:`Runner`:
one per model, holding its batcher or limit, so both protocols share them). An
exception on the way becomes a status through the ``ExceptionMiddleware`` that wrap the
point it was raised at, then core's mapping (``_errors``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.server import Stream

from .._grpclib import read_request
from ..batching._batcher import Batcher
from ._calls import CallTracker
from ._errors import ErrorMapper
from ._limit import Limit
from .middleware import CallContext, Middleware

__all__ = [
    "BatchedRunner",
    "Codec",
    "Pipeline",
    "Runner",
    "StreamRunner",
    "UnaryRunner",
    "order_middleware",
]

_log = structlog.get_logger("blazerpc")

#: A call the client ends this close to its deadline ended because of it. The client's
#: clock starts before the call reaches the server (its connection set up, its headers
#: read), so its own timeout and reset can arrive a little before the server's copy of
#: the deadline has passed.
_DEADLINE_SLACK = 0.1


def order_middleware(app: Sequence[Middleware], plugins: Sequence[Middleware]) -> tuple[Middleware, ...]:
    """The one order of a server's middleware (told in ``blazerpc.server.middleware``):
    the outer ones (of the app or plugins) by ``order`` and class name; the app's others
    as given; the plugins' others by ``order`` and class name."""

    def key(m: Middleware) -> tuple[int, str]:
        return (m.order, type(m).__qualname__)

    outer = sorted((m for m in (*app, *plugins) if m.outer), key=key)
    return (*outer, *(m for m in app if not m.outer), *sorted((m for m in plugins if not m.outer), key=key))


# --- the protocol's ends -----------------------------------------------------------------


class Codec(Protocol):
    """A protocol's decode and encode steps for one model."""

    def decode(self, data: bytes) -> list[Any]:
        """Request bytes -> the model's arguments; ``RequestError`` for a bad request."""
        ...

    def encode(self, result: Any) -> bytes:
        """What the model returned (or one item a streaming model yielded) -> bytes."""
        ...

    def encode_fields(self, values: list[Any]) -> bytes:
        """One value per output field (a batched call's share of a batch) -> bytes."""
        ...


# --- batch or limit, execute, encode: one class per kind of model ------------------------


class Runner(Protocol):
    """One model's calls after decoding: scheduled (batch or limit), executed, their
    results encoded with the call's ``codec`` and sent. One per model, shared by every
    protocol that serves it."""

    streaming: bool

    def respond(
        self, stream: Stream[Any, Any], args: list[Any], codec: Codec, call: CallContext | None
    ) -> Awaitable[None]: ...


class UnaryRunner:
    """An unbatched unary model: limit, execute, encode."""

    streaming = False

    def __init__(self, execute: Callable[[list[Any]], Awaitable[Any]], limit: Limit) -> None:
        self.execute = execute
        self.limit = limit

    async def respond(
        self, stream: Stream[Any, Any], args: list[Any], codec: Codec, call: CallContext | None
    ) -> None:
        reply = codec.encode(await self.limit.run(self.execute, args))
        await stream.send_message(reply)
        if call is not None:
            call.messages_sent = 1


class BatchedRunner:
    """A batched unary model: the batcher joins calls and executes them together, and
    hands each its share of the outputs; then encode."""

    streaming = False

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    async def respond(
        self, stream: Stream[Any, Any], args: list[Any], codec: Codec, call: CallContext | None
    ) -> None:
        timeout = stream.deadline.time_remaining() if stream.deadline else None
        reply = codec.encode_fields(await self.batcher.submit(args, timeout))
        await stream.send_message(reply)
        if call is not None:
            call.messages_sent = 1


class StreamRunner:
    """A server-streaming model: execute, then encode and send each item it yields.
    Not batched and not limited: a stream holds no slot of the model's."""

    streaming = True

    def __init__(self, iterate: Callable[[list[Any]], AsyncGenerator[Any, None]]) -> None:
        self.iterate = iterate

    async def respond(
        self, stream: Stream[Any, Any], args: list[Any], codec: Codec, call: CallContext | None
    ) -> None:
        items = self.iterate(args)
        try:
            async for item in items:
                await stream.send_message(codec.encode(item))
                if call is not None:
                    call.messages_sent += 1
        finally:
            await items.aclose()  # the model's own cleanup, however the stream ended


# --- one call, as the middleware see it --------------------------------------------------

#: Where a call is, for what response metadata may still be added.
_REQUEST, _RUNNING, _ANSWERED = 0, 1, 2


@dataclass(eq=False)
class _Call(CallContext):
    """A :class:`CallContext` served by a pipeline, which moves it along its phases."""

    phase: int = field(default=_REQUEST, init=False, repr=False)

    def _initial_open(self) -> bool:
        return self.phase == _REQUEST

    def _trailing_open(self) -> bool:
        return self.phase != _ANSWERED


# --- the pipeline ------------------------------------------------------------------------


class Pipeline:
    """One method's call path (see the module's docstring); grpclib's handler is
    :meth:`handle`."""

    def __init__(
        self,
        *,
        path: str,
        model: str,
        version: str,
        codec: Codec | None,
        runner: Runner,
        middleware: Sequence[Middleware],
        calls: CallTracker,
        errors: ErrorMapper,
        max_message_size: int,
    ) -> None:
        self.path = path
        self.model = model
        self.version = version
        self.streaming = runner.streaming
        self.codec = codec
        self.runner = runner
        self.middleware = tuple(middleware)  # ordered: order_middleware
        n_outer = sum(1 for m in self.middleware if m.outer)
        self._outer = self.middleware[:n_outer]
        self._inner = self.middleware[n_outer:]
        self.calls = calls
        self.errors = errors
        self.max_message_size = max_message_size

    def _context(self, stream: Stream[Any, Any]) -> _Call:
        peer = stream.peer.addr()
        return _Call(
            method=self.path,
            model=self.model,
            version=self.version,
            metadata=stream.metadata,
            peer=f"{peer[0]}:{peer[1]}" if peer else None,
            deadline=stream.deadline.time_remaining() if stream.deadline else None,
            streaming=self.streaming,
        )

    async def handle(
        self, stream: Stream[Any, Any], data: bytes | None = None, codec: Codec | None = None
    ) -> None:
        """Serve one call on ``stream``: grpclib's handler. A protocol whose handler has
        read the request already (to find the model it names) passes its ``data``, and
        a ``codec`` for this call (one that echoes the request's id, say); otherwise
        the request is read here and the pipeline's codec decodes it."""
        codec = codec or self.codec
        if codec is None:
            raise TypeError(f"pipeline {self.path} was built without a codec: pass one to handle()")
        started = time.perf_counter()
        call = self._context(stream) if self.middleware else None  # only middleware read it
        entered = 0  # middleware whose on_request ran: theirs are the on_response due
        in_middleware = True  # until every on_request has run: what raises is middleware[entered - 1]
        headers_sent = False
        error: GRPCError | None = None
        try:
            # middleware in (outer)
            for m in self._outer:
                entered += 1
                await m.on_request(call)  # type: ignore[arg-type]  # not None: there is middleware
            # admission
            with self.calls.admit(stream, self.streaming):
                # middleware in
                for m in self._inner:
                    entered += 1
                    await m.on_request(call)  # type: ignore[arg-type]
                in_middleware = False
                if call is not None:
                    call.phase = _RUNNING
                    if call.initial_metadata:
                        headers_sent = True
                        await stream.send_initial_metadata(metadata=call.initial_metadata)
                if data is None:
                    data = await read_request(stream, self.max_message_size)
                try:
                    # decode; batch or limit, execute, encode
                    await self.runner.respond(stream, codec.decode(data), codec, call)
                except StreamTerminatedError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every model error becomes a status
                    raise self.errors(exc, call or self._context(stream)) from None
        except GRPCError as exc:
            if call is None:
                raise  # grpclib sends the status
            error = exc  # the server's refusal, a middleware's, or the model's mapped error
        except (asyncio.CancelledError, StreamTerminatedError):
            if call is not None:
                # The client went away or its deadline passed: grpclib ends the call, and
                # nobody is listening for an answer.
                expired = stream.deadline is not None and stream.deadline.time_remaining() <= _DEADLINE_SLACK
                call.status = Status.DEADLINE_EXCEEDED if expired else Status.CANCELLED
                await self._respond(call, entered, started)
            raise
        except Exception as exc:
            if call is None:
                raise
            if in_middleware:  # a middleware's exception becomes a status too
                error = self.errors.middleware_error(exc, call, entered - 1)
            else:  # the server's own bug: the client gets UNKNOWN
                _log.error("call failed", method=self.path, exc_info=exc)
                error = GRPCError(Status.UNKNOWN, "Internal Server Error")
                call.message = f"{type(exc).__name__}: {exc}"
        if call is None:
            return
        # middleware out
        if error is None:
            call.status = Status.OK
        else:
            call.status = error.status
            if call.message is None:
                call.message = error.message
        await self._respond(call, entered, started)
        if call.initial_metadata and not headers_sent:
            await stream.send_initial_metadata(metadata=call.initial_metadata)
        if call.trailing_metadata:
            await stream.send_trailing_metadata(
                status=call.status,
                status_message=error.message if error is not None else None,
                status_details=error.details if error is not None else None,
                metadata=call.trailing_metadata,
            )
        elif error is not None:
            raise error  # grpclib sends the trailers

    async def _respond(self, call: _Call, entered: int, started: float) -> None:
        """Every ``on_response`` due, innermost first; then no more metadata may be added."""
        call.elapsed = time.perf_counter() - started
        call.phase = _RUNNING
        for m in reversed(self.middleware[:entered]):
            try:
                await m.on_response(call)
            except Exception:  # noqa: BLE001 - one middleware must not break the others
                _log.exception("middleware on_response failed", middleware=type(m).__name__)
        call.phase = _ANSWERED
