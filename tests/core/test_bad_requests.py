"""Bad requests against a real `blaze serve` process (errors_app.py).

Each case checks the gRPC status and that the message names the field (where there is
one), what was expected and what came. What each kind of bad request gets:

- bytes that are not a protobuf message, another model's request that does not fit,
  a missing required tensor: ``INVALID_ARGUMENT``;
- a tensor whose dtype, shape, rank or data length disagrees with its declaration, a
  negative or absurd dimension (refused before anything is allocated), a scalar out of
  its type's range: ``INVALID_ARGUMENT``;
- an unknown method (grpclib, grpcio and grpcurl clients): ``UNIMPLEMENTED``.

Elsewhere: an oversized message (``RESOURCE_EXHAUSTED``, before it is read) in
``test_serve_limits.py``; a content type other than protobuf, a client that disconnects
mid-call and a model hanging past the deadline in ``test_call_lifecycle.py``; a deadline
passing in the queue (``DEADLINE_EXCEEDED``) in ``test_batch_queue.py``; random and
mutated bytes to every method (hypothesis) in ``test_fuzzing.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from bad_input_support import SERVICE, f32, failure, raw_failure, tensor
from grpclib.const import Status
from support import AppCaller

from blazerpc.testing import ServeProcess, run_grpcio_client

# --- request bytes that do not decode ---------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xff\xff\xff", "Wire format was corrupt"),
        (b"\x0a\x05abc", "Wire format was corrupt"),  # a length-delimited field cut short
        (b"\x0a", "Wire format was corrupt"),  # a tag with no value
    ],
    ids=["garbage", "truncated", "tag-only"],
)
async def test_bytes_that_are_not_a_protobuf_message(errors: AppCaller, payload: bytes, reason: str) -> None:
    status, message = await raw_failure(errors, errors.method("text").path, payload)
    assert status is Status.INVALID_ARGUMENT
    assert "request is not a valid blazerpc.TextRequest message" in message
    assert reason in message


async def test_another_models_request_where_a_string_cannot_hold_its_bytes(errors: AppCaller) -> None:
    # ScaleRequest's field 1 is a TensorProto whose float data is not UTF-8; field 1 of
    # TextRequest is a string, so these bytes are not a TextRequest.
    data = np.array([1.0, -2.0, 3.0], dtype="<f4").tobytes()
    payload = errors.request("scale", x=tensor(errors, [1, 3], "float32", data)).SerializeToString()
    status, message = await raw_failure(errors, errors.method("text").path, payload)
    assert status is Status.INVALID_ARGUMENT
    assert "request is not a valid blazerpc.TextRequest message" in message
    assert "UTF-8" in message


async def test_another_models_request_where_a_string_lands_in_a_tensor_field(errors: AppCaller) -> None:
    # TextRequest(value="hi") parses as a ScaleRequest whose tensor has no dtype.
    payload = errors.request("text", value="hi").SerializeToString()
    status, message = await raw_failure(errors, errors.method("scale").path, payload)
    assert status is Status.INVALID_ARGUMENT
    assert message == "field 'x': unknown dtype ''; expected float32"


async def test_a_varint_where_a_tensor_is_expected(errors: AppCaller) -> None:
    # Field 1 is the tensor field; a varint there cannot be a TensorProto.
    status, message = await raw_failure(errors, errors.method("scale").path, b"\x08\x01")
    assert status is Status.INVALID_ARGUMENT
    assert message == "field 'x': expected a TensorProto (wire type 2), got wire type 0"


async def test_empty_request_message_is_missing_its_required_tensor(errors: AppCaller) -> None:
    status, message = await raw_failure(errors, errors.method("scale").path, b"")
    assert status is Status.INVALID_ARGUMENT
    assert message == "field 'x': is required but was not set"


# --- tensors that do not match their declaration ----------------------------------------


TENSOR_CASES: list[Any] = [
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 3], "int64", np.zeros(6, dtype="<i8").tobytes())},
        ["field 'x'", "expected dtype float32", "got int64"],
        id="dtype-int64-for-float32",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [6], "float32", f32(6))},
        ["field 'x'", "rank 2", "float32[rows, 3]", "got shape [6]"],
        id="rank-too-low",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [1, 2, 3], "float32", f32(6))},
        ["field 'x'", "rank 2", "float32[rows, 3]", "got shape [1, 2, 3]"],
        id="rank-too-high",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [], "float32", f32())},
        ["field 'x'", "rank 2", "got shape []"],
        id="rank-zero",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 4], "float32", f32(2, 4))},
        ["field 'x'", "expected shape float32[rows, 3]", "got shape [2, 4]"],
        id="fixed-dim",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 3], "float32", f32(5))},
        ["field 'x'", "shape [2, 3] of float32 needs 24 bytes", "got 20"],
        id="data-too-short",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 3], "float32", f32(6) + b"\x00")},
        ["field 'x'", "needs 24 bytes", "got 25"],
        id="data-too-long",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [0, 3], "float32", b"\x00" * 4)},
        ["field 'x'", "shape [0, 3] of float32 needs 0 bytes", "got 4"],
        id="data-for-an-empty-shape",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [3], "complex128", f32(3))},
        ["field 'x'", "shape [3] of complex128 needs 48 bytes", "got 12"],
        id="data-sized-for-another-dtype",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [-2, 3], "float32", b"")},
        ["field 'x'", "shape [-2, 3]", "negative dimension"],
        id="negative-dim",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [-1, -4], "float32", f32(4))},
        ["field 'x'", "shape [-1, -4]", "negative dimension"],
        id="negative-dims-whose-product-fits-the-data",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2**40, 3], "float32", f32(3))},
        ["field 'x'", f"shape [{2**40}, 3] of float32 needs {2**40 * 12} bytes", "got 12"],
        id="absurd-dim",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [2**62, 2**62, 2**62], "complex128", b"")},
        ["field 'x'", f"shape [{2**62}, {2**62}, {2**62}] of complex128", "got 0"],
        id="absurd-dims-beyond-int64-bytes",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [2**40, 2**40, 0], "float32", b"")},
        ["field 'x'", f"[{2**40}, {2**40}, 0]"],
        id="absurd-dims-with-a-zero-dim",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 3], "float8", f32(6))},
        ["field 'x'", "unknown dtype 'float8'", "expected float32"],
        id="unknown-dtype",
    ),
    pytest.param(
        "scale",
        lambda c: {"x": tensor(c, [2, 3], "<f4", f32(6))},
        ["field 'x'", "unknown dtype '<f4'", "expected float32"],
        id="dtype-string-instead-of-name",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [2], "object", b"\x00" * 16)},
        ["field 'x'", "unknown dtype 'object'", "expected one of bool, int8", "complex128"],
        id="unknown-dtype-for-any-dtype",
    ),
    pytest.param(
        "mask",
        lambda c: {"m": tensor(c, [4], "bool", b"\x01\x00\x02\x01")},
        ["field 'm'", "bool tensor data must be bytes 0 or 1, got 0x02"],
        id="bool-byte-2",
    ),
    pytest.param(
        "any_tensor",
        lambda c: {"x": tensor(c, [2, 2], "bool", b"\x00\xff\x01\x00")},
        ["field 'x'", "bool tensor data must be bytes 0 or 1, got 0xff"],
        id="bool-byte-255-for-any-dtype",
    ),
    pytest.param(
        "scale",
        lambda c: {},
        ["field 'x'", "is required but was not set"],
        id="missing-tensor",
    ),
    pytest.param(
        "pair",
        lambda c: {"a": tensor(c, [3], "float32", f32(3))},
        ["field 'b'", "is required but was not set"],
        id="missing-second-tensor",
    ),
    pytest.param(
        "pair",
        lambda c: {"a": tensor(c, [3], "float32", f32(3)), "b": tensor(c, [4], "float32", f32(4))},
        ["dimension 'n' is 3 in field 'a' but 4 in field 'b'"],
        id="shared-dim-mismatch",
    ),
    pytest.param(
        "square",
        lambda c: {"m": tensor(c, [2, 3], "int32", np.zeros(6, dtype="<i4").tobytes())},
        ["dimension 'k' is 2 in field 'm' but 3 in field 'm'"],
        id="repeated-dim-mismatch-in-one-tensor",
    ),
]


@pytest.mark.parametrize(("model", "fields", "expected"), TENSOR_CASES)
async def test_tensor_that_does_not_match_its_declaration(
    errors: AppCaller, model: str, fields: Callable[[AppCaller], dict[str, Any]], expected: list[str]
) -> None:
    status, message = await failure(errors, model, **fields(errors))
    assert status is Status.INVALID_ARGUMENT, message
    for part in expected:
        assert part in message


async def test_bool_tensor_of_zeros_and_ones_round_trips(errors: AppCaller) -> None:
    data = b"\x01\x00\x00\x01\x01"
    reply = await errors.call("mask", m=tensor(errors, [5], "bool", data))
    assert (list(reply.result.shape), reply.result.dtype, reply.result.data) == ([5], "bool", data)
    empty = await errors.call("mask", m=tensor(errors, [0], "bool", b""))
    assert (list(empty.result.shape), empty.result.data) == ([0], b"")


# --- scalars out of range ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"small": 128}, "field 'small': 128 is out of range for int8 [-128, 127]"),
        ({"small": -129}, "field 'small': -129 is out of range for int8 [-128, 127]"),
        ({"small": 2**31 - 1}, f"field 'small': {2**31 - 1} is out of range for int8 [-128, 127]"),
        ({"byte": 256}, "field 'byte': 256 is out of range for uint8 [0, 255]"),
        ({"values": [1, 40000]}, "field 'values': 40000 is out of range for int16 [-32768, 32767]"),
    ],
    ids=["int8-high", "int8-low", "int8-int32-max", "uint8", "list-of-int16"],
)
async def test_numpy_integer_out_of_range(errors: AppCaller, fields: dict[str, Any], expected: str) -> None:
    sent = {"small": 0, "byte": 0, **fields}  # every input is required
    assert await failure(errors, "narrow", **sent) == (Status.INVALID_ARGUMENT, expected)


async def test_numpy_integers_in_range_are_accepted(errors: AppCaller) -> None:
    reply = await errors.call("narrow", small=-128, byte=255, values=[-32768, 32767])
    assert reply.result == -128 + 255 - 1


# --- unknown methods --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [f"{SERVICE}/PredictNope", f"{SERVICE}/predicttext", "/blazerpc.Other/PredictText", "/nothing"],
)
async def test_unknown_method_is_unimplemented(errors: AppCaller, path: str) -> None:
    payload = errors.request("text", value="x").SerializeToString()
    status, message = await raw_failure(errors, path, payload)
    assert status is Status.UNIMPLEMENTED, message
    assert message is not None
    assert message.startswith(f"unknown method {path}; blazerpc.InferenceService has: ")
    assert "PredictText" in message


GRPCIO_CALL = """
import sys

import grpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    call = channel.unary_unary(sys.argv[2])
    try:
        call(b"", timeout=10)
    except grpc.RpcError as exc:
        print(exc.code().name)
    else:
        print("OK")
"""


def test_unknown_method_is_unimplemented_for_a_grpcio_client(errors_server: ServeProcess) -> None:
    done = run_grpcio_client(GRPCIO_CALL, errors_server.address, f"{SERVICE}/PredictNope")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "UNIMPLEMENTED"
