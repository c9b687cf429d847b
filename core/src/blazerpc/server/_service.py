"""``blazerpc.InferenceService``: one grpclib servicer, built from the schema.

The request path of every call, in order: the middleware's ``on_request``, decode the
request bytes, run the model (in a worker thread for sync code), encode the result,
send it, the middleware's ``on_response``. An exception on the way becomes a status
through the app's ``ExceptionMiddleware`` and core's mapping (``_errors``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.server import Stream

if TYPE_CHECKING:
    from ..batching._plan import ModelPlan

from .._model import ModelSpec
from ..batching import BatchEvent, BatchListener
from ..batching._batcher import Batcher
from ..batching._limiter import ConcurrencyLimit
from ..batching._listeners import notify_batch, notify_queue_depth
from ..wire._codec import RequestDecoder, ResponseEncoder
from ..wire._schema import MethodSchema, Schema
from ._calls import CallTracker, read_request
from ._errors import ErrorMapper
from ._executor import make_stream, make_unary
from .middleware import _ANSWERED, _RUNNING, CallContext, Middleware

__all__ = ["BlazeCodec", "InferenceService", "RawMessage"]

_log = structlog.get_logger("blazerpc")


class RawMessage:
    """Marks a handler whose messages are bytes: the servicer decodes and encodes them."""


class BlazeCodec(ProtoCodec):
    """Protobuf for every service, except that ``RawMessage`` handlers get raw bytes.

    Health and reflection keep receiving real messages; only the inference handlers
    take bytes, so decoding errors become ``INVALID_ARGUMENT`` with the reason and
    responses can be written without protobuf's extra copies.
    """

    def encode(self, message: Any, message_type: Any) -> bytes:
        if message_type is RawMessage:
            return message  # type: ignore[no-any-return]
        return super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is RawMessage:
            return data
        return super().decode(data, message_type)


class _Endpoint:
    """One model's handler."""

    def __init__(
        self,
        spec: ModelSpec,
        method: MethodSchema,
        schema: Schema,
        executor: concurrent.futures.Executor,
        plan: ModelPlan,
        batch_listeners: Sequence[BatchListener],
        to_array: Callable[[Any], Any],
        max_message_size: int,
        errors: ErrorMapper,
    ) -> None:
        self.method = method
        self.max_message_size = max_message_size
        self.model = spec.name
        self.version = spec.version
        self.errors = errors
        self.listeners = tuple(batch_listeners)
        self._waiting = 0  # unbatched calls waiting for a slot, for the listeners
        self.decode = RequestDecoder(method, schema.classes[method.request])
        self.encode = ResponseEncoder(method, schema.classes[method.response])
        self.batcher: Batcher | None = None
        self.limit: ConcurrencyLimit | None = None
        n_inputs = len(method.inputs)
        if method.streaming:
            self.iterate = make_stream(spec, n_inputs, executor)
        else:
            self.call = make_unary(spec, n_inputs, executor)
            if plan.policy is not None:
                self.batcher = Batcher(
                    model=spec.name,
                    version=spec.version,
                    inputs=plan.inputs,
                    output_names=[f.name for f in method.outputs],
                    call=self.call,
                    split_result=self.encode.split,
                    policy=plan.policy,
                    config=plan.config,
                    listeners=batch_listeners,
                    prepare_outputs=[to_array if f.wire.tensor is not None else None for f in method.outputs],
                )
            else:
                self.limit = ConcurrencyLimit(
                    spec.name,
                    plan.config.max_concurrency,
                    plan.config.max_queue_size,
                    cancel_with_call=spec.kind == "coroutine",
                )

    def _error(self, exc: Exception, stream: Stream[Any, Any], context: CallContext | None) -> GRPCError:
        return self.errors(exc, context if context is not None else _context(self, stream))

    async def unary(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        assert self.limit is not None
        try:
            args = self.decode(data)
            if self.listeners:
                result = await self._run_observed(args)
            else:
                result = await self.limit.run(self.call, args)
            reply = self.encode(result)
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise self._error(exc, stream, context) from None
        await stream.send_message(reply)
        if context is not None:
            context.messages_sent = 1

    def _queue_changed(self) -> None:
        notify_queue_depth(self.listeners, self.model, self.version, self._waiting)

    async def _run_observed(self, args: list[Any]) -> Any:
        """An unbatched call, reported to the batch listeners as a batch of one row: its
        wait for a slot (the queue depth counts waiting calls) and its model time."""
        queued = time.monotonic()
        waiting = True
        self._waiting += 1
        self._queue_changed()

        def leave_queue() -> None:
            nonlocal waiting
            if waiting:  # once: when the call starts, or when it gives up waiting
                waiting = False
                self._waiting -= 1
                self._queue_changed()

        async def call(call_args: list[Any]) -> Any:
            leave_queue()
            started = time.monotonic()
            failed = True
            try:
                result = await self.call(call_args)
                failed = False
                return result
            finally:
                # Reported when the model is done, even if the client left meanwhile.
                event = BatchEvent(
                    model=self.model,
                    version=self.version,
                    rows=1,
                    requests=1,
                    queue_waits=(started - queued,),
                    duration=time.monotonic() - started,
                    failed=failed,
                )
                notify_batch(self.listeners, event)

        assert self.limit is not None
        try:
            return await self.limit.run(call, args)
        finally:
            leave_queue()

    async def unary_batched(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        assert self.batcher is not None
        timeout = stream.deadline.time_remaining() if stream.deadline else None
        try:
            reply = self.encode.fields(await self.batcher.submit(self.decode(data), timeout))
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise self._error(exc, stream, context) from None
        await stream.send_message(reply)
        if context is not None:
            context.messages_sent = 1

    async def server_stream(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        try:
            items = self.iterate(self.decode(data))
            try:
                async for item in items:
                    await stream.send_message(self.encode(item))
                    if context is not None:
                        context.messages_sent += 1
            finally:
                await items.aclose()  # the model's own cleanup, however the stream ended
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise self._error(exc, stream, context) from None

    def handler(self, middleware: Sequence[Middleware], calls: CallTracker) -> Handler:
        if self.method.streaming:
            inner = self.server_stream
        else:
            inner = self.unary if self.batcher is None else self.unary_batched
        if middleware:
            func = _with_middleware(self, inner, tuple(middleware), calls)
        else:
            func = _admitted(inner, calls, streaming=self.method.streaming)
        cardinality = Cardinality.UNARY_STREAM if self.method.streaming else Cardinality.UNARY_UNARY
        return Handler(func, cardinality, RawMessage, RawMessage)


def _context(endpoint: _Endpoint, stream: Stream[Any, Any]) -> CallContext:
    """A fresh context for one call of ``endpoint``."""
    peer = stream.peer.addr()
    return CallContext(
        method=endpoint.method.path,
        model=endpoint.model,
        version=endpoint.version,
        metadata=stream.metadata,
        peer=f"{peer[0]}:{peer[1]}" if peer else None,
        deadline=stream.deadline.time_remaining() if stream.deadline else None,
        streaming=endpoint.method.streaming,
    )


def order_middleware(middleware: Sequence[Middleware]) -> tuple[Middleware, ...]:
    """Outer middleware first (by ``order``, then class name), then the rest as given.

    ``middleware`` comes as the app's, then plugins' sorted by ``order`` and class name;
    an outer one (a log, metrics) must wrap the app's own too, to see calls they reject.
    """
    outer = sorted((m for m in middleware if m.outer), key=lambda m: (m.order, type(m).__qualname__))
    return (*outer, *(m for m in middleware if not m.outer))


_Inner = Callable[[Stream[Any, Any], CallContext | None], Awaitable[None]]

#: A call the client ends this close to its deadline ended because of it. The client's
#: clock starts before the call reaches the server (its connection set up, its headers
#: read), so its own timeout and reset can arrive a little before the server's copy of
#: the deadline has passed.
_DEADLINE_SLACK = 0.1


def _admitted(
    inner: _Inner, calls: CallTracker, *, streaming: bool
) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    """``inner`` under the server's admission and default timeout, for an app with no
    middleware at all: grpclib calls ``calls.run(inner, streaming, stream)``."""
    return functools.partial(calls.run, inner, streaming)


def _with_middleware(
    endpoint: _Endpoint, inner: _Inner, middleware: tuple[Middleware, ...], calls: CallTracker
) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    """``inner`` inside the middleware chain, with a fresh context per call.

    The chain: the outer middleware's ``on_request``, the server's admission (limits,
    draining) and default timeout, the other middleware's ``on_request``, the response
    headers (with the initial metadata, if any), the call, then every ``on_response`` in
    reverse, with the status the client gets, and then the trailers (with the trailing
    metadata). ``middleware`` is ordered: outer ones first (``order_middleware``).
    """
    n_outer = sum(1 for m in middleware if m.outer)
    outer, rest = middleware[:n_outer], middleware[n_outer:]  # sliced once, not per call
    streaming = endpoint.method.streaming

    async def admitted(stream: Stream[Any, Any], context: CallContext) -> None:
        for m in rest:
            context._entered += 1
            await m.on_request(context)
        context._phase = _RUNNING
        if context.initial_metadata:
            context._headers_sent = True
            await stream.send_initial_metadata(metadata=context.initial_metadata)
        await inner(stream, context)

    async def handle(stream: Stream[Any, Any]) -> None:
        started = time.perf_counter()
        context = _context(endpoint, stream)
        error: GRPCError | None = None
        try:
            for m in outer:
                context._entered += 1
                await m.on_request(context)
            await calls.run(admitted, streaming, stream, context)
        except GRPCError as exc:
            error = exc
        except (asyncio.CancelledError, StreamTerminatedError):
            # The client went away or its deadline passed: grpclib ends the call, and
            # nobody is listening for an answer.
            expired = stream.deadline is not None and stream.deadline.time_remaining() <= _DEADLINE_SLACK
            context.status = Status.DEADLINE_EXCEEDED if expired else Status.CANCELLED
            await _respond(middleware, context, started)
            raise
        except Exception as exc:  # noqa: BLE001 - a middleware's bug: the client gets UNKNOWN
            _log.error("call failed", method=endpoint.method.path, exc_info=exc)
            error = GRPCError(Status.UNKNOWN, "Internal Server Error")
            context.message = f"{type(exc).__name__}: {exc}"
        if error is None:
            context.status = Status.OK
        else:
            context.status = error.status
            if context.message is None:
                context.message = error.message
        await _respond(middleware, context, started)
        if context.initial_metadata and not context._headers_sent:
            await stream.send_initial_metadata(metadata=context.initial_metadata)
        if context.trailing_metadata:
            await stream.send_trailing_metadata(
                status=context.status,
                status_message=error.message if error is not None else None,
                status_details=error.details if error is not None else None,
                metadata=context.trailing_metadata,
            )
        elif error is not None:
            raise error  # grpclib sends the trailers

    return handle


async def _respond(middleware: tuple[Middleware, ...], context: CallContext, started: float) -> None:
    """Every ``on_response`` due, innermost first; then no more metadata may be added."""
    context.elapsed = time.perf_counter() - started
    context._phase = _RUNNING
    for i in range(context._entered - 1, -1, -1):
        try:
            await middleware[i].on_response(context)
        except Exception:  # noqa: BLE001 - one middleware must not break the others
            _log.exception("middleware on_response failed", middleware=type(middleware[i]).__name__)
    context._phase = _ANSWERED


class MethodTable(dict[str, Handler]):
    """grpclib's method table, answering unknown paths with a proper UNIMPLEMENTED.

    grpclib itself answers an unknown method with bare headers and no content-type,
    which its own client reports as UNKNOWN "Missing content-type header"; going
    through a handler gives every client a normal gRPC status and a useful message.
    """

    def __init__(self, handlers: dict[str, Handler]) -> None:
        super().__init__(handlers)
        self._unknown = Handler(self._unimplemented, Cardinality.UNARY_UNARY, RawMessage, RawMessage)

    def get(self, path: str, default: Any = None) -> Any:
        handler = super().get(path)
        return self._unknown if handler is None else handler

    async def _unimplemented(self, stream: Stream[Any, Any]) -> None:
        path = getattr(stream, "_method_name", "?")
        models = sorted(p.rsplit("/", 1)[-1] for p in self if p.startswith("/blazerpc.InferenceService/"))
        raise GRPCError(
            Status.UNIMPLEMENTED,
            f"unknown method {path}; blazerpc.InferenceService has: {', '.join(models)}",
        )


class InferenceService:
    """The servicer grpclib serves: ``/blazerpc.InferenceService/Predict<Name>`` handlers."""

    def __init__(
        self,
        models: Sequence[tuple[ModelSpec, MethodSchema]],
        schema: Schema,
        executor: concurrent.futures.Executor,
        plans: Sequence[ModelPlan],
        to_array: Callable[[Any], Any],
        calls: CallTracker,
        middleware: Sequence[Middleware] = (),
        batch_listeners: Sequence[BatchListener] = (),
    ) -> None:
        size = calls.limits.max_message_size
        middleware = order_middleware(middleware)
        errors = ErrorMapper(middleware)
        endpoints = [
            _Endpoint(spec, method, schema, executor, plan, batch_listeners, to_array, size, errors)
            for (spec, method), plan in zip(models, plans, strict=True)
        ]
        self.middleware = middleware
        self.batchers = [e.batcher for e in endpoints if e.batcher is not None]
        self._mapping = {e.method.path: e.handler(middleware, calls) for e in endpoints}

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping
