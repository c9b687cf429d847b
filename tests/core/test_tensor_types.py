"""Tensors of every dtype and kind of shape, round-tripped through a real `blaze serve`
process: ``TensorProto{shape, dtype, data}`` with little-endian C-order bytes, replies
decoded with ``np.frombuffer`` and compared bit for bit; layouts of results, declared
dtypes and dims."""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import AppCaller
from types_support import array_of, assert_same_array, call, sample, served_fields, tensor

from blazerpc.testing import serve_process
from blazerpc.types import TENSOR_DTYPES

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
