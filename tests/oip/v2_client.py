"""A grpclib client of the V2 protocol, with the plugin's own message classes (in a pool
of their own, as a client would have them)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.encoding.proto import ProtoCodec

from blazerpc_oip import Messages

M = Messages()
SERVICE = "/inference.GRPCInferenceService/"


class BytesCodec(ProtoCodec):
    """Protobuf, except that ``bytes`` go out as they are (malformed requests)."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return super().encode(message, message_type)


def channel(address: str) -> Channel:
    host, port = address.rsplit(":", 1)
    return Channel(host, int(port), codec=BytesCodec())


async def call(ch: Channel, method: str, request: Any, reply: Any = None, timeout: float = 10) -> Any:
    reply = reply or getattr(M, f"{method}Response")
    request_type = type(request) if not isinstance(request, bytes) else M.ModelInferRequest
    return await UnaryUnaryMethod(ch, SERVICE + method, request_type, reply)(request, timeout=timeout)


async def infer(ch: Channel, request: Any, timeout: float = 10) -> Any:
    return await call(ch, "ModelInfer", request, M.ModelInferResponse, timeout)


def request(model: str, inputs: Sequence[tuple[str, str, Sequence[int], bytes]], **fields: Any) -> Any:
    """A ModelInferRequest with raw inputs ``(name, datatype, shape, raw)``."""
    r = M.ModelInferRequest(model_name=model, **fields)
    for name, datatype, shape, raw in inputs:
        r.inputs.add(name=name, datatype=datatype, shape=list(shape))
        r.raw_input_contents.append(raw)
    return r


def raw_bytes(items: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def output(response: Any, name: str) -> np.ndarray:
    """An output of a response, from its raw contents."""
    from blazerpc_oip._datatypes import NUMPY

    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if tensor.name == name:
            return np.frombuffer(raw, dtype=NUMPY[tensor.datatype]).reshape(list(tensor.shape))
    raise KeyError(name)
