"""Python values -> request fields. What a field cannot hold is refused before anything
is sent, with one message (:class:`ClientInputError`) for the client and ``blaze call``."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ..types import TENSOR_DTYPES
from ..wire._proto_text import SCALAR_TYPE_NAMES
from ..wire._tensor import cast_exactly
from ._errors import ClientInputError

if TYPE_CHECKING:
    from ._schema import FieldInfo

__all__ = ["Refusal", "encode_array", "fill_field", "input_refusal", "show", "unknown_input"]

_FD = FieldDescriptor
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT32 = (0, 2**32 - 1)
_UINT64 = (0, 2**64 - 1)
#: The range of each integer field type.
_INT_RANGES = {
    _FD.TYPE_INT32: _INT32,
    _FD.TYPE_SINT32: _INT32,
    _FD.TYPE_SFIXED32: _INT32,
    _FD.TYPE_ENUM: _INT32,
    _FD.TYPE_INT64: _INT64,
    _FD.TYPE_SINT64: _INT64,
    _FD.TYPE_SFIXED64: _INT64,
    _FD.TYPE_UINT32: _UINT32,
    _FD.TYPE_FIXED32: _UINT32,
    _FD.TYPE_UINT64: _UINT64,
    _FD.TYPE_FIXED64: _UINT64,
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_TYPE_NAMES: dict[int, str] = {int(kind): name for kind, name in SCALAR_TYPE_NAMES.items()}


class _Repr(reprlib.Repr):
    """Short reprs; a dict's keys in their own order (reprlib sorts them)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in list(x.items())[: self.maxdict]
        ]
        return "{" + ", ".join(items) + (", ...}" if len(x) > self.maxdict else "}")


_repr = _Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = 6
_repr.maxdict = 4
_repr.maxstring = _repr.maxother = 40


class Refusal(Exception):
    """Why a value cannot fill a field (``None``: it is not of the field's type at all)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: Any) -> str:
    """A value as a refusal names it: ``1.5 (float)``, ``a float64 array of shape [2, 3]``."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {list(value.shape)}"
    return f"{_repr.repr(value)} ({type(value).__name__})"


def input_refusal(
    model: str, name: str, expected: str, value: Any, reason: str | None = None
) -> ClientInputError:
    """``input 'n' of model 'generate' expects int64, got 1.5 (float)[: reason]``."""
    text = f"input {name!r} of model {model!r} expects {expected}, got {show(value)}"
    if reason:
        text += f": {reason}"
    return ClientInputError(text, model=model, field=name, expected=expected, value=value)


def unknown_input(model: str, name: str, known: Iterable[str]) -> ClientInputError:
    listed = ", ".join(known) or "none"
    return ClientInputError(
        f"model {model!r} has no input {name!r} (its inputs: {listed})", model=model, field=name
    )


def fill_field(msg: Message, field: FieldDescriptor, info: FieldInfo, value: Any, model: str) -> None:
    """Set ``field`` of ``msg`` to ``value``; :class:`ClientInputError` if it cannot hold it."""
    try:
        _fill(msg, field, info, value)
    except Refusal as exc:
        raise input_refusal(model, info.name, info.describe, value, exc.reason) from None


def _fill(msg: Message, field: FieldDescriptor, info: FieldInfo, value: Any) -> None:
    name = field.name
    tensor = info.type == "tensor"
    if not info.repeated:
        if tensor:
            fill_tensor(getattr(msg, name), value, info.dtype)
        elif field.type == _FD.TYPE_MESSAGE:
            _fill_message(getattr(msg, name), value)
        else:
            _set(lambda v: setattr(msg, name, v), _scalar(field, value))
        return
    target = getattr(msg, name)
    items = _items(value, keep_arrays=tensor)
    plain = []
    for index, item in enumerate(items):
        try:
            if tensor:
                fill_tensor(target.add(), item, info.dtype)
            elif field.type == _FD.TYPE_MESSAGE:
                _fill_message(target.add(), item)
            else:
                plain.append(_scalar(field, item))
        except Refusal as exc:
            raise Refusal(
                f"item {index} is {show(item)}" + (f": {exc.reason}" if exc.reason else "")
            ) from None
    if plain:
        _set(target.extend, plain)


def _set(setter: Any, value: Any) -> None:
    try:
        setter(value)
    except (TypeError, ValueError) as exc:  # checked above; what protobuf still refuses (bad UTF-8)
        raise Refusal(str(exc)) from None


def _items(value: Any, *, keep_arrays: bool) -> list[Any]:
    if isinstance(value, np.ndarray) and value.ndim:
        return list(value) if keep_arrays else value.tolist()
    if isinstance(value, str | bytes | bytearray | Mapping | np.ndarray) or not isinstance(value, Iterable):
        raise Refusal()
    return list(value)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    kind = field.type
    boolean = isinstance(value, bool | np.bool_)
    if kind == _FD.TYPE_ENUM and isinstance(value, str) and field.enum_type is not None:
        names = field.enum_type.values_by_name
        if value not in names:
            raise Refusal(f"not one of {', '.join(names)}")
        return names[value].number
    if kind in _INT_RANGES:
        if boolean or not isinstance(value, int | np.integer):
            raise Refusal()
        low, high = _INT_RANGES[kind]
        if not low <= int(value) <= high:
            raise Refusal(f"outside {_TYPE_NAMES.get(kind, 'enum')}'s [{low}, {high}]")
        return int(value)
    if kind in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        if boolean or not isinstance(value, int | float | np.integer | np.floating):
            raise Refusal()
        try:
            number = float(value)
        except OverflowError:
            raise Refusal(f"too large for {_TYPE_NAMES[kind]}") from None
        if kind == _FD.TYPE_FLOAT and math.isfinite(number) and abs(number) > _FLOAT32_MAX:
            raise Refusal(f"it would become inf in float (largest finite: {_FLOAT32_MAX:g})")
        return number
    if kind == _FD.TYPE_BOOL:
        if not boolean:
            raise Refusal()
        return bool(value)
    if kind == _FD.TYPE_STRING:
        if not isinstance(value, str):
            raise Refusal()
        return str(value)
    if kind == _FD.TYPE_BYTES:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise Refusal()
        return bytes(value)
    return value


def _fill_message(target: Message, value: Any) -> None:
    try:
        if isinstance(value, Message):
            target.CopyFrom(value)
        elif isinstance(value, Mapping):
            json_format.ParseDict(dict(value), target)
        else:
            raise Refusal()
    except (TypeError, json_format.ParseError) as exc:
        raise Refusal(str(exc)) from None


def fill_tensor(tensor: Any, value: Any, dtype: str | None) -> None:
    """A ``TensorProto`` from an array-like (see :func:`encode_array`), or from a mapping
    of the message's own fields (``shape``, ``dtype``, ``data``), which is sent as given."""
    shape: Sequence[int]
    if isinstance(value, Mapping):
        shape, name, data = _wire_tensor(value)
    else:
        shape, name, data = encode_array(value, dtype)
    tensor.shape.extend(shape)
    tensor.dtype = name
    tensor.data = data


def _wire_tensor(value: Mapping[str, Any]) -> tuple[list[int], str, bytes]:
    if set(value) != {"shape", "dtype", "data"}:
        raise Refusal(f"a tensor given as a mapping has the keys shape, dtype and data, not {sorted(value)}")
    shape, dtype, data = value["shape"], value["dtype"], value["data"]
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise Refusal(f"its shape must be a list of sizes >= 0, got {shape!r}")
    if not isinstance(dtype, str):
        raise Refusal(f"its dtype must be a dtype name such as 'float32', got {dtype!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Refusal(f"its data must be bytes, got {type(data).__name__}")
    return [int(d) for d in shape], dtype, bytes(data)


def encode_array(value: Any, dtype: str | None = None) -> tuple[tuple[int, ...], str, bytes]:
    """An array-like as a tensor's (shape, dtype, data): little-endian, C order.

    With ``dtype`` (the field's declared one), nested lists and arrays of another dtype
    of a compatible kind are converted to it (``[[1, 2]]`` to ``float32``; ``float64``
    to ``float32``); a value that would change kind (``1.5`` to ``int32``) or would not
    survive the cast (``300`` to ``int8``, ``1e40`` to ``float32``) is refused
    (:class:`Refusal`).
    """
    try:
        array = np.asarray(value)
    except ValueError as exc:
        ragged = "inhomogeneous" in str(exc)
        raise Refusal("nested lists of different lengths" if ragged else str(exc)) from None
    if array.dtype.kind not in "biufc":
        raise Refusal("not an array of numbers")
    if dtype is not None:
        try:
            array = cast_exactly(array, TENSOR_DTYPES[dtype])
        except ValueError as exc:
            raise Refusal(str(exc)) from None
    name = array.dtype.name
    if name not in TENSOR_DTYPES:
        raise Refusal(f"a tensor cannot hold dtype {array.dtype} (supported: {', '.join(TENSOR_DTYPES)})")
    # The wire is little-endian: a no-op for a little-endian array (on any host).
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return array.shape, name, array.tobytes(order="C")
