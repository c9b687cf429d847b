"""``blazerpc.InferenceService``: one grpclib servicer, built from the schema.

Each model's method is a :class:`~._pipeline.Pipeline` (the path of a call, top to
bottom) with this protocol's codec (:class:`MessageCodec`: the generated protobuf
messages) and the model's runner (batched, unbatched or streaming), built once here.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

if TYPE_CHECKING:
    from ..batching._plan import ModelPlan

from .._grpclib import method_name
from .._model import ModelSpec
from ..batching import BatchListener
from ..batching._batcher import Batcher
from ..wire._codec import RequestDecoder, ResponseEncoder, split_result
from ..wire._schema import MethodSchema, Schema
from ._calls import CallTracker
from ._errors import ErrorMapper
from ._executor import make_stream, make_unary
from ._limit import ConcurrencyLimit, Limit, NoLimit, ObservedLimit
from ._pipeline import BatchedRunner, Pipeline, Runner, StreamRunner, UnaryRunner
from .middleware import Middleware

__all__ = ["BlazeCodec", "InferenceService", "MessageCodec", "RawMessage", "make_runner"]


class RawMessage:
    """The message type of a handler whose messages are bytes (public as
    ``blazerpc.server.RawMessage``): grpclib hands it the request's bytes and sends the
    bytes it sends (decode and encode are the handler's). Handlers with real message
    classes (from the pool of ``ServiceHost.schema``) work as usual."""


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


class MessageCodec:
    """``blazerpc.InferenceService``'s ends of a pipeline: the model's generated request
    and response messages."""

    def __init__(self, method: MethodSchema, schema: Schema) -> None:
        self.decode = RequestDecoder(method, schema.classes[method.request])
        encoder = ResponseEncoder(method, schema.classes[method.response])
        self.encode = encoder
        self.encode_fields = encoder.fields


def make_runner(
    spec: ModelSpec,
    method: MethodSchema,
    plan: ModelPlan,
    executor: concurrent.futures.Executor,
    batch_listeners: Sequence[BatchListener],
    to_array: Callable[[Any], Any],
) -> Runner:
    """The model's runner, as its plan says: streaming, batched, or unary under its limit."""
    n_inputs = len(method.inputs)
    if method.streaming:
        return StreamRunner(make_stream(spec, n_inputs, executor))
    execute = make_unary(spec, n_inputs, executor)
    if plan.policy is not None:
        return BatchedRunner(
            Batcher(
                model=spec.name,
                version=spec.version,
                inputs=plan.inputs,
                output_names=[f.name for f in method.outputs],
                call=execute,
                split_result=functools.partial(split_result, method),
                policy=plan.policy,
                config=plan.config,
                listeners=batch_listeners,
                prepare_outputs=[to_array if f.wire.tensor is not None else None for f in method.outputs],
            )
        )
    limit: Limit = NoLimit()  # the rule: blazerpc.batching
    if plan.limit is not None:
        limit = ConcurrencyLimit(
            spec.name,
            plan.limit,
            plan.config.max_queue_size,
            cancel_with_call=spec.kind == "coroutine",
        )
    if batch_listeners:
        limit = ObservedLimit(limit, batch_listeners, spec.name, spec.version)
    return UnaryRunner(execute, limit)


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
        path = method_name(stream)
        service = path.lstrip("/").split("/", 1)[0]
        if not any(p.startswith(f"/{service}/") for p in self):
            service = "blazerpc.InferenceService"
        methods = sorted(p.rsplit("/", 1)[-1] for p in self if p.startswith(f"/{service}/"))
        raise GRPCError(Status.UNIMPLEMENTED, f"unknown method {path}; {service} has: {', '.join(methods)}")


class InferenceService:
    """The servicer grpclib serves: ``/blazerpc.InferenceService/Predict<Name>`` handlers.

    ``middleware`` is in the chain's order (``order_middleware``).
    """

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
        self.errors = errors = ErrorMapper(middleware)
        self.runners: list[Runner] = []
        self.pipelines: list[Pipeline] = []
        for (spec, method), plan in zip(models, plans, strict=True):
            runner = make_runner(spec, method, plan, executor, batch_listeners, to_array)
            self.runners.append(runner)
            self.pipelines.append(
                Pipeline(
                    path=method.path,
                    model=spec.name,
                    version=spec.version,
                    codec=MessageCodec(method, schema),
                    runner=runner,
                    middleware=middleware,
                    calls=calls,
                    errors=errors,
                    max_message_size=calls.limits.max_message_size,
                )
            )
        self.batchers = [r.batcher for r in self.runners if isinstance(r, BatchedRunner)]
        self._mapping = {
            p.path: Handler(
                p.handle,
                Cardinality.UNARY_STREAM if p.streaming else Cardinality.UNARY_UNARY,
                RawMessage,
                RawMessage,
            )
            for p in self.pipelines
        }

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping
