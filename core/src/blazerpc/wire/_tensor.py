"""``TensorProto`` <-> ``np.ndarray``: validation before allocation, no copy on decode,
and a hand-written encoder that writes the array's buffer straight after its header."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto

from ..exceptions import InferenceError, InvalidInputError
from ..types import TENSOR_DTYPES, TensorSpec

__all__ = ["TENSOR_MESSAGE", "decode_tensor", "encode_tensor", "tensor_message_proto"]

TENSOR_MESSAGE = "TensorProto"


def tensor_message_proto() -> DescriptorProto:
    """``message TensorProto { repeated int64 shape = 1; string dtype = 2; bytes data = 3; }``"""
    f = FieldDescriptorProto
    msg = DescriptorProto(name=TENSOR_MESSAGE)
    msg.field.add(name="shape", number=1, type=f.TYPE_INT64, label=f.LABEL_REPEATED, json_name="shape")
    msg.field.add(name="dtype", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL, json_name="dtype")
    msg.field.add(name="data", number=3, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL, json_name="data")
    return msg


def _check_shape(shape: tuple[int, ...], spec: TensorSpec, expected: str) -> None:
    dims = spec.dims
    if dims is not None:
        if len(shape) != len(dims):
            raise InvalidInputError(
                f"expected a tensor of rank {len(dims)} ({expected}), got shape {list(shape)}"
            )
        for got, want in zip(shape, dims, strict=True):
            if isinstance(want, int) and got != want:
                raise InvalidInputError(f"expected shape {expected}, got shape {list(shape)}")
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"shape {list(shape)} has a negative dimension")


def decode_tensor(tensor: Any, spec: TensorSpec) -> np.ndarray:
    """Check a ``TensorProto`` against ``spec`` and view its data as an array.

    Every check runs before any allocation; the array is a read-only view of the
    message's bytes.
    """
    expected = spec.describe()
    dtype_name = tensor.dtype
    dtype = TENSOR_DTYPES.get(dtype_name)
    if dtype is None:
        raise InvalidInputError(
            f"unknown dtype {dtype_name!r}; expected {spec.dtype or 'one of ' + ', '.join(TENSOR_DTYPES)}"
        )
    if spec.dtype is not None and dtype_name != spec.dtype:
        raise InvalidInputError(f"expected dtype {spec.dtype}, got {dtype_name}")
    shape = tuple(tensor.shape)
    _check_shape(shape, spec, expected)
    data = tensor.data
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise InvalidInputError(
            f"shape {list(shape)} of {dtype_name} needs {count * dtype.itemsize} bytes of data, "
            f"got {len(data)}"
        )
    if dtype.kind == "b" and count and (top := int(np.frombuffer(data, dtype=np.uint8).max())) > 1:
        # Any other byte would be a bool numpy cannot hold; checked on a view, no copy.
        raise InvalidInputError(f"bool tensor data must be bytes 0 or 1, got {top:#04x}")
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as exc:  # e.g. [2**40, 2**40, 0]: no data, but no such array either
        raise InvalidInputError(f"shape {list(shape)} cannot be used: {exc}") from None


def narrowing_problem(array: np.ndarray, target: np.dtype[Any]) -> tuple[str, str] | None:
    """Why casting ``array`` to ``target`` (of the same kind, see :func:`same_kind`)
    would change its values, or None.

    An integer out of ``target``'s range (numpy would wrap it around), or a finite
    number too large for a float ``target`` (it would become inf): returns what is
    wrong ("out of range", "too large") and the detail ("300 is outside int8's
    [-128, 127]"). A widening cast is None at once; a narrowing one costs one pass over
    the data.
    """
    if np.can_cast(array.dtype, target, casting="safe"):
        return None
    if array.dtype.kind in "iu" and target.kind in "iu":
        info = np.iinfo(target)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            return "out of range", f"{bad} is outside {target.name}'s [{info.min}, {info.max}]"
        return None
    with np.errstate(over="ignore"):  # an overflow is what this looks for
        overflow = np.isinf(array.astype(target))
    if overflow.any():
        source = array[overflow]
        finite = source[~np.isinf(source)]
        if finite.size:
            largest = np.finfo(target).max.item()
            return "too large", (
                f"{finite[0].item()!r} would become inf in {target.name} (largest finite: {largest:g})"
            )
    return None


def same_kind(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """Whether ``source`` values may become ``target`` ones if each survives: numpy's
    ``same_kind``, plus signed and unsigned integers both ways (int64 -> uint8: numpy
    calls those different kinds; :func:`narrowing_problem` checks every value's range)."""
    if source.kind in "iu" and target.kind in "iu":
        return True
    return bool(np.can_cast(source, target, casting="same_kind"))


def cast_exactly(array: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    """``array`` as ``target``, if that keeps the kind of number and every value; else a
    ``ValueError`` saying what would be lost (for a client's inputs)."""
    if array.dtype == target:
        return array
    if array.size:
        if not same_kind(array.dtype, target):
            raise ValueError(f"expected {target.name} values, got {array.dtype}")
        problem = narrowing_problem(array, target)
        if problem is not None:
            raise ValueError(f"{array.dtype.name} values {problem[0]} for {target.name}: {problem[1]}")
    with np.errstate(over="ignore"):
        return array.astype(target)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_tensor(value: Any, spec: TensorSpec, to_array: Callable[[Any], np.ndarray]) -> bytes:
    """Serialize ``value`` as a ``TensorProto``, checking it against ``spec``.

    A dtype that differs from the declared one is converted when numpy can do so
    without changing the kind of number (float64 -> float32, int32 -> int64), and, for
    a narrowing conversion, only if every value survives it (see :func:`narrowing_problem`);
    anything else is the model's error.
    """
    array = to_array(value)
    if spec.dtype is not None and array.size == 0:
        array = array.astype(TENSOR_DTYPES[spec.dtype])  # np.asarray([]) is float64: no data to lose
    if spec.dtype is not None and array.dtype.name != spec.dtype:
        target = TENSOR_DTYPES[spec.dtype]
        if not same_kind(array.dtype, target):
            raise InferenceError(
                f"model returned a {array.dtype.name} tensor where {spec.describe()} was declared"
            )
        problem = narrowing_problem(array, target)
        if problem is not None:
            raise InferenceError(
                f"model returned {array.dtype.name} values {problem[0]} for the declared "
                f"{spec.describe()}: {problem[1]}; return values that fit, or declare a wider "
                f"dtype than {target.name}"
            )
        with np.errstate(over="ignore"):  # checked above: only inf from inf, nan from nan
            array = array.astype(target)
    dtype = TENSOR_DTYPES.get(array.dtype.name)
    if dtype is None:
        raise InferenceError(f"model returned a tensor of dtype {array.dtype.name}, which has no wire form")
    if spec.dims is not None:
        try:
            _check_shape(array.shape, spec, spec.describe())
        except InvalidInputError as exc:
            raise InferenceError(f"model returned a tensor that does not match: {exc}") from None
    if array.dtype != dtype or not array.flags.c_contiguous:
        array = array.astype(dtype, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)

    name = array.dtype.name.encode()
    parts = []
    if array.ndim:
        packed = b"".join(_varint(d) for d in array.shape)
        parts.append(b"\x0a" + _varint(len(packed)) + packed)
    parts.append(b"\x12" + _varint(len(name)) + name)
    if array.nbytes:
        parts.append(b"\x1a" + _varint(array.nbytes))
        parts.append(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    return b"".join(parts)


def field_header(number: int, length: int) -> bytes:
    """The tag and length prefix of a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)
