"""Helpers of the bad input tests (test_bad_requests.py, test_model_failures.py): the
status and message a call or raw bytes get, tensors built by hand, one good call. The
errors_app.py server (`errors_server`, `errors`) is in conftest.py."""

from __future__ import annotations

from typing import Any

import numpy as np
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import AppCaller

SERVICE = "/blazerpc.InferenceService"


async def failure(client: AppCaller, model: str, **fields: Any) -> tuple[Status, str]:
    """Call ``model``; the status and message it fails with (fails the test if it succeeds)."""
    try:
        reply = await client.call(model, **fields)
    except GRPCError as exc:
        return exc.status, exc.message or ""
    raise AssertionError(f"{model} succeeded: {reply}")


async def raw_failure(client: AppCaller, path: str, payload: bytes) -> tuple[Status, str]:
    status, message, replies = await client.raw(path, payload)
    assert replies == []
    return status, message or ""


def tensor(client: AppCaller, shape: list[int], dtype: str, data: bytes) -> Any:
    return client.schema.classes["TensorProto"](shape=shape, dtype=dtype, data=data)


def f32(*shape: int) -> bytes:
    return np.arange(int(np.prod(shape)), dtype="<f4").tobytes()


async def good_scale_call(client: AppCaller) -> None:
    x = np.array([[1, 2, 3], [-4, 0.5, 6]], dtype="<f4")
    reply = await client.call("scale", x=tensor(client, [2, 3], "float32", x.tobytes()))
    assert list(reply.result.shape) == [2, 3]
    assert reply.result.dtype == "float32"
    assert np.frombuffer(reply.result.data, dtype="<f4").tolist() == (x * 2).ravel().tolist()
