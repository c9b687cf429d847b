"""Helpers of the type round-trip tests (test_scalar_types, test_tensor_types,
test_signatures): calls and tensors built from the app's own message classes, arrays
decoded from replies, the served proto through reflection. The `types` and `future`
fixtures (types_app.py and future_app.py served) are in conftest.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.client import Channel
from grpclib.reflection.v1.reflection_grpc import ServerReflectionStub
from grpclib.reflection.v1.reflection_pb2 import ServerReflectionRequest
from support import AppCaller

from blazerpc.testing import ServeProcess


async def call(client: AppCaller, model: str, **fields: Any) -> Any:
    return await client.call(model, **fields)


def tensor(client: AppCaller, array: np.ndarray) -> Any:
    """A TensorProto for ``array``: its shape, dtype name and little-endian C-order bytes."""
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return client.schema.classes["TensorProto"](
        shape=list(array.shape), dtype=array.dtype.name, data=little.tobytes(order="C")
    )


def array_of(proto: Any) -> np.ndarray:
    """The array a reply's TensorProto holds."""
    dtype = np.dtype(proto.dtype).newbyteorder("<")
    return np.frombuffer(proto.data, dtype=dtype).reshape(tuple(proto.shape))


def assert_same_array(got: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype, same shape, same bytes (C order, little-endian)."""
    assert got.dtype.name == expected.dtype.name
    assert got.shape == expected.shape
    little = expected.astype(expected.dtype.newbyteorder("<"), copy=False)
    assert got.tobytes() == little.tobytes(order="C")


async def served_file(proc: ServeProcess) -> FileDescriptorProto:
    """The blaze_service.proto the server describes through reflection."""

    channel = Channel(proc.host, proc.port)
    try:
        async with ServerReflectionStub(channel).ServerReflectionInfo.open(timeout=10) as stream:
            request = ServerReflectionRequest(file_containing_symbol="blazerpc.InferenceService")
            await stream.send_message(request, end=True)
            reply = await stream.recv_message()
            assert reply is not None
            descriptors = list(reply.file_descriptor_response.file_descriptor_proto)
    finally:
        channel.close()
    for data in descriptors:
        file = FileDescriptorProto.FromString(data)
        if file.name == "blaze_service.proto":
            return file
    raise AssertionError("reflection did not return blaze_service.proto")


async def served_fields(proc: ServeProcess, message: str) -> list[tuple[str, int]]:
    """(name, number) of each field of ``message`` as the running server defines it."""
    for msg in (await served_file(proc)).message_type:
        if msg.name == message:
            return [(f.name, f.number) for f in msg.field]
    raise AssertionError(f"the server defines no message {message}")


def sample(dtype_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic values of ``dtype_name`` covering its extremes where the size allows."""
    dtype = np.dtype(dtype_name)
    count = math.prod(shape)
    rng = np.random.default_rng(count * 31 + len(dtype_name))
    if dtype.kind == "b":
        flat = rng.integers(0, 2, size=count).astype(bool)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        flat = rng.integers(info.min, info.max, size=count, dtype=dtype, endpoint=True)
        edges = np.array([info.min, info.max, 0, 1], dtype=dtype)[:count]
        flat[: len(edges)] = edges
    else:
        real = np.finfo(dtype).dtype if dtype.kind == "c" else dtype
        flat = (rng.standard_normal(count) * 1000).astype(dtype)
        edges = np.array([np.finfo(real).max / 4, -0.0, np.finfo(real).tiny, np.inf, -1.5], dtype=dtype)
        if dtype.kind == "c":
            flat = flat + (rng.standard_normal(count) * 1j).astype(dtype)
            edges = edges * np.array(1 - 2j, dtype=dtype)
        flat[: min(count, len(edges))] = edges[:count]
    return flat.reshape(shape)
