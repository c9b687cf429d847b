"""Tensors are read in place from the request bytes: the scanner agrees with protobuf,
and the array a model receives is a view of the request, not a copy."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blazerpc import BlazeApp, InvalidInputError, TensorInput, TensorOutput
from blazerpc.testing import serve_app
from blazerpc.wire._scan import split_fields

app_for_schema = BlazeApp()


@app_for_schema.model("mix")
def mix(label: str, x: TensorInput[np.float32, "n"], scale: float, y: np.ndarray) -> str:
    return label


SCHEMA = app_for_schema.schema()
Request = SCHEMA.classes["MixRequest"]
Tensor = SCHEMA.classes["TensorProto"]

tensors = st.builds(
    lambda shape, dtype, data: Tensor(shape=shape, dtype=dtype, data=data),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=5),
    st.text(max_size=12),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None)
@given(
    label=st.text(max_size=20),
    x=st.one_of(st.none(), tensors),
    scale=st.floats(allow_nan=False),
    y=st.one_of(st.none(), tensors),
    x_again=st.one_of(st.none(), tensors),
)
def test_scanner_reads_what_protobuf_reads(label, x, scale, y, x_again) -> None:
    request = Request(label=label, scale=scale)
    if x is not None:
        request.x.CopyFrom(x)
    if y is not None:
        request.y.CopyFrom(y)
    data = request.SerializeToString()
    if x_again is not None:  # a field repeated on the wire: protobuf merges the two
        data += Request(x=x_again).SerializeToString()
    expected = Request.FromString(data)

    rest, found = split_fields(data, {2: "x", 4: "y"})
    parsed_rest = Request.FromString(rest)
    assert parsed_rest.label == expected.label
    assert parsed_rest.scale == expected.scale
    assert not parsed_rest.HasField("x")
    assert not parsed_rest.HasField("y")
    for number, name in ((2, "x"), (4, "y")):
        if expected.HasField(name):
            got, want = found[number], getattr(expected, name)
            assert got.shape == list(want.shape)
            assert got.dtype == want.dtype
            assert bytes(got.data) == want.data
        else:
            assert number not in found


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x12\x05\x0a\x01", "truncated"),  # x claims 5 bytes, has 2
        (b"\x12\x02\x0a\x05", "TensorProto.shape is truncated"),
        (b"\x12\x03\x12\x01\xff", "TensorProto.dtype is not valid UTF-8"),
        (b"\x12\x02\x15\x00", "TensorProto field 2 has the wrong wire type 5"),
        (b"\x12\x01\x0b", "wire type 3"),  # a group: not proto3
        (b"\x10\x01", "field 'x': expected a TensorProto (wire type 2), got wire type 0"),
        (b"\x12\x0b" + b"\xff" * 11, "varint too long"),
    ],
)
def test_malformed_tensor_bytes_are_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        split_fields(data, {2: "x", 4: "y"})


async def test_the_model_receives_a_read_only_view_of_the_request_bytes() -> None:
    seen: dict[str, object] = {}
    app = BlazeApp()

    @app.model("inspect", batching=False)
    def inspect(x: TensorInput[np.float32, "n"]) -> TensorOutput[np.float32, "n"]:
        base = x
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        seen["owns_data"] = x.flags.owndata
        seen["writeable"] = x.flags.writeable
        seen["base"] = type(base).__name__
        seen["request_size"] = len(memoryview(base).obj)  # what the view is a view of
        return x * 2

    values = np.arange(1000, dtype=np.float32)

    async def run() -> np.ndarray:
        async with serve_app(app) as server:
            reply = await server.call(
                "inspect", x={"shape": [1000], "dtype": "float32", "data": values.tobytes()}
            )
            return np.frombuffer(reply.result.data, dtype=np.float32)

    assert await run_result(run) == pytest.approx(values * 2)
    assert seen["owns_data"] is False
    assert seen["writeable"] is False
    # The array's memory is the request message itself (its 4000 bytes plus headers).
    assert seen["base"] == "memoryview"
    assert 4000 < seen["request_size"] < 4100


async def run_result(coro_fn):
    return await coro_fn()
