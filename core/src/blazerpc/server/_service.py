"""``blazerpc.InferenceService``: one grpclib servicer, built from the schema.

The request path of every call, in order: decode the request bytes, run the model
(in a worker thread for sync code), encode the result, send it.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from .._model import ModelSpec
from ..wire._codec import RequestDecoder, ResponseEncoder
from ..wire._schema import MethodSchema, Schema
from ._errors import to_grpc_error
from ._executor import make_stream, make_unary

__all__ = ["BlazeCodec", "InferenceService", "RawMessage"]


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


async def _recv(stream: Stream[Any, Any]) -> bytes:
    data = await stream.recv_message()
    if data is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "the call carried no request message")
    return data  # type: ignore[no-any-return]


class _Endpoint:
    """One model's handler."""

    def __init__(
        self, spec: ModelSpec, method: MethodSchema, schema: Schema, executor: concurrent.futures.Executor
    ) -> None:
        self.method = method
        self.model = spec.name
        self.decode = RequestDecoder(method, schema.classes[method.request])
        self.encode = ResponseEncoder(method, schema.classes[method.response])
        n_inputs = len(method.inputs)
        if method.streaming:
            self.iterate = make_stream(spec, n_inputs, executor)
        else:
            self.call = make_unary(spec, n_inputs, executor)

    async def unary(self, stream: Stream[Any, Any]) -> None:
        data = await _recv(stream)
        try:
            reply = self.encode(await self.call(self.decode(data)))
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise to_grpc_error(exc, self.model) from None
        await stream.send_message(reply)

    async def server_stream(self, stream: Stream[Any, Any]) -> None:
        data = await _recv(stream)
        try:
            async for item in self.iterate(self.decode(data)):
                await stream.send_message(self.encode(item))
        except GRPCError:
            raise
        except Exception as exc:  # noqa: BLE001 - every model error becomes a status
            raise to_grpc_error(exc, self.model) from None

    def handler(self) -> Handler:
        if self.method.streaming:
            return Handler(self.server_stream, Cardinality.UNARY_STREAM, RawMessage, RawMessage)
        return Handler(self.unary, Cardinality.UNARY_UNARY, RawMessage, RawMessage)


class InferenceService:
    """The servicer grpclib serves: ``/blazerpc.InferenceService/Predict<Name>`` handlers."""

    def __init__(
        self,
        models: Sequence[tuple[ModelSpec, MethodSchema]],
        schema: Schema,
        executor: concurrent.futures.Executor,
    ) -> None:
        self._mapping = {
            method.path: _Endpoint(spec, method, schema, executor).handler() for spec, method in models
        }

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping
