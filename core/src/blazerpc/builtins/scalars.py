"""Python's own types: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list[T]``, ``T | None``."""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from ..exceptions import TypeMappingError
from ..hookspecs import hookimpl
from ..wire import BatchAxis, FieldContext, WireType, scalar_wire_type


def _to_bytes(value: Any) -> bytes:
    return value if type(value) is bytes else bytes(value)


_SCALARS: dict[Any, WireType] = {
    str: scalar_wire_type(F.TYPE_STRING, "str"),
    int: scalar_wire_type(F.TYPE_INT64, "int"),
    float: scalar_wire_type(F.TYPE_DOUBLE, "float"),
    bool: scalar_wire_type(F.TYPE_BOOL, "bool"),
    bytes: scalar_wire_type(F.TYPE_BYTES, "bytes", encode=_to_bytes),
}


def _concat_lists(values: list[list[Any]]) -> list[Any]:
    return values[0] if len(values) == 1 else list(itertools.chain.from_iterable(values))


#: A list is a batch of its items.
_LIST_BATCH_AXIS = BatchAxis(concat=_concat_lists)


def _repeated(inner: WireType, context: FieldContext) -> WireType:
    if inner.repeated:
        raise TypeMappingError(
            f"model {context.model!r}: field {context.name!r}: a list of lists has no protobuf "
            "form; use a tensor (TensorInput / TensorOutput) for nested data"
        )
    if inner.proto_type == F.TYPE_MESSAGE:
        raise TypeMappingError(
            f"model {context.model!r}: field {context.name!r}: a list of {inner.describe} is not "
            "supported; use one tensor with a leading batch dimension"
        )
    decode_item, encode_item = inner.decode, inner.encode

    def decode_items(values: list[Any]) -> list[Any]:
        assert decode_item is not None
        return [decode_item(v) for v in values]

    def encode(values: Any) -> Any:
        if hasattr(values, "tolist"):  # an ndarray: one conversion to Python scalars
            values = values.tolist()
        return values if encode_item is None else [encode_item(v) for v in values]

    return dataclasses.replace(
        inner,
        describe=f"list[{inner.describe}]",
        repeated=True,
        decode=None if decode_item is None else decode_items,  # None: the list as protobuf gives it
        encode=encode,
        batch=_LIST_BATCH_AXIS,
    )


@hookimpl(trylast=True)
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    try:
        wire = _SCALARS.get(annotation)
    except TypeError:  # an unhashable annotation is none of ours
        return None
    if wire is not None:
        return wire
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, typing.List) and len(args) == 1:  # noqa: UP006
        return _repeated(context.resolve(args[0]), context)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return None
        inner = context.resolve(rest[0])
        if inner.repeated:
            raise TypeMappingError(
                f"model {context.model!r}: field {context.name!r}: {inner.describe} | None has no "
                "protobuf form (a repeated field has no presence); an empty list already means "
                "'no values'"
            )
        return dataclasses.replace(inner, describe=f"{inner.describe} | None", optional=True)
    return None
