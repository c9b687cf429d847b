"""Every supported type, round-tripped through a real `blaze serve` process.

Requests are built by hand from the app's own message classes; tensors are
``TensorProto{shape, dtype, data}`` with little-endian C-order bytes, and replies are
decoded with ``np.frombuffer``. Values are compared exactly (bit for bit for tensors).
"""

from __future__ import annotations

import math
import struct
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.reflection.v1.reflection_grpc import ServerReflectionStub
from grpclib.reflection.v1.reflection_pb2 import ServerReflectionRequest
from support import APPS, AppCaller, app_target, load_app_module

from blazerpc.testing import ServeProcess, serve_process
from blazerpc.types import TENSOR_DTYPES

# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def types(types_server: ServeProcess) -> AppCaller:
    return AppCaller(load_app_module(APPS / "types_app.py"), types_server)


@pytest.fixture(scope="module")
def future_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("future_app")) as proc:
        yield proc


@pytest.fixture(scope="module")
def future(future_server: ServeProcess) -> AppCaller:
    return AppCaller(load_app_module(APPS / "future_app.py"), future_server)


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
    reply = await call(types, "narrow", **{field: value})
    expected = {"i8": 0, "i16": 0, "u8": 0, "u16": 0, field: value}
    assert reply.result == ",".join(str(expected[f]) for f in ("i8", "i16", "u8", "u16"))


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
        await call(types, "narrow", **{field: value})
    assert info.value.status is Status.INVALID_ARGUMENT
    message = info.value.message or ""
    assert f"field '{field}'" in message
    assert str(value) in message
    assert type_name in message


# --- tensors: every dtype, every kind of shape --------------------------------------------

SHAPES = [(), (0,), (3, 0, 2), (7,), (2, 3, 4), (1, 1, 1, 2, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype_name", list(TENSOR_DTYPES))
async def test_tensor_round_trip_every_dtype_and_shape(
    types: AppCaller, dtype_name: str, shape: tuple[int, ...]
) -> None:
    x = sample(dtype_name, shape)
    reply = await call(types, "double", x=tensor(types, x))
    assert reply.result.dtype == dtype_name
    assert list(reply.result.shape) == list(shape)
    assert len(reply.result.data) == x.nbytes
    assert_same_array(array_of(reply.result), x + x)


def test_tensor_dtypes_cover_every_documented_dtype() -> None:
    assert list(TENSOR_DTYPES) == [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]


@pytest.mark.parametrize("dtype_name", list(TENSOR_DTYPES))
async def test_model_receives_a_read_only_array_of_the_sent_dtype_and_shape(
    types: AppCaller, dtype_name: str
) -> None:
    x = sample(dtype_name, (2, 0, 3))
    assert (await call(types, "describe_array", x=tensor(types, x))).result == f"{dtype_name}|[2, 0, 3]|False"


async def test_zero_dim_tensor_wire_form(types: AppCaller) -> None:
    x = np.array(-1.25, dtype=np.float32)
    reply = await call(types, "double", x=tensor(types, x))
    assert list(reply.result.shape) == []
    assert reply.result.data == struct.pack("<f", -2.5)


async def test_0d_arrays_are_accepted_for_scalar_fields(types: AppCaller) -> None:
    reply = await call(types, "zero_d_scalars", x=2.5)
    assert (reply.result_0, reply.result_1, reply.result_2, reply.result_3) == (2.5, True, 2, "2.5")


async def test_a_rank_0_tensor_declared_with_empty_dims(types: AppCaller) -> None:
    method = types.method("scalar_tensor")
    assert [f.wire.describe for f in (*method.inputs[:1], *method.outputs)] == ["float64[]", "float64[]"]
    reply = await call(types, "scalar_tensor", x=tensor(types, np.array(1.5)), rank=0)
    assert list(reply.result.shape) == []
    assert reply.result.data == struct.pack("<d", 3.0)
    with pytest.raises(GRPCError) as refused:
        await call(types, "scalar_tensor", x=tensor(types, np.ones((2, 2))), rank=0)
    assert refused.value.status is Status.INVALID_ARGUMENT
    assert "field 'x': expected a tensor of rank 0 (float64[]), got shape [2, 2]" in (
        refused.value.message or ""
    )
    with pytest.raises(GRPCError) as wrong:
        await call(types, "scalar_tensor", x=tensor(types, np.array(1.5)), rank=1)
    assert wrong.value.status is Status.INTERNAL
    assert "expected a tensor of rank 0 (float64[]), got shape [1]" in (wrong.value.message or "")


async def test_empty_tensor_wire_form(types: AppCaller) -> None:
    reply = await call(types, "double", x=tensor(types, np.zeros((4, 0), dtype=np.int16)))
    assert list(reply.result.shape) == [4, 0]
    assert reply.result.dtype == "int16"
    assert reply.result.data == b""


async def test_tensor_data_is_little_endian(types: AppCaller) -> None:
    x = np.array([1, 256], dtype=np.int32)
    reply = await call(types, "double", x=tensor(types, x))
    assert reply.result.data == b"\x02\x00\x00\x00\x00\x02\x00\x00"


# --- tensors: layouts of results ---------------------------------------------------------

LAYOUT_DTYPES = ["bool", "int8", "uint16", "int64", "float16", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("dtype_name", LAYOUT_DTYPES)
@pytest.mark.parametrize(
    ("how", "shape"),
    [
        ("transpose", (3, 4)),
        ("transpose", (2, 3, 4)),
        ("transpose", (5, 0)),
        ("reverse", (6, 2)),
        ("every_other", (7, 3)),
        ("fortran", (3, 5)),
        ("big_endian", (4, 3)),
        ("big_endian", ()),
    ],
    ids=lambda v: "x".join(map(str, v)) or "0d" if isinstance(v, tuple) else v,
)
async def test_non_contiguous_and_foreign_layout_results(
    types: AppCaller, dtype_name: str, how: str, shape: tuple[int, ...]
) -> None:
    x = sample(dtype_name, shape)
    expected = {
        "transpose": lambda a: a.T,
        "reverse": lambda a: a[::-1],
        "every_other": lambda a: a[::2],
        "fortran": lambda a: a,
        "big_endian": lambda a: a,
    }[how](x)
    reply = await call(types, "layout", x=tensor(types, x), how=how)
    assert_same_array(array_of(reply.result), expected.copy(order="C"))


# --- tensors: declared dtypes and dims ---------------------------------------------------


async def test_fixed_and_symbolic_dims(types: AppCaller) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    w = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    reply = await call(types, "affine", x=tensor(types, x), w=tensor(types, w))
    assert_same_array(array_of(reply.result), x @ w)


async def test_symbolic_dim_of_size_zero(types: AppCaller) -> None:
    x = np.zeros((0, 3), dtype=np.float32)
    w = np.ones((3, 2), dtype=np.float32)
    reply = await call(types, "affine", x=tensor(types, x), w=tensor(types, w))
    assert_same_array(array_of(reply.result), np.zeros((0, 2), dtype=np.float32))


@pytest.mark.parametrize("n", [0, 1, 5])
async def test_shared_symbolic_dim_across_two_inputs(types: AppCaller, n: int) -> None:
    a = np.arange(n * 2, dtype=np.float64).reshape(n, 2) / 4
    b = -np.arange(n * 2, dtype=np.float64).reshape(n, 2) * 3
    reply = await call(types, "add_pair", a=tensor(types, a), b=tensor(types, b))
    assert_same_array(array_of(reply.result), a + b)


async def test_all_fixed_dims(types: AppCaller) -> None:
    x = np.array([[1, -2, 3], [4, 5, -(2**31)]], dtype=np.int32)
    reply = await call(types, "fixed", x=tensor(types, x))
    assert_same_array(array_of(reply.result), x.T * np.int32(10))


async def test_float64_result_is_converted_to_the_declared_float32(types: AppCaller) -> None:
    x = np.array([[1, 2, 3], [-1, 0, 7], [0.5, 0.25, 0.75]], dtype=np.float32)
    reply = await call(types, "row_means", x=tensor(types, x))
    assert reply.result.dtype == "float32"
    assert_same_array(array_of(reply.result), np.array([2, 2, 0.5], dtype=np.float32))


@pytest.mark.parametrize("n", [0, 1, 6])
async def test_list_result_for_a_tensor(types: AppCaller, n: int) -> None:
    reply = await call(types, "arange", n=n)
    assert_same_array(array_of(reply.result), np.arange(n, dtype=np.int64))


async def test_numpy_typing_ndarray(types: AppCaller) -> None:
    x = np.array([[0.5, -1.25], [3.0, 1e-3]], dtype=np.float32)
    reply = await call(types, "scale_ndarray", x=tensor(types, x), factor=0.1)
    assert_same_array(array_of(reply.result), x * np.float32(0.1))


async def test_optional_tensor_absent_and_present(types: AppCaller) -> None:
    assert not (await call(types, "maybe_tensor")).HasField("result")
    x = np.array([1.5, -2.0], dtype=np.float32)
    reply = await call(types, "maybe_tensor", x=tensor(types, x))
    assert reply.HasField("result")
    assert_same_array(array_of(reply.result), x + 1)


async def test_optional_tensor_present_and_empty(types: AppCaller) -> None:
    reply = await call(types, "maybe_tensor", x=tensor(types, np.zeros(0, dtype=np.float32)))
    assert reply.HasField("result")
    assert_same_array(array_of(reply.result), np.zeros(0, dtype=np.float32))


async def test_tensor_parameter_with_a_default(types: AppCaller) -> None:
    x = np.array([1, 2, 3], dtype=np.int64)
    assert_same_array(array_of((await call(types, "tensor_default", x=tensor(types, x))).result), x)
    offset = np.array([10, 20, -30], dtype=np.int64)
    reply = await call(types, "tensor_default", x=tensor(types, x), offset=tensor(types, offset))
    assert_same_array(array_of(reply.result), x + offset)


async def test_optional_tensor_with_union_syntax(tmp_path: Path) -> None:
    """`TensorInput[...] | None` is the `T | None` form the README documents."""
    app_file = tmp_path / "union_tensor_app.py"
    app_file.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from blazerpc import BlazeApp, TensorInput, TensorOutput

            app = BlazeApp()

            @app.model("maybe")
            def maybe(x: TensorInput[np.float32, "n"] | None) -> TensorOutput[np.float32, "n"] | None:
                return None if x is None else x * 2
            """
        )
    )
    with serve_process(f"{app_file}:app", cwd=tmp_path) as proc:
        fields = await served_fields(proc, "MaybeRequest")
    assert fields == [("x", 1)]


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
