"""Python scalars, lists, optional values, defaults and numpy scalars, round-tripped
through a real `blaze serve` process.

Requests are built by hand from the app's own message classes. Values are compared
exactly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import AppCaller
from types_support import call

# --- Python scalars ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "abc", "héllo wörld ✓ 🙂", "x" * 10_000])
async def test_str(types: AppCaller, value: str) -> None:
    assert (await call(types, "echo_str", value=value)).result == value[::-1]


@pytest.mark.parametrize("value", [0, -1, 41, -(2**63), 2**63 - 2])
async def test_int_is_int64(types: AppCaller, value: int) -> None:
    assert (await call(types, "echo_int", value=value)).result == value + 1


@pytest.mark.parametrize("value", [0.0, 0.1, -2.5e-300, 1e308, 1 / 3])
async def test_float_is_double(types: AppCaller, value: float) -> None:
    # 0.1 * 2 and 1/3 * 2 would differ if the value went through a 32-bit float.
    assert (await call(types, "echo_float", value=value)).result == value * 2


async def test_float_keeps_negative_zero_and_infinity(types: AppCaller) -> None:
    assert math.copysign(1, (await call(types, "echo_float", value=-0.0)).result) == -1
    assert (await call(types, "echo_float", value=float("-inf"))).result == float("-inf")


@pytest.mark.parametrize("value", [True, False])
async def test_bool(types: AppCaller, value: bool) -> None:
    assert (await call(types, "echo_bool", value=value)).result is (not value)


@pytest.mark.parametrize("value", [b"", b"\x00", bytes(range(256)), b"\xff" * 100_000])
async def test_bytes(types: AppCaller, value: bytes) -> None:
    assert (await call(types, "echo_bytes", value=value)).result == value[::-1]


async def test_async_model(types: AppCaller) -> None:
    assert (await call(types, "echo_async", value="quiet")).result == "QUIET"


# --- lists -------------------------------------------------------------------------------


async def test_lists_of_every_scalar(types: AppCaller) -> None:
    reply = await call(
        types,
        "lists",
        tag="t",
        strs=["ab", "", "çd"],
        ints=[-(2**63), 0, 5],
        floats=[0.1, -1.5],
        bools=[True, False, False],
        blobs=[b"\x00\x01", b""],
    )
    assert reply.result_0 == "t"
    assert list(reply.result_1) == ["dç", "", "ba"]
    assert list(reply.result_2) == [6, 1, -(2**63) + 1]
    assert list(reply.result_3) == [-3.0, 0.2]
    assert list(reply.result_4) == [True, True, False]
    assert list(reply.result_5) == [b"", b"\x01\x00"]


async def test_empty_lists(types: AppCaller) -> None:
    reply = await call(types, "lists", tag="t")
    for name in ("result_1", "result_2", "result_3", "result_4", "result_5"):
        assert list(getattr(reply, name)) == []


async def test_lists_of_numpy_scalars_arrive_as_numpy_values(types: AppCaller) -> None:
    reply = await call(
        types, "numpy_lists", tag="-", small=[-128, 127], wide=[2**64 - 1], halves=[0.5, -2.25]
    )
    assert list(reply.result) == [
        "-int8:-128",
        "-int8:127",
        "-uint64:18446744073709551615",
        "-float32:0.5",
        "-float32:-2.25",
    ]


async def test_list_of_numpy_scalars_as_result(types: AppCaller) -> None:
    assert list((await call(types, "numpy_list_result", n=2)).result) == [-2, -1, 0, 1]
    assert list((await call(types, "numpy_list_result", n=0)).result) == []


# --- optional values and defaults --------------------------------------------------------

OPTIONAL_RESULTS = ("result_0", "result_1", "result_2", "result_3", "result_4")


async def test_optional_absent_is_none_and_a_none_result_is_absent(types: AppCaller) -> None:
    reply = await call(types, "optional")
    for name in OPTIONAL_RESULTS:
        assert not reply.HasField(name), name


async def test_optional_present_with_zero_values_is_not_none(types: AppCaller) -> None:
    reply = await call(types, "optional", number=0, text="", ratio=0.0, flag=False, blob=b"")
    for name in OPTIONAL_RESULTS:
        assert reply.HasField(name), name
    assert (reply.result_0, reply.result_1, reply.result_2, reply.result_3, reply.result_4) == (
        1,
        "",
        0.0,
        True,
        b"",
    )


async def test_optional_present_values(types: AppCaller) -> None:
    reply = await call(types, "optional", number=-9, text="abc", ratio=0.25, flag=True, blob=b"\x01\x02")
    assert (reply.result_0, reply.result_1, reply.result_2, reply.result_3, reply.result_4) == (
        -8,
        "cba",
        0.5,
        False,
        b"\x02\x01",
    )


async def test_optional_some_present(types: AppCaller) -> None:
    reply = await call(types, "optional", text="xy")
    assert [reply.HasField(name) for name in OPTIONAL_RESULTS] == [False, True, False, False, False]
    assert reply.result_1 == "yx"


async def test_defaults_apply_when_fields_are_absent(types: AppCaller) -> None:
    assert (await call(types, "defaults", x=2.0)).result == "default|5.0|7|True|42|int8:-3"


async def test_defaults_do_not_replace_zero_values_that_were_sent(types: AppCaller) -> None:
    reply = await call(types, "defaults", x=2.0, factor=0.0, label="", count=0, flag=False, maybe=0, level=0)
    assert reply.result == "|0.0|0|False|0|int8:0"


async def test_defaults_mixed(types: AppCaller) -> None:
    reply = await call(types, "defaults", x=3.0, label="lbl", maybe=-1, level=127)
    assert reply.result == "lbl|7.5|7|True|-1|int8:127"


# --- numpy scalars -----------------------------------------------------------------------

NUMPY_TYPES = (
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
)
NUMPY_FIELDS = ("f16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "b")


def _extreme(np_type: Any, which: str) -> Any:
    if np_type is np.bool_:
        return which == "max"
    if issubclass(np_type, np.integer):
        info = np.iinfo(np_type)
        return int(info.max if which == "max" else info.min)
    return {"max": 0.1, "min": -1 / 3}[which]


async def test_numpy_scalars_arrive_as_their_numpy_type(types: AppCaller) -> None:
    fields = dict.fromkeys(NUMPY_FIELDS, 1)
    reply = await call(types, "numpy_kinds", **fields)
    assert list(reply.result) == [t.__name__ for t in NUMPY_TYPES]


@pytest.mark.parametrize("which", ["min", "max"])
async def test_numpy_scalars_round_trip_at_their_extremes(types: AppCaller, which: str) -> None:
    fields = {name: _extreme(t, which) for name, t in zip(NUMPY_FIELDS, NUMPY_TYPES, strict=True)}
    reply = await call(types, "numpy_scalars", **fields)
    for name, np_type in zip(NUMPY_FIELDS, NUMPY_TYPES, strict=True):
        # float16 and float32 travel as a protobuf float (32 bits).
        sent = np_type(np.float32(fields[name]) if np_type in (np.float16, np.float32) else fields[name])
        if np_type is np.bool_:
            expected: Any = not fields[name]
        elif issubclass(np_type, np.integer):
            expected = int(sent // np_type(2))
        else:
            # Computed in the declared precision: float16(0.1) * 2 is not float32(0.1) * 2.
            expected = float(sent * np_type(2))
        assert getattr(reply, name) == expected, name


async def test_float16_and_float32_are_computed_in_their_own_precision(types: AppCaller) -> None:
    fields = {name: _extreme(t, "max") for name, t in zip(NUMPY_FIELDS, NUMPY_TYPES, strict=True)}
    reply = await call(types, "numpy_scalars", **fields)
    assert reply.f16 == float(np.float16(np.float32(0.1)) * 2) != float(np.float32(0.1) * 2)
    assert reply.f32 == float(np.float32(0.1) * 2) != 0.2
    assert reply.f64 == 0.2


@pytest.mark.parametrize(
    ("field", "np_type"), [("i8", np.int8), ("i16", np.int16), ("u8", np.uint8), ("u16", np.uint16)]
)
@pytest.mark.parametrize("which", ["min", "max"])
async def test_narrow_integers_accept_their_whole_range(
    types: AppCaller, field: str, np_type: Any, which: str
) -> None:
    value = _extreme(np_type, which)
    sent = {"i8": 0, "i16": 0, "u8": 0, "u16": 0, field: value}  # every input is required
    reply = await call(types, "narrow", **sent)
    assert reply.result == ",".join(str(sent[f]) for f in ("i8", "i16", "u8", "u16"))


@pytest.mark.parametrize(
    ("field", "value", "type_name"),
    [
        ("i8", -129, "int8"),
        ("i8", 128, "int8"),
        ("i16", -32769, "int16"),
        ("i16", 32768, "int16"),
        ("u8", 256, "uint8"),
        ("u16", 65536, "uint16"),
    ],
)
async def test_narrow_integers_reject_values_out_of_range(
    types: AppCaller, field: str, value: int, type_name: str
) -> None:
    with pytest.raises(GRPCError) as info:
        await call(types, "narrow", **{"i8": 0, "i16": 0, "u8": 0, "u16": 0, field: value})
    assert info.value.status is Status.INVALID_ARGUMENT
    message = info.value.message or ""
    assert f"field '{field}'" in message
    assert str(value) in message
    assert type_name in message
