"""Parameters and results as the served schema has them: field order, keyword-only
parameters, composite results (tuple, TypedDict, dataclass, NamedTuple) and string
annotations (``from __future__ import annotations``)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from grpclib.const import Status
from support import AppCaller
from types_support import array_of, assert_same_array, call, sample, served_fields, tensor

from blazerpc.testing import ServeProcess

# --- parameters --------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def test_parameters_are_fields_in_declaration_order(
    types: AppCaller, types_server: ServeProcess
) -> None:
    assert await served_fields(types_server, "OrderedRequest") == [
        ("first", 1),
        ("second", 2),
        ("third", 3),
        ("fourth", 4),
        ("fifth", 5),
    ]
    # Built by field number alone, so the server's numbering is what is tested.
    parts = [
        b"\x0a" + _varint(3) + b"one",  # field 1 (first), length-delimited
        b"\x10" + _varint(22),  # field 2 (second), varint
        b"\x19" + struct.pack("<d", 3.5),  # field 3 (third), 64-bit
        b"\x20" + _varint(1),  # field 4 (fourth), varint; field 5 (fifth) left out
    ]
    payload = b"".join(parts)
    path = types.method("ordered").path
    status, message, replies = await types.raw(path, payload)
    assert (status, message) == (Status.OK, None)
    response = types.schema.classes["OrderedResponse"]
    assert [response.FromString(r).result for r in replies] == ["one|22|3.5|True|five"]


async def test_keyword_only_parameters(types: AppCaller) -> None:
    reply = await call(types, "ordered", first="a", second=-1, third=0.25, fourth=False, fifth="e")
    assert reply.result == "a|-1|0.25|False|e"
    assert (await call(types, "keyword_only", text="ab")).result == "ab-ab"
    assert (await call(types, "keyword_only", text="ab", times=3, sep="+")).result == "ab+ab+ab"


# --- composite results -------------------------------------------------------------------


async def test_tuple_result_fields(types: AppCaller, types_server: ServeProcess) -> None:
    assert [name for name, _ in await served_fields(types_server, "SplitWordsResponse")] == [
        "result_0",
        "result_1",
        "result_2",
    ]
    reply = await call(types, "split_words", text="the quick  fox")
    assert (reply.result_0, reply.result_1, list(reply.result_2)) == (
        "THE QUICK  FOX",
        3,
        ["the", "quick", "fox"],
    )


async def test_typeddict_result_fields(types: AppCaller, types_server: ServeProcess) -> None:
    assert await served_fields(types_server, "StatsResponse") == [("total", 1), ("count", 2), ("mean", 3)]
    reply = await call(types, "stats", values=[1.0, 2.5, -0.5])
    assert (reply.total, reply.count, reply.mean) == (3.0, 3, 1.0)
    empty = await call(types, "stats", values=[])
    assert (empty.total, empty.count, empty.HasField("mean")) == (0.0, 0, False)


async def test_dataclass_result_fields(types: AppCaller, types_server: ServeProcess) -> None:
    assert await served_fields(types_server, "SummarizeResponse") == [
        ("minimum", 1),
        ("maximum", 2),
        ("normalized", 3),
        ("label", 4),
    ]
    x = np.array([2.0, 4.0, 3.0, 6.0])
    reply = await call(types, "summarize", x=tensor(types, x), label="abc")
    assert (reply.minimum, reply.maximum, reply.label) == (2.0, 6.0, "cba")
    assert_same_array(array_of(reply.normalized), np.array([0.0, 0.5, 0.25, 1.0]))


async def test_namedtuple_result_fields(types: AppCaller, types_server: ServeProcess) -> None:
    assert await served_fields(types_server, "DivModResponse") == [("quotient", 1), ("remainder", 2)]
    reply = await call(types, "div_mod", a=-17, b=5)
    assert (reply.quotient, reply.remainder) == (-4, 3)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("single_dataclass", "doubled"),
        ("single_typeddict", "doubled"),
        ("single_namedtuple", "doubled"),
        ("single_tuple", "result_0"),
    ],
)
async def test_single_field_composite_results(
    types: AppCaller, types_server: ServeProcess, model: str, field: str
) -> None:
    response = types.method(model).response
    assert await served_fields(types_server, response) == [(field, 1)]
    assert getattr(await call(types, model, value=21), field) == 42


# --- string annotations (from __future__ import annotations) -----------------------------


async def test_future_scalars_defaults_and_keyword_only(future: AppCaller) -> None:
    assert (await call(future, "shout", text="hi")).result == "HI HI"
    assert (await call(future, "shout", text="hi", times=3, sep="-")).result == "HI-HI-HI"
    assert (await call(future, "shout", text="hi", times=0)).result == ""


async def test_future_optional_and_list(future: AppCaller) -> None:
    reply = await call(future, "maybe_half", values=[1, -2])
    assert not reply.HasField("result_0")
    assert list(reply.result_1) == [3, -6]
    reply = await call(future, "maybe_half", value=5.0, values=[])
    assert (reply.HasField("result_0"), reply.result_0, list(reply.result_1)) == (True, 2.5, [])


async def test_future_numpy_scalars(future: AppCaller) -> None:
    assert (await call(future, "narrow_sum", a=-128, b=65535)).result == 65407


async def test_future_tensors_with_shared_symbolic_dims(future: AppCaller) -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.arange(12, dtype=np.float64).reshape(3, 4) - 5
    reply = await call(future, "matmul", a=tensor(future, a), b=tensor(future, b))
    assert_same_array(array_of(reply.result), a @ b)


async def test_future_numpy_typing_and_bare_ndarray(future: AppCaller) -> None:
    x = np.array([[1, -2], [32767, -32767]], dtype=np.int16)
    assert_same_array(array_of((await call(future, "negate", x=tensor(future, x))).result), -x)
    z = sample("complex64", (2, 3))
    assert_same_array(array_of((await call(future, "flip_any", x=tensor(future, z))).result), np.flip(z))


async def test_future_composite_results(future: AppCaller, future_server: ServeProcess) -> None:
    assert await served_fields(future_server, "ExtremesResponse") == [
        ("low", 1),
        ("high", 2),
        ("centered", 3),
    ]
    assert await served_fields(future_server, "CountsResponse") == [("chars", 1), ("words", 2), ("first", 3)]
    assert await served_fields(future_server, "FindResponse") == [("start", 1), ("stop", 2)]

    x = np.array([1.0, 2.0, 6.0], dtype=np.float32)
    reply = await call(future, "extremes", x=tensor(future, x))
    assert (reply.low, reply.high) == (1.0, 6.0)
    assert_same_array(array_of(reply.centered), x - x.mean())

    counts = await call(future, "counts", text="to be or")
    assert (counts.chars, counts.words, counts.first) == (8, 3, "to")
    assert not (await call(future, "counts", text=" ")).HasField("first")

    span = await call(future, "find", text="haystack", needle="st")
    assert (span.start, span.stop) == (3, 5)
