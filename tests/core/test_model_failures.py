"""Misbehaving models against a real `blaze serve` process (errors_app.py), and the
server serving on after all the bad input of test_bad_requests.py and this file (one
session-scoped server; this file runs after that one):

- a model that raises: ``INTERNAL`` with the exception's type and message; one that
  raises ``GRPCError``: its own status; ``InvalidInputError``: ``INVALID_ARGUMENT``;
- a model that returns the wrong type, shape or row count, or a value a narrowing cast
  would change: ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from bad_input_support import failure, good_scale_call
from grpclib.const import Status
from support import AppCaller

from blazerpc.testing import ServeProcess

# --- models that raise ------------------------------------------------------------------


async def test_model_raising_value_error_is_internal_with_its_type_and_message(errors: AppCaller) -> None:
    status, message = await failure(errors, "raises_value_error", message="bad things happened")
    assert status is Status.INTERNAL
    assert message == "model 'raises_value_error' raised ValueError: bad things happened"


async def test_async_model_raising_is_internal(errors: AppCaller) -> None:
    status, message = await failure(errors, "raises_async", message="missing-key")
    assert status is Status.INTERNAL
    assert message == "model 'raises_async' raised KeyError: 'missing-key'"


async def test_model_raising_grpc_error_passes_its_status_through(errors: AppCaller) -> None:
    assert await failure(errors, "raises_not_found", key="abc") == (Status.NOT_FOUND, "no item named 'abc'")


async def test_model_raising_invalid_input_error_is_invalid_argument(errors: AppCaller) -> None:
    assert await failure(errors, "raises_invalid_input", value="") == (
        Status.INVALID_ARGUMENT,
        "value must not be ''",
    )


# --- models that return the wrong thing -------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "expected"),
    [
        pytest.param(
            "wrong_scalar",
            {"kind": "str"},
            ["model returned str for field 'result', expected float"],
            id="str-for-float",
        ),
        pytest.param(
            "wrong_scalar",
            {"kind": "list"},
            ["model returned list for field 'result', expected float"],
            id="list-for-float",
        ),
        pytest.param(
            "wrong_scalar",
            {"kind": "none"},
            ["model returned None for field 'result' (float)"],
            id="none-for-float",
        ),
        pytest.param(
            "wrong_int",
            {"value": 2.5},
            ["model returned float for field 'result', expected int"],
            id="float-for-int",
        ),
        pytest.param(
            "wrong_int8",
            {"value": 300},
            ["field 'result'", "300", "int8"],
            id="out-of-range-for-int8",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "shape"},
            ["field 'result'", "float32[n, 2]", "got shape [3, 3]"],
            id="tensor-wrong-shape",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "rank"},
            ["field 'result'", "rank 2", "got shape [4]"],
            id="tensor-wrong-rank",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "dtype"},
            ["field 'result'", "model returned a complex128 tensor where float32[n, 2] was declared"],
            id="tensor-wrong-dtype",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "strings"},
            ["field 'result'", "float32[n, 2] was declared"],
            id="tensor-of-strings",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "str"},
            ["field 'result'", "model returned str for a tensor"],
            id="str-for-tensor",
        ),
        pytest.param(
            "wrong_tensor",
            {"kind": "none"},
            ["model returned None for field 'result' (float32[n, 2])"],
            id="none-for-tensor",
        ),
        pytest.param(
            "wrong_any_tensor",
            {"kind": "strings"},
            ["field 'result'", "tensor of dtype", "no wire form"],
            id="string-array-for-any-tensor",
        ),
        pytest.param(
            "wrong_any_tensor",
            {"kind": "objects"},
            ["field 'result'", "tensor of dtype object", "no wire form"],
            id="object-array-for-any-tensor",
        ),
        pytest.param(
            "wrong_tuple",
            {"n": 3},
            ["model returned a tuple of 3 values, expected 2"],
            id="tuple-too-long",
        ),
        pytest.param(
            "wrong_tuple",
            {"n": 1},
            ["model returned a tuple of 1 values, expected 2"],
            id="tuple-too-short",
        ),
    ],
)
async def test_model_returning_the_wrong_type_is_internal(
    errors: AppCaller, model: str, fields: dict[str, Any], expected: list[str]
) -> None:
    status, message = await failure(errors, model, **fields)
    assert status is Status.INTERNAL, message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("model", "kind", "expected"),
    [
        (
            "to_int32",
            "above",
            ["int64 values out of range", "int32[n]", "8589934597", "[-2147483648, 2147483647]"],
        ),
        ("to_int32", "below", ["int64 values out of range", "int32[n]", "-1099511627776"]),
        ("to_float16", "too_large", ["float64 values too large", "float16[n]", "1000000.0", "inf"]),
    ],
)
async def test_a_result_that_a_narrowing_cast_would_change_is_internal(
    errors: AppCaller, model: str, kind: str, expected: list[str]
) -> None:
    status, message = await failure(errors, model, kind=kind)
    assert status is Status.INTERNAL, message
    assert message.startswith("field 'result': ")
    for part in expected:
        assert part in message
    assert "declare a wider dtype" in message


@pytest.mark.parametrize(
    ("model", "kind", "dtype", "values"),
    [
        ("to_int32", "fits", "<i4", [5, -(2**31), 2**31 - 1]),
        ("to_float16", "fits", "<f2", np.array([1.5, -65504.0, 0.1], np.float16).tolist()),
        ("to_float16", "inf", "<f2", [float("inf"), float("-inf"), 2.0]),  # inf already: kept
    ],
)
async def test_a_narrowing_cast_that_keeps_every_value_is_made(
    errors: AppCaller, model: str, kind: str, dtype: str, values: list[Any]
) -> None:
    reply = await errors.call(model, kind=kind)
    assert reply.result.dtype == np.dtype(dtype).name
    assert np.frombuffer(reply.result.data, dtype=dtype).tolist() == values


# --- the server keeps serving -----------------------------------------------------------


async def test_server_keeps_serving_after_bad_input(errors: AppCaller, errors_server: ServeProcess) -> None:
    text_path = errors.method("text").path
    calls = [errors.raw(text_path, b"\xff" * n) for n in range(1, 11)]
    x = errors.schema.classes["TensorProto"](shape=[2**40, 3], dtype="float32", data=b"")
    calls += [errors.call("scale", x=x) for _ in range(10)]
    calls += [errors.call("raises_value_error", message=str(i)) for i in range(10)]
    calls += [errors.call("wrong_tensor", kind="shape") for _ in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    statuses = [r[0] if isinstance(r, tuple) else r.status for r in results]
    assert statuses == [Status.INVALID_ARGUMENT] * 20 + [Status.INTERNAL] * 20
    await good_scale_call(errors)
    assert (await errors.call("text", value="still here")).result == "STILL HERE"
    assert errors_server.process.poll() is None


async def test_good_call_after_every_other_test(errors: AppCaller, errors_server: ServeProcess) -> None:
    """Runs last in this module: everything above hit the same server."""
    await good_scale_call(errors)
    assert errors_server.process.poll() is None
