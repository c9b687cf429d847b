"""``blazerpc.InferenceService``: one grpclib servicer, built from the schema.

The request path of every call, in order: decode the request bytes, run the model
(in a worker thread for sync code), encode the result, send it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

if TYPE_CHECKING:
    from ..batching._plan import ModelPlan

from .._model import ModelSpec
from ..batching import BatchListener
from ..batching._batcher import Batcher
from ..batching._limiter import ConcurrencyLimit
from ..wire._codec import RequestDecoder, ResponseEncoder
from ..wire._schema import MethodSchema, Schema
from ._calls import CallTracker, read_request
from ._errors import to_grpc_error
from ._executor import make_stream, make_unary
from .middleware import CallContext, Middleware

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
    ) -> None:
        self.method = method
        self.max_message_size = max_message_size
        self.model = spec.name
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

    async def unary(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        assert self.limit is not None
        try:
            reply = self.encode(await self.limit.run(self.call, self.decode(data)))
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise to_grpc_error(exc, self.model) from None
        await stream.send_message(reply)
        if context is not None:
            context.messages_sent = 1

    async def unary_batched(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        assert self.batcher is not None
        timeout = stream.deadline.time_remaining() if stream.deadline else None
        try:
            reply = self.encode.fields(await self.batcher.submit(self.decode(data), timeout))
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise to_grpc_error(exc, self.model) from None
        await stream.send_message(reply)
        if context is not None:
            context.messages_sent = 1

    async def server_stream(self, stream: Stream[Any, Any], context: CallContext | None = None) -> None:
        data = await read_request(stream, self.max_message_size)
        try:
            async for item in self.iterate(self.decode(data)):
                await stream.send_message(self.encode(item))
                if context is not None:
                    context.messages_sent += 1
        except GRPCError:
            raise
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise to_grpc_error(exc, self.model) from None

    def handler(self, middleware: Sequence[Middleware], calls: CallTracker) -> Handler:
        if self.method.streaming:
            inner = self.server_stream
        else:
            inner = self.unary if self.batcher is None else self.unary_batched
        func = _with_middleware(self, inner, tuple(middleware)) if middleware else inner
        func = calls.wrap(func, streaming=self.method.streaming)
        cardinality = Cardinality.UNARY_STREAM if self.method.streaming else Cardinality.UNARY_UNARY
        return Handler(func, cardinality, RawMessage, RawMessage)


def _with_middleware(
    endpoint: _Endpoint,
    inner: Callable[[Stream[Any, Any], CallContext], Awaitable[None]],
    middleware: tuple[Middleware, ...],
) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    """``inner`` wrapped in the middleware chain, with a fresh context per call."""
    path, model, version = endpoint.method.path, endpoint.model, endpoint.method.version

    async def handle(stream: Stream[Any, Any]) -> None:
        started = time.perf_counter()
        peer = stream.peer.addr()
        context = CallContext(
            method=path,
            model=model,
            version=version,
            metadata=stream.metadata,
            peer=f"{peer[0]}:{peer[1]}" if peer else None,
            deadline=stream.deadline.time_remaining() if stream.deadline else None,
        )
        entered: list[Middleware] = []
        try:
            for m in middleware:
                entered.append(m)
                await m.on_request(context)
            await inner(stream, context)
            context.status = Status.OK
        except GRPCError as exc:
            context.status, context.message = exc.status, exc.message
            raise
        except asyncio.CancelledError:
            expired = stream.deadline is not None and stream.deadline.time_remaining() <= 0
            context.status = Status.DEADLINE_EXCEEDED if expired else Status.CANCELLED
            raise
        except Exception as exc:
            context.status, context.message = Status.UNKNOWN, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            context.elapsed = time.perf_counter() - started
            for m in reversed(entered):
                try:
                    await m.on_response(context)
                except Exception:  # noqa: BLE001 - one middleware must not break the others
                    _log.exception("middleware on_response failed", middleware=type(m).__name__)

    return handle


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
        endpoints = [
            _Endpoint(spec, method, schema, executor, plan, batch_listeners, to_array, size)
            for (spec, method), plan in zip(models, plans, strict=True)
        ]
        self.batchers = [e.batcher for e in endpoints if e.batcher is not None]
        self._mapping = {e.method.path: e.handler(middleware, calls) for e in endpoints}

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping
