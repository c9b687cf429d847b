"""V2 tensor data <-> numpy arrays and Python values: raw contents (flat, row-major,
little-endian; BYTES elements each prefixed by a 4-byte little-endian length) and
typed ``contents``."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from blazerpc import InferenceError, InvalidInputError

from ._datatypes import NUMPY

__all__ = [
    "TYPED_FIELDS",
    "element_count",
    "join_bytes",
    "output_array",
    "raw_bytes_elements",
    "typed_values",
]

#: The ``InferTensorContents`` field that holds each datatype's typed values.
TYPED_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_LENGTH = struct.Struct("<I")


def raw_bytes_elements(data: bytes, count: int) -> list[bytes]:
    """The elements of a raw BYTES tensor of ``count`` elements."""
    items: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 4 > end:
            raise InvalidInputError(
                f"raw BYTES data ends inside the 4-byte length of element {len(items)} "
                "(each element is its little-endian uint32 length, then its bytes)"
            )
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise InvalidInputError(
                f"raw BYTES element {len(items)} says {length} bytes but only {end - pos} remain"
            )
        items.append(bytes(data[pos : pos + length]))
        pos += length
    if len(items) != count:
        raise InvalidInputError(f"the shape holds {count} elements but the raw BYTES data has {len(items)}")
    return items


def join_bytes(items: Sequence[bytes]) -> bytes:
    """A raw BYTES tensor's data from its elements."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def typed_values(contents: Any, datatype: str, count: int) -> Any:
    """The typed ``contents`` of a tensor: a list of bytes for BYTES, else an array."""
    field = TYPED_FIELDS.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"{datatype} data travels only in raw_input_contents (the protocol has no typed contents for it)"
        )
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidInputError(f"the shape holds {count} elements but contents.{field} has {len(values)}")
    if datatype == "BYTES":
        return list(values)
    dtype = NUMPY[datatype]
    try:
        return np.asarray(values, dtype=dtype) if dtype.kind != "b" else np.asarray(values, dtype=bool)
    except OverflowError:
        raise InvalidInputError(f"contents.{field} holds a value out of range for {datatype}") from None


def element_count(shape: Sequence[int]) -> int:
    """The number of elements of ``shape``; ``InvalidInputError`` for a negative dim."""
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"shape {list(shape)} has a negative dimension")
    return math.prod(shape)


def output_array(value: Any, dtype: np.dtype[Any], what: str) -> np.ndarray:
    """A model's value for a numeric output as a C-ordered little-endian array."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any array-like the model returned
        raise InferenceError(f"{what}: cannot be made a numpy array: {exc}") from None
    if arr.dtype != dtype:
        if arr.dtype.kind in "OUSV" or not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise InferenceError(f"{what}: the model returned {arr.dtype}, which does not fit {dtype.name}")
        arr = arr.astype(dtype)
    return np.ascontiguousarray(arr)
