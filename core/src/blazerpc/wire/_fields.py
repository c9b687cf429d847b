"""The contract between type-mapping plugins and the schema builder."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from google.protobuf.descriptor_pb2 import DescriptorProto

from ..types import TensorSpec

__all__ = ["ArrayConverter", "BatchAxis", "FieldContext", "WireType"]


@dataclass(frozen=True)
class BatchAxis:
    """How the decoded values of a field with a batch axis are joined and split.

    ``concat`` joins the values of several requests into one (in order); ``key`` says
    which values may be joined at all (requests whose keys differ never share a batch:
    tensors with different trailing dimensions, say). Results are split back by
    slicing, ``value[start:stop]``, after checking ``len(value)``.
    """

    concat: Callable[[list[Any]], Any]
    rows: Callable[[Any], int] = len
    key: Callable[[Any], Hashable] | None = None


@dataclass(frozen=True)
class WireType:
    """How values of one Python annotation travel in one protobuf field.

    A type-mapping plugin returns one of these from ``blazerpc_map_type``. Converters run
    on every request, so keep them cheap; they raise
    :class:`~blazerpc.exceptions.InvalidInputError` (decode) or
    :class:`~blazerpc.exceptions.InferenceError` (encode) with a message saying what was
    wrong. The field name is added by the caller.

    Attributes:
        proto_type: the field's ``FieldDescriptorProto.TYPE_*``.
        describe: how the type reads in error messages and listings (``"list[float]"``).
        repeated: a ``repeated`` field; converters then see and return whole lists.
        optional: the field may be absent: the model then gets ``None`` (or the
            parameter's default). A request field without it (and without a default) is
            required: a request that leaves it out is refused. Every singular scalar of a
            request has presence (proto3 ``optional``) either way, so that a 0 sent is
            told from none; in a response, only ``optional`` ones do.
        message: for ``TYPE_MESSAGE``, the message's name inside the ``blazerpc`` package.
        messages: message definitions this type needs in the schema (``TensorProto``, ...).
        decode: wire value (a Python scalar, list or message object) -> model value.
            A ``TensorProto`` field's decode receives the tensor read in place: an object
            with ``shape`` (list of ints), ``dtype`` (str) and ``data`` (bytes-like).
        encode: model value -> value assignable to the field; for message fields, a
            message object to copy in.
        encode_bytes: for message fields, model value -> the serialized message. Takes
            precedence over ``encode``; lets large payloads skip protobuf's copies.
        tensor: the tensor this field carries, if it is one (shape and dtype checks).
        batch: how values of this field stack along a batch axis, if they have one (a
            list, or a tensor whose first dimension is ``"batch"``). A model whose
            inputs and outputs all have one can be batched.
    """

    proto_type: int
    describe: str
    repeated: bool = False
    optional: bool = False
    message: str | None = None
    messages: tuple[DescriptorProto, ...] = ()
    decode: Callable[[Any], Any] | None = None
    encode: Callable[[Any], Any] | None = None
    encode_bytes: Callable[[Any], bytes] | None = None
    tensor: TensorSpec | None = None
    batch: BatchAxis | None = None


@dataclass(frozen=True)
class FieldContext:
    """Where an annotation is being mapped.

    Attributes:
        model: the model's name.
        name: the parameter's name, or the response field's name.
        direction: ``"input"`` for a request field, ``"output"`` for a response field.
        resolve: maps another annotation through the same plugins (for wrappers such as
            ``list[T]`` or ``T | None`` that delegate their element type).
        to_array: turns a value a model returns for a tensor field (an ``np.ndarray``, a
            ``torch.Tensor``, a list...) into an ``np.ndarray``, using the converters
            plugins contribute through ``blazerpc_array_converters``.
    """

    model: str
    name: str
    direction: Literal["input", "output"]
    resolve: Callable[[Any], WireType] = field(repr=False, compare=False)
    to_array: Callable[[Any], np.ndarray] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ArrayConverter:
    """Turns values of ``type`` (and its subclasses) into ``np.ndarray``.

    Contributed through ``blazerpc_array_converters``; used when a model returns such a
    value for a tensor field.
    """

    type: type
    to_array: Callable[[Any], np.ndarray]
