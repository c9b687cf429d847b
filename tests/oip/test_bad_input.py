"""Every bad V2 request against a real ``blaze serve``: its status and its message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from v2_client import M, call, channel, infer, output, raw_bytes, request

from blazerpc.testing import ServeProcess

X = np.arange(6, dtype=np.float32).reshape(2, 3)
X_RAW = ("x", "FP32", [2, 3], X.tobytes())
FACTOR_RAW = ("factor", "FP64", [1], np.array([2.0]).tobytes())


@pytest.fixture
async def ch(oip_server: ServeProcess) -> AsyncIterator[Channel]:
    c = channel(oip_server.address)
    yield c
    c.close()


async def refused(ch: Channel, req: Any, method: str = "ModelInfer") -> tuple[Status, str]:
    with pytest.raises(GRPCError) as caught:
        await call(ch, method, req, M.ModelInferResponse if method == "ModelInfer" else None)
    return caught.value.status, caught.value.message or ""


async def test_typed_contents_are_accepted(ch: Channel) -> None:
    r = M.ModelInferRequest(model_name="scale", id="typed")
    r.inputs.add(name="x", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend(X.ravel().tolist())
    r.inputs.add(name="factor", datatype="FP64", shape=[1]).contents.fp64_contents.append(0.5)
    response = await infer(ch, r)
    assert response.id == "typed"
    assert response.model_name == "scale"
    assert response.model_version == "1"
    assert output(response, "result").tolist() == (X * 0.5).tolist()


BAD = {
    "unknown model": (
        request("nope", []),
        Status.NOT_FOUND,
        "unknown model 'nope'; this server has: calls, count, half, rows, scale, shout, tokens",
    ),
    "unknown version": (
        request("scale", [X_RAW, FACTOR_RAW], model_version="9"),
        Status.NOT_FOUND,
        "model 'scale' has no version '9'; its versions: 1",
    ),
    "unknown input": (
        request("scale", [X_RAW, FACTOR_RAW, ("y", "FP32", [1], b"\0\0\0\0")]),
        Status.INVALID_ARGUMENT,
        "model 'scale' has no input 'y'; its inputs: x, factor",
    ),
    "missing input": (
        request("scale", [X_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'factor' (FP64 [1]) is required but was not sent",
    ),
    "input twice": (
        request("scale", [X_RAW, X_RAW, FACTOR_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'x' is given twice",
    ),
    "wrong datatype": (
        request("scale", [("x", "INT32", [2, 3], X.astype(np.int32).tobytes()), FACTOR_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'x': datatype INT32 does not match the model's FP32",
    ),
    "wrong shape": (
        request("scale", [("x", "FP32", [3, 2], X.tobytes()), FACTOR_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'x': expected shape float32[2, 3], got shape [3, 2]",
    ),
    "wrong byte count": (
        request("scale", [("x", "FP32", [2, 3], X.tobytes()[:20]), FACTOR_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'x': shape [2, 3] of float32 needs 24 bytes of data, got 20",
    ),
    "scalar of two values": (
        request("scale", [X_RAW, ("factor", "FP64", [2], np.zeros(2).tobytes())]),
        Status.INVALID_ARGUMENT,
        "input 'factor': shape [2] is not [1]; the model takes one value (FP64 [1])",
    ),
    "negative dimension": (
        request("scale", [("x", "FP32", [-2, 3], X.tobytes()), FACTOR_RAW]),
        Status.INVALID_ARGUMENT,
        "input 'x': shape [-2, 3] has a negative dimension",
    ),
    "raw entries not one per input": (
        M.ModelInferRequest(
            model_name="scale",
            inputs=[
                {"name": "x", "datatype": "FP32", "shape": [2, 3]},
                {"name": "factor", "datatype": "FP64", "shape": [1]},
            ],
            raw_input_contents=[X.tobytes()],
        ),
        Status.INVALID_ARGUMENT,
        "the request has 2 inputs but 1 raw_input_contents; send one raw entry per input, in order, "
        "or typed contents for every input",
    ),
    "typed and raw": (
        M.ModelInferRequest(
            model_name="scale",
            inputs=[
                {"name": "x", "datatype": "FP32", "shape": [2, 3], "contents": {"fp32_contents": [0.0] * 6}},
                {"name": "factor", "datatype": "FP64", "shape": [1]},
            ],
            raw_input_contents=[X.tobytes(), np.zeros(1).tobytes()],
        ),
        Status.INVALID_ARGUMENT,
        "input 'x': has both typed contents and raw_input_contents; send one of them",
    ),
    "typed count": (
        M.ModelInferRequest(
            model_name="scale",
            inputs=[
                {"name": "x", "datatype": "FP32", "shape": [2, 3], "contents": {"fp32_contents": [0.0] * 5}},
                {"name": "factor", "datatype": "FP64", "shape": [1], "contents": {"fp64_contents": [1.0]}},
            ],
        ),
        Status.INVALID_ARGUMENT,
        "input 'x': the shape holds 6 elements but contents.fp32_contents has 5",
    ),
    "typed FP16": (
        M.ModelInferRequest(
            model_name="half",
            inputs=[{"name": "x", "datatype": "FP16", "shape": [1], "contents": {"fp32_contents": [1.0]}}],
        ),
        Status.INVALID_ARGUMENT,
        "input 'x': FP16 data travels only in raw_input_contents (the protocol has no typed contents for it)",
    ),
    "BYTES length past the end": (
        request(
            "shout", [("text", "BYTES", [1], b"\x09\0\0\0abc"), ("blob", "BYTES", [1], raw_bytes([b"z"]))]
        ),
        Status.INVALID_ARGUMENT,
        "input 'text': raw BYTES element 0 says 9 bytes but only 3 remain",
    ),
    "BYTES count": (
        request(
            "shout", [("text", "BYTES", [2], raw_bytes([b"a"])), ("blob", "BYTES", [1], raw_bytes([b"z"]))]
        ),
        Status.INVALID_ARGUMENT,
        "input 'text': the shape holds 2 elements but the raw BYTES data has 1",
    ),
    "str not UTF-8": (
        request(
            "shout", [("text", "BYTES", [1], raw_bytes([b"\xff"])), ("blob", "BYTES", [1], raw_bytes([b"z"]))]
        ),
        Status.INVALID_ARGUMENT,
        "input 'text': element is not UTF-8 text: 'utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte",
    ),
    "list not 1-d": (
        request(
            "count",
            [
                ("values", "INT64", [1, 1], np.array([[1]], dtype=np.int64).tobytes()),
                ("flags", "BOOL", [1], b"\x01"),
            ],
        ),
        Status.INVALID_ARGUMENT,
        "input 'values': shape [1, 1] is not 1-d; the model takes a list (INT64 [-1])",
    ),
    "BOOL byte": (
        request("count", [("values", "INT64", [0], b""), ("flags", "BOOL", [1], b"\x07")]),
        Status.INVALID_ARGUMENT,
        "input 'flags': BOOL data holds a byte other than 0 and 1",
    ),
    "unknown output": (
        request("scale", [X_RAW, FACTOR_RAW], outputs=[{"name": "nope"}]),
        Status.INVALID_ARGUMENT,
        "model 'scale' has no output 'nope'; its outputs: result",
    ),
    "streaming model": (
        request("tokens", []),
        Status.INVALID_ARGUMENT,
        "model 'tokens' streams its responses: call inference.GRPCInferenceService/ModelStreamInfer",
    ),
    "timeout of the wrong type": (
        request("scale", [X_RAW, FACTOR_RAW], parameters={"timeout": {"string_param": "soon"}}),
        Status.INVALID_ARGUMENT,
        "parameter 'timeout' must be an int64 or uint64, got string_param",
    ),
    "negative priority": (
        request("scale", [X_RAW, FACTOR_RAW], parameters={"priority": {"int64_param": -1}}),
        Status.INVALID_ARGUMENT,
        "parameter 'priority' must be >= 0, got -1",
    ),
    "not a message": (
        b"\xff\xff\xff",
        Status.INVALID_ARGUMENT,
        "request is not a valid inference.ModelInferRequest: Error parsing message with type "
        "'inference.ModelInferRequest': Wire format was corrupt",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_request(ch: Channel, case: str) -> None:
    req, status, message = BAD[case]
    assert await refused(ch, req) == (status, message)


async def test_timeout_parameter_ends_the_call(ch: Channel) -> None:
    # `rows` is batched (a 20 ms window) and sleeps 10 ms: 1 µs passes first.
    req = request("rows", [("x", "FP32", [1, 1], b"\0\0\0\0")], parameters={"timeout": {"int64_param": 1}})
    assert await refused(ch, req) == (
        Status.DEADLINE_EXCEEDED,
        "the request's timeout parameter (1 µs) passed before the call was answered",
    )


async def test_metadata_of_an_unknown_model(ch: Channel) -> None:
    assert await refused(ch, M.ModelMetadataRequest(name="nope"), "ModelMetadata") == (
        Status.NOT_FOUND,
        "unknown model 'nope'; this server has: calls, count, half, rows, scale, shout, tokens",
    )


SERVED = (
    "ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer, ModelStreamInfer, "
    "ModelConfig, ModelStatistics, RepositoryIndex"
)


async def test_a_triton_method_not_served_names_what_is(ch: Channel) -> None:
    with pytest.raises(GRPCError) as caught:
        await call(ch, "RepositoryModelLoad", M.ServerLiveRequest(), M.ServerLiveResponse)
    assert caught.value.status == Status.UNIMPLEMENTED
    assert caught.value.message == (
        "inference.GRPCInferenceService/RepositoryModelLoad is not implemented by this server; "
        f"it serves: {SERVED}"
    )


async def test_an_unknown_method_of_the_service_names_its_methods(ch: Channel) -> None:
    with pytest.raises(GRPCError) as caught:
        await call(ch, "Frobnicate", M.ServerLiveRequest(), M.ServerLiveResponse)
    assert caught.value.status == Status.UNIMPLEMENTED
    message = caught.value.message or ""
    assert message.startswith(
        "unknown method /inference.GRPCInferenceService/Frobnicate; inference.GRPCInferenceService has: "
    )
    assert "ModelInfer" in message
    assert "PredictScale" not in message


@pytest.mark.parametrize("method", ["ModelReady", "ModelMetadata", "ModelConfig", "ModelStatistics"])
async def test_a_model_call_without_a_request_message_is_invalid_argument(ch: Channel, method: str) -> None:
    from grpclib.const import Cardinality

    request_type = getattr(M, f"{method}Request")
    # A client-streaming call, which grpclib lets end with no message.
    stream = ch.request(f"/inference.GRPCInferenceService/{method}", Cardinality.STREAM_UNARY,
                        request_type, getattr(M, f"{method}Response"), timeout=10)  # fmt: skip
    async with stream:
        await stream.send_request(end=True)  # headers only: no message
        with pytest.raises(GRPCError) as caught:
            await stream.recv_message()
    assert (caught.value.status, caught.value.message) == (
        Status.INVALID_ARGUMENT,
        "the call carried no request message",
    )
