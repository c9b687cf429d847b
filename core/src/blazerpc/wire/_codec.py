"""Per-model request decoder and response encoder, built once at start-up.

Decoding parses the request with its generated class and runs each field's converter;
encoding fills the response's ordinary fields through protobuf and appends fields that
serialize themselves (tensors) as raw bytes: a message's fields may come in any order,
so the concatenation is a valid message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from google.protobuf.message import DecodeError, Message

from ..exceptions import InferenceError, InvalidInputError, RequestError
from ._proto_text import SCALAR_TYPE_NAMES
from ._scan import RawTensor, split_fields
from ._schema import FieldSchema, MethodSchema
from ._tensor import TENSOR_MESSAGE, field_header

__all__ = ["RequestDecoder", "ResponseEncoder", "default_problem", "split_result"]

_MESSAGE = FieldDescriptorProto.TYPE_MESSAGE


def _tensor_reader(f: FieldSchema) -> Callable[[Message, dict[int, RawTensor]], Any]:
    """Reads a TensorProto field from the tensors cut out of the request, in place."""
    number, convert = f.number, f.wire.decode
    assert convert is not None
    required = f.required
    absent = f.default if f.has_default else None

    def read(msg: Message, tensors: dict[int, RawTensor]) -> Any:
        raw = tensors.get(number)
        if raw is None:
            if required:
                raise InvalidInputError("is required but was not set")
            return absent
        return convert(raw)

    return read


def _reader(f: FieldSchema, request_class: type[Message]) -> Callable[[Message, dict[int, RawTensor]], Any]:
    """A function reading field ``f`` of a ``request_class`` message as the model's argument."""
    if f.wire.message == TENSOR_MESSAGE and f.wire.decode is not None:
        return _tensor_reader(f)
    return _plain_reader(f, request_class)


def _plain_reader(
    f: FieldSchema, request_class: type[Message]
) -> Callable[[Message, dict[int, RawTensor]], Any]:
    """Reads an ordinary field (the tensors cut out of the request are not its concern)."""
    name, wire = f.name, f.wire
    convert = wire.decode
    absent = f.default if f.has_default else None

    if wire.repeated:
        if convert is None:
            return lambda msg, tensors: list(getattr(msg, name))
        return lambda msg, tensors: convert(list(getattr(msg, name)))
    # Every singular request field has presence (scalars are proto3 ``optional``).
    if wire.proto_type != _MESSAGE and f.required:
        return _required_scalar_reader(f, request_class.HasField)
    required = f.required  # a message field the request must carry

    def read_present(msg: Message, tensors: dict[int, RawTensor]) -> Any:
        if not msg.HasField(name):
            if required:
                raise InvalidInputError("is required but was not set")
            return absent
        value = getattr(msg, name)
        return value if convert is None else convert(value)

    return read_present


_TYPE_NAMES: dict[int, str] = {int(kind): name for kind, name in SCALAR_TYPE_NAMES.items()}
#: How a field's zero reads in protobuf JSON, for the message on a missing scalar.
_ZERO: dict[int, str] = {
    **{kind: "0" for kind, name in _TYPE_NAMES.items() if "int" in name or "fixed" in name},
    FieldDescriptorProto.TYPE_STRING: '""',
    FieldDescriptorProto.TYPE_BYTES: '""',
    FieldDescriptorProto.TYPE_BOOL: "false",
    FieldDescriptorProto.TYPE_DOUBLE: "0.0",
    FieldDescriptorProto.TYPE_FLOAT: "0.0",
}


def _missing_scalar_message(f: FieldSchema) -> str:
    """What a request without required scalar ``f`` is told (after ``field 'name': ``):
    ``is required but was not set: send it as int64 (0 is a value; null means not set)``."""
    proto, zero = _TYPE_NAMES.get(f.wire.proto_type), _ZERO.get(f.wire.proto_type)
    what = f" as {proto}" if proto else ""
    note = f"{zero} is a value; null means not set" if zero else "null means not set"
    return f"is required but was not set: send it{what} ({note})"


def _required_scalar_reader(
    f: FieldSchema, has_field: Callable[[Message, str], bool]
) -> Callable[[Message, dict[int, RawTensor]], Any]:
    """Reads a required singular scalar; the field has presence, so a request that did
    not send it (rather than sent 0) is refused. One ``HasField`` more than a plain read:
    the class's own, unbound (no bound method made per call)."""
    name, convert = f.name, f.wire.decode
    missing = _missing_scalar_message(f)

    if convert is None:

        def read(msg: Message, tensors: dict[int, RawTensor]) -> Any:
            if not has_field(msg, name):
                raise InvalidInputError(missing)
            return getattr(msg, name)

        return read

    def read_converted(msg: Message, tensors: dict[int, RawTensor]) -> Any:
        if not has_field(msg, name):
            raise InvalidInputError(missing)
        return convert(getattr(msg, name))

    return read_converted


class RequestDecoder:
    """Request bytes -> the model's positional arguments."""

    def __init__(self, method: MethodSchema, request_class: type[Message]) -> None:
        self._parse = request_class.FromString
        self._message_name = f"blazerpc.{method.request}"
        self._readers = [(f.name, _reader(f, request_class)) for f in method.inputs]
        self._tensor_numbers = {
            f.number: f.name
            for f in method.inputs
            if f.wire.message == TENSOR_MESSAGE and f.wire.decode is not None
        }
        self._shared_dims = _shared_dims(method.inputs)

    def __call__(self, data: bytes) -> list[Any]:
        tensors: dict[int, RawTensor] = {}
        if self._tensor_numbers:
            data, tensors = split_fields(data, self._tensor_numbers)
        try:
            msg = self._parse(data)
        except DecodeError as exc:
            raise InvalidInputError(f"request is not a valid {self._message_name} message: {exc}") from None
        args = []
        for name, read in self._readers:
            try:
                args.append(read(msg, tensors))
            except InvalidInputError as exc:
                raise InvalidInputError(f"field '{name}': {exc.message}") from None
        if self._shared_dims:
            self._check_shared_dims(args)
        return args

    def _check_shared_dims(self, args: list[Any]) -> None:
        seen: dict[str, tuple[int, str]] = {}
        for index, axis, dim, name in self._shared_dims:
            value = args[index]
            if value is None:
                continue
            size = value.shape[axis]
            first = seen.setdefault(dim, (size, name))
            if first[0] != size:
                raise InvalidInputError(
                    f"dimension {dim!r} is {first[0]} in field '{first[1]}' but {size} in field '{name}'"
                )


def _shared_dims(fields: tuple[FieldSchema, ...]) -> list[tuple[int, int, str, str]]:
    """(argument index, axis, dimension name, field name) for named dims used twice or more."""
    uses: dict[str, list[tuple[int, int, str, str]]] = {}
    for index, f in enumerate(fields):
        spec = f.wire.tensor
        if spec is None or spec.dims is None or f.wire.decode is None:
            continue
        for axis, dim in enumerate(spec.dims):
            if isinstance(dim, str):
                uses.setdefault(dim, []).append((index, axis, dim, f.name))
    return [use for group in uses.values() if len(group) > 1 for use in group]


def split_result(method: MethodSchema, result: Any) -> list[Any]:
    """The model's return value as one value per response field.

    A plain result is the one field's value. A tuple result gives the fields in order;
    named fields come from a mapping (by key) or an object with those attributes (a
    dataclass, a named tuple).
    """
    outputs = method.outputs
    if method.result_kind == "value":
        return [result]
    if method.result_kind == "tuple":
        if not isinstance(result, tuple) or len(result) != len(outputs):
            got = f"a tuple of {len(result)} values" if isinstance(result, tuple) else type(result).__name__
            raise InferenceError(f"model returned {got}, expected {len(outputs)}")
        return list(result)
    if isinstance(result, dict):
        missing = [f.name for f in outputs if f.name not in result]
        if missing:
            raise InferenceError(f"model returned a dict without {missing}")
        return [result[f.name] for f in outputs]
    if dataclasses.is_dataclass(result) or hasattr(result, "_fields"):
        try:
            return [getattr(result, f.name) for f in outputs]
        except AttributeError as exc:
            raise InferenceError(f"model returned {type(result).__name__} without {exc.name!r}") from None
    raise InferenceError(
        f"model returned {type(result).__name__}, expected {len(outputs)} values "
        f"({', '.join(f.name for f in outputs)})"
    )


class ResponseEncoder:
    """The model's result -> response bytes."""

    def __init__(self, method: MethodSchema, response_class: type[Message]) -> None:
        self._method = method
        self._new = response_class
        self._fields = [(f, self._writer(f)) for f in method.outputs]
        self._single = self._single_value(method, response_class)

    @staticmethod
    def _writer(f: FieldSchema) -> Callable[[Message, Any, list[bytes]], None]:
        name, wire = f.name, f.wire
        convert = wire.encode
        if wire.encode_bytes is not None:
            to_bytes = wire.encode_bytes

            def write_raw(msg: Message, value: Any, raw: list[bytes]) -> None:
                body = to_bytes(value)
                raw.append(field_header(f.number, len(body)))
                raw.append(body)

            return write_raw
        if wire.repeated:
            return lambda msg, value, raw: getattr(msg, name).extend(
                value if convert is None else convert(value)
            )
        if wire.proto_type == _MESSAGE:
            return lambda msg, value, raw: getattr(msg, name).CopyFrom(
                value if convert is None else convert(value)
            )

        def write(msg: Message, value: Any, raw: list[bytes]) -> None:
            if type(value) is np.ndarray and value.ndim == 0:
                value = value[()]  # a framework's 0-d result is the scalar it holds
            setattr(msg, name, value if convert is None else convert(value))

        return write

    def _single_value(
        self, method: MethodSchema, response_class: type[Message]
    ) -> Callable[[Any], bytes] | None:
        """For the commonest response, one plain field holding the result: its writer
        alone, without splitting the result and walking the fields. Anything unusual
        (None, a value it refuses) goes the general way, for the same errors."""
        if method.result_kind != "value":
            return None
        ((f, write),) = self._fields
        if f.wire.encode_bytes is not None or f.wire.proto_type == _MESSAGE:
            return None
        new, serialize, general = response_class, response_class.SerializeToString, self.fields
        unused: list[bytes] = []  # plain fields write no raw bytes
        errors = (InferenceError, TypeError, ValueError, OverflowError)

        def encode(result: Any) -> bytes:
            if result is None:
                return general([result])
            msg = new()
            try:
                write(msg, result, unused)
            except errors:
                return general([result])
            return serialize(msg)

        return encode

    def __call__(self, result: Any) -> bytes:
        """Encode what the model returned."""
        if self._single is not None:
            return self._single(result)
        return self.fields(split_result(self._method, result))

    def fields(self, values: list[Any]) -> bytes:
        """Encode one value per response field."""
        msg = self._new()
        raw: list[bytes] = []
        for (f, write), value in zip(self._fields, values, strict=True):
            if value is None:
                if f.wire.optional:
                    continue
                raise InferenceError(f"model returned None for field '{f.name}' ({f.wire.describe})")
            try:
                write(msg, value, raw)
            except InferenceError as exc:
                raise InferenceError(f"field '{f.name}': {exc.message}") from None
            except (TypeError, ValueError, OverflowError) as exc:
                raise InferenceError(
                    f"model returned {type(value).__name__} for field '{f.name}', "
                    f"expected {f.wire.describe}: {exc}"
                ) from None
        if not raw:
            return msg.SerializeToString()
        return b"".join([msg.SerializeToString(), *raw])


def _plain_value_fits(default: Any, decoded: Any) -> bool:
    """A default of a field without converters is what the model gets from protobuf: a
    ``str``, ``bytes``, ``int``, ``bool`` or ``float`` (which an ``int`` may stand for)."""
    if type(decoded) is float:
        return isinstance(default, (int, float)) and not isinstance(default, bool)
    return isinstance(default, type(decoded))


def default_problem(f: FieldSchema, request_class: type[Message]) -> str | None:
    """Why request field ``f``'s default is not a value of the field's type, or None.

    The default goes through the field's own converters, as a value of that type would:
    encoded into the field (the converter's and protobuf's checks), then read back as
    the model would receive it. A field whose converter only decodes (a plugin type
    with no encoder) cannot be checked this way and is accepted.
    """
    wire = f.wire
    if f.default is None or (wire.decode is not None and wire.encode is None and wire.encode_bytes is None):
        return None
    msg = request_class()
    raw: list[bytes] = []
    try:
        ResponseEncoder._writer(f)(msg, f.default, raw)
        data = b"".join([msg.SerializeToString(), *raw])
        tensors: dict[int, RawTensor] = {}
        if wire.message == TENSOR_MESSAGE and wire.decode is not None:
            data, tensors = split_fields(data, {f.number: f.name})
        decoded = _reader(f, request_class)(request_class.FromString(data), tensors)
    except RequestError as exc:
        # Encoders word their errors for a model's results ("model returned 300, out of
        # range for int8"); here the value is the default.
        return exc.message.replace("model returned", "it is", 1)
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if wire.decode is None and not wire.repeated and not _plain_value_fits(f.default, decoded):
        return f"it is {type(f.default).__name__}, but the field gives the model {type(decoded).__name__}"
    return None
