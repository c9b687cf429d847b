"""numpy: scalar types (``np.float32`` -> ``float``, ...), tensors (``TensorInput``,
``TensorOutput``, ``np.ndarray``, ``npt.NDArray[...]``) and array conversion."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from ..exceptions import InferenceError, InvalidInputError, TypeMappingError
from ..hookspecs import hookimpl
from ..types import SCALAR_TYPES, TensorInput, TensorOutput, TensorSpec, dtype_name
from ..wire import ArrayConverter, FieldContext, WireType, scalar_wire_type, tensor_wire_type


def _bounded(np_type: type[np.integer[Any]]) -> tuple[Callable[[int], Any], Callable[[Any], int]]:
    """Converters for an integer type narrower than its field (int8 in an int32 field)."""
    info = np.iinfo(np_type)
    low, high, name = int(info.min), int(info.max), np.dtype(np_type).name

    def decode(value: int) -> Any:
        if not low <= value <= high:
            raise InvalidInputError(f"{value} is out of range for {name} [{low}, {high}]")
        return np_type(value)

    def encode(value: Any) -> int:
        number = int(value)
        if not low <= number <= high:
            raise InferenceError(f"model returned {number}, out of range for {name} [{low}, {high}]")
        return number

    return decode, encode


def _decode_float16(value: float) -> np.float16:
    half = np.float16(value)
    if np.isinf(half) and not math.isinf(value):
        raise InvalidInputError(f"{value} is out of range for float16 (largest: 65504)")
    return half


def _numpy_scalar(proto_type: int, np_type: Any, python: Callable[[Any], Any]) -> WireType:
    name = np.dtype(np_type).name
    # int32 and uint32 fields hold exactly their range; narrower types need checks.
    if issubclass(np_type, np.integer) and np.iinfo(np_type).bits < 32:
        decode, encode = _bounded(np_type)
        return scalar_wire_type(proto_type, name, decode=decode, encode=encode)
    decode_float = _decode_float16 if np_type is np.float16 else np_type
    return scalar_wire_type(proto_type, name, decode=decode_float, encode=python)


#: Per dtype kind: the protobuf field type of a 64-bit value, of a narrower one, and the
#: Python type a value is encoded as (float16 and float32 go in a ``float`` field).
_FIELDS: dict[str, tuple[int, int, Callable[[Any], Any]]] = {
    "b": (F.TYPE_BOOL, F.TYPE_BOOL, bool),
    "f": (F.TYPE_DOUBLE, F.TYPE_FLOAT, float),
    "i": (F.TYPE_INT64, F.TYPE_INT32, int),
    "u": (F.TYPE_UINT64, F.TYPE_UINT32, int),
}


def _scalar_field(np_type: type[np.generic]) -> WireType:
    dtype = np.dtype(np_type)
    wide, narrow, python = _FIELDS[dtype.kind]
    return _numpy_scalar(wide if dtype.itemsize == 8 else narrow, np_type, python)


_NUMPY_SCALARS: dict[Any, WireType] = {t: _scalar_field(t) for t in SCALAR_TYPES.values()}


def _ndarray_spec(annotation: Any) -> TensorSpec | None:
    """``np.ndarray`` -> any tensor; ``npt.NDArray[np.float32]`` -> any float32 tensor."""
    if annotation is np.ndarray:
        return TensorSpec()
    if typing.get_origin(annotation) is not np.ndarray:
        return None
    args = typing.get_args(annotation)
    dtype_args = typing.get_args(args[1]) if len(args) == 2 else ()
    if not dtype_args or dtype_args[0] is Any or isinstance(dtype_args[0], typing.TypeVar):
        return TensorSpec()
    return TensorSpec(dtype=dtype_name(dtype_args[0]))


@hookimpl(trylast=True)
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    if isinstance(annotation, type) and issubclass(annotation, (TensorInput, TensorOutput)):
        if annotation.spec is None:
            raise TypeMappingError(
                f"model {context.model!r}: field {context.name!r}: say the tensor's dtype and "
                f"dims, e.g. {annotation.__name__}[np.float32, 'batch', 3]"
            )
        return tensor_wire_type(annotation.spec, context)
    spec = _ndarray_spec(annotation)
    if spec is not None:
        return tensor_wire_type(spec, context)
    try:
        return _NUMPY_SCALARS.get(annotation)
    except TypeError:  # an unhashable annotation is none of ours
        return None


@hookimpl(trylast=True)
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    return [
        ArrayConverter(np.ndarray, np.asarray),
        ArrayConverter(np.generic, np.asarray),
        ArrayConverter(list, np.asarray),
        ArrayConverter(tuple, np.asarray),
        ArrayConverter(int, np.asarray),
        ArrayConverter(float, np.asarray),
        ArrayConverter(bool, np.asarray),
    ]
