"""Helpers that build :class:`WireType` values, for core's built-ins and for plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from ..types import TensorSpec
from ._fields import BatchAxis, FieldContext, WireType
from ._tensor import TENSOR_MESSAGE, decode_tensor, encode_tensor, tensor_message_proto

__all__ = ["scalar_wire_type", "tensor_wire_type"]

_TENSOR_MESSAGES = (tensor_message_proto(),)


def _concat_arrays(values: list[np.ndarray]) -> np.ndarray:
    return values[0] if len(values) == 1 else np.concatenate(values, axis=0)


def _array_key(value: np.ndarray) -> tuple[str, tuple[int, ...]]:
    return value.dtype.str, value.shape[1:]


#: Batching for numpy arrays whose first axis is the batch axis.
ARRAY_BATCH_AXIS = BatchAxis(concat=_concat_arrays, key=_array_key)


def scalar_wire_type(
    proto_type: int,
    describe: str,
    *,
    decode: Callable[[Any], Any] | None = None,
    encode: Callable[[Any], Any] | None = None,
) -> WireType:
    """A singular scalar field (``string``, ``int64``, ``double``, ...)."""
    return WireType(proto_type=proto_type, describe=describe, decode=decode, encode=encode)


def tensor_wire_type(
    spec: TensorSpec,
    context: FieldContext,
    *,
    from_array: Callable[[np.ndarray], Any] | None = None,
    describe: str | None = None,
    batch: BatchAxis | None = None,
) -> WireType:
    """A ``TensorProto`` field checked against ``spec``.

    The model receives a read-only ``np.ndarray`` that is a view of the request's own
    bytes (no copy), or ``from_array(array)`` when given
    (a framework plugin passes ``torch.from_numpy`` and the like). What the model returns
    is turned into an array by ``context.to_array``, so any type a plugin registered an
    array converter for is accepted.

    When ``spec``'s first dimension is ``"batch"`` the field can be batched: numpy
    arrays are concatenated along axis 0. With ``from_array``, pass ``batch`` to say how
    the converted values are joined (``torch.cat``, ...).
    """
    to_array = context.to_array

    if from_array is None:

        def decode(tensor: Any) -> Any:
            return decode_tensor(tensor, spec)

    else:
        convert = from_array

        def decode(tensor: Any) -> Any:
            return convert(decode_tensor(tensor, spec))

    def encode_bytes(value: Any) -> bytes:
        return encode_tensor(value, spec, to_array)

    return WireType(
        proto_type=FieldDescriptorProto.TYPE_MESSAGE,
        describe=describe or spec.describe(),
        message=TENSOR_MESSAGE,
        messages=_TENSOR_MESSAGES,
        decode=decode,
        encode_bytes=encode_bytes,
        tensor=spec,
        batch=(batch or (ARRAY_BATCH_AXIS if from_array is None else None)) if spec.batch_axis else None,
    )
