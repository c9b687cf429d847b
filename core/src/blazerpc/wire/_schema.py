"""Method schemas -> one ``FileDescriptorProto`` -> a descriptor pool and message classes.

The file built here is the single source of truth: the messages on the wire, the
descriptors served by reflection and the text written by ``blaze proto`` all come from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto, FileDescriptorProto
from google.protobuf.message import Message

from ..exceptions import ModelRegistrationError
from ._fields import WireType

__all__ = [
    "FILE_NAME",
    "PACKAGE",
    "SERVICE",
    "FieldSchema",
    "MethodSchema",
    "Schema",
    "base_name",
    "build_schema",
    "field_name_problems",
    "field_path",
    "leading_comments",
    "method_comment",
    "method_path",
    "parse_method_comment",
    "parse_required_comment",
    "parse_tensor_comment",
    "required_comment",
    "tensor_comment",
]

PACKAGE = "blazerpc"
SERVICE = "InferenceService"
FILE_NAME = "blaze_service.proto"

_NO_DEFAULT: Any = object()

# Field numbers of FileDescriptorProto.message_type / .service, DescriptorProto.field and
# ServiceDescriptorProto.method: the steps of a SourceCodeInfo location's path.
_MESSAGE_TYPE, _SERVICE, _FIELD, _METHOD = 4, 6, 2, 2


def field_path(message: int, field: int) -> tuple[int, ...]:
    """The source location path of field ``field`` of the file's message ``message``."""
    return (_MESSAGE_TYPE, message, _FIELD, field)


def method_path(service: int, method: int) -> tuple[int, ...]:
    """The source location path of method ``method`` of the file's service ``service``."""
    return (_SERVICE, service, _METHOD, method)


def leading_comments(file: FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """A file's leading comments by source location path."""
    return {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}


def base_name(model: str, version: str | None) -> str:
    """The name a model's RPC and messages are built on: ``text-embed`` is ``TextEmbed``,
    version ``"1.5"`` of it ``TextEmbedV1_5`` (``None``: no version in the name)."""
    base = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", model) if part)
    return base if version is None else f"{base}V{version.replace('.', '_')}"


@dataclass(frozen=True)
class FieldSchema:
    """One field of a request or response message."""

    name: str
    number: int
    wire: WireType
    default: Any = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    @property
    def required(self) -> bool:
        """A request without this field is refused: it is singular, not ``T | None`` and
        has no default. (A list has no presence: absent, it is an empty list.)"""
        return not self.wire.repeated and not self.wire.optional and not self.has_default


@dataclass(frozen=True)
class MethodSchema:
    """One model's RPC: its name, its messages and their fields (public as
    ``blazerpc.wire.MethodSchema``; ``ServerInfo.methods`` lists them).

    ``model`` and ``version`` are the model's; ``rpc`` is the method's name
    (``PredictSentiment``), ``request`` and ``response`` its messages' names, ``inputs``
    and ``outputs`` their fields (:class:`FieldSchema`).
    """

    model: str
    version: str
    rpc: str
    request: str
    response: str
    inputs: tuple[FieldSchema, ...]
    outputs: tuple[FieldSchema, ...]
    streaming: bool
    #: How the model's return value holds the outputs: the value itself (one field,
    #: ``result``), a tuple (``result_0``...), or named fields (a TypedDict, dataclass
    #: or NamedTuple).
    result_kind: Literal["value", "tuple", "fields"] = "value"
    #: The first paragraph of the model function's docstring, for the schema's comments.
    doc: str = ""

    @property
    def path(self) -> str:
        """The gRPC path, ``/blazerpc.InferenceService/PredictSentiment``."""
        return f"/{PACKAGE}.{SERVICE}/{self.rpc}"


@dataclass(frozen=True)
class Schema:
    """The generated file, the pool that holds it and its message classes (public as
    ``blazerpc.wire.Schema``; ``BlazeApp.schema()`` returns one).

    ``file`` is ``blaze_service.proto``; ``pool`` holds it (and the health and reflection
    files: reflection serves this pool); ``methods`` has one :class:`MethodSchema` per
    model; ``classes`` are the message classes by message name (``SentimentRequest``).
    """

    file: FileDescriptorProto
    pool: descriptor_pool.DescriptorPool
    methods: tuple[MethodSchema, ...]
    classes: dict[str, type[Message]]


def _field_proto(msg: DescriptorProto, f: FieldSchema, presence: bool) -> None:
    wire = f.wire
    fp = msg.field.add(name=f.name, number=f.number, type=wire.proto_type)
    fp.json_name = _json_name(f.name)
    fp.label = FieldDescriptorProto.LABEL_REPEATED if wire.repeated else FieldDescriptorProto.LABEL_OPTIONAL
    if wire.proto_type == FieldDescriptorProto.TYPE_MESSAGE:
        fp.type_name = f".{PACKAGE}.{wire.message}"
    elif wire.optional or (presence and not wire.repeated):
        fp.proto3_optional = True
        fp.oneof_index = len(msg.oneof_decl)
        msg.oneof_decl.add(name=f"_{f.name}")


def _json_name(name: str) -> str:
    """protobuf's JSON name of a field: ``a_b`` -> ``aB`` (``ToJsonName`` in protoc)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_name_problems(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, why)`` for each of one message's field names that protobuf rejects: not
    an ASCII identifier, or the same JSON name (``a_b`` and ``aB`` are both ``aB``) as
    an earlier field. Protobuf's keywords (``message``, ``optional``...) are fine."""
    problems = []
    seen: dict[str, str] = {}
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            problems.append(
                (
                    name,
                    "is not a protobuf field name: use ASCII letters, digits and '_', "
                    "not starting with a digit",
                )
            )
            continue
        json_name = _json_name(name)
        other = seen.setdefault(json_name, name)
        if other != name:
            problems.append(
                (
                    name,
                    f"has the JSON name {json_name!r} of {other!r} (JSON names drop '_' and capitalize the "
                    "letter after it); rename one of them",
                )
            )
    return problems


def _message(name: str, fields: Sequence[FieldSchema], *, request: bool) -> DescriptorProto:
    """A request or response message. Every singular scalar of a request has presence
    (proto3 ``optional``): that is how the server tells a field that was not sent from
    one sent as 0, ``""`` or ``false``, and refuses a request without a required one."""
    msg = DescriptorProto(name=name)
    # Synthetic oneofs must follow every real one; we declare none, so order is free.
    for f in fields:
        _field_proto(msg, f, presence=request)
    return msg


def _shared_messages(methods: Sequence[MethodSchema]) -> list[DescriptorProto]:
    found: dict[str, DescriptorProto] = {}
    for method in methods:
        for f in (*method.inputs, *method.outputs):
            for definition in f.wire.messages:
                known = found.setdefault(definition.name, definition)
                if known != definition:
                    raise ModelRegistrationError(
                        f"two plugins define message {definition.name!r} differently "
                        f"(seen again on field {f.name!r} of model {method.model!r})"
                    )
    return list(found.values())


def method_comment(method: MethodSchema) -> str:
    """The comment above a model's RPC: its name and version, then its docstring.

    Clients read the first line back (``blazerpc.Client`` matches models by it), so
    its form is fixed: ``Model "<name>", version "<version>".``
    """
    text = f'Model "{method.model}", version "{method.version}".'
    if method.doc:
        text += "\n\n" + method.doc
    return text


def tensor_comment(wire: WireType) -> str | None:
    """The comment above a tensor field: its declared dtype and shape, which the wire
    type alone does not say. Clients read it back, so its form is fixed:
    ``float32, shape [batch, 3]``, ``uint8, any shape``, ``any dtype, shape [2]``."""
    spec = wire.tensor
    if spec is None:
        return None
    dtype = spec.dtype or "any dtype"
    shape = "any shape" if spec.dims is None else f"shape [{', '.join(str(d) for d in spec.dims)}]"
    return f"{dtype}, {shape}"


#: The comment line of a required request field (see :func:`required_comment`).
_REQUIRED = "Required: a request without it is refused"


def required_comment(f: FieldSchema) -> str | None:
    """The comment line above a required request field, which neither the wire type nor
    the label says (every request scalar is ``optional``, for presence). Clients read it
    back: a line starting ``Required:``."""
    if not f.required:
        return None
    if f.wire.proto_type == FieldDescriptorProto.TYPE_MESSAGE:
        return f"{_REQUIRED}."
    # The label says "optional": say why, and that a zero is a value like any other.
    return f'{_REQUIRED} ("optional" gives it presence: 0, "" and false are values).'


def parse_required_comment(comment: str) -> bool:
    """Whether a field's comment marks it required (:func:`required_comment`)."""
    return any(line.strip().startswith("Required:") for line in comment.splitlines())


_MODEL_COMMENT = re.compile(r'Model "(?P<name>[^"]+)", version "(?P<version>[^"]+)"\.')
_TENSOR_COMMENT = re.compile(r"(?P<dtype>\w+|any dtype), (?:any shape|shape \[(?P<dims>[^\]]*)\])")


def parse_method_comment(comment: str) -> tuple[str, str, str] | None:
    """(model, version, docstring) from an RPC's comment (:func:`method_comment`)."""
    text = comment.strip()
    found = _MODEL_COMMENT.match(text)
    if found is None:
        return None
    doc = "\n".join(line.strip() for line in text[found.end() :].strip().splitlines())
    return found["name"], found["version"], doc


def parse_tensor_comment(comment: str) -> tuple[str | None, tuple[int | str, ...] | None] | None:
    """(dtype or None for any, dims or None for any) from a tensor field's comment
    (:func:`tensor_comment`, its first line)."""
    lines = comment.strip().splitlines()
    found = _TENSOR_COMMENT.fullmatch(lines[0].strip()) if lines else None
    if found is None:
        return None
    dtype = None if found["dtype"] == "any dtype" else found["dtype"]
    if found["dims"] is None:
        return dtype, None
    return dtype, tuple(int(d) if d.isdigit() else d for d in found["dims"].split(", ") if d)


def _comment(text: str) -> str:
    # Protobuf keeps a comment's text after "//" as it is: one leading space per line.
    return "".join(f" {line}\n" if line else "\n" for line in text.splitlines())


def build_file(methods: Sequence[MethodSchema]) -> FileDescriptorProto:
    """The ``blaze_service.proto`` file for ``methods``.

    Its ``source_code_info`` carries the comments of ``blaze proto``'s text, which
    reflection serves too (grpcurl ``describe`` shows them): each RPC's model, version
    and docstring, each tensor field's dtype and shape, and which request fields are
    required.
    """
    file = FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    file.message_type.extend(_shared_messages(methods))
    service = file.service.add(name=SERVICE)
    info = file.source_code_info
    line = 0

    def comment(path: tuple[int, ...], text: str) -> None:
        # grpcurl shows leading comments only. Spans just order the locations: the
        # text is rendered from the descriptors, not from a source file.
        nonlocal line
        line += 1
        info.location.add(path=path, span=[line, 0, 1], leading_comments=_comment(text))

    for m in methods:
        for fields, name, request in ((m.inputs, m.request, True), (m.outputs, m.response, False)):
            index = len(file.message_type)
            file.message_type.append(_message(name, fields, request=request))
            for number, f in enumerate(fields):
                lines = [tensor_comment(f.wire), required_comment(f) if request else None]
                text = "\n".join(line for line in lines if line is not None)
                if text:
                    comment(field_path(index, number), text)
        rpc = service.method.add(
            name=m.rpc,
            input_type=f".{PACKAGE}.{m.request}",
            output_type=f".{PACKAGE}.{m.response}",
        )
        if m.streaming:
            rpc.server_streaming = True
        comment(method_path(0, len(service.method) - 1), method_comment(m))
    return file


def _standard_files() -> list[FileDescriptorProto]:
    """Files a reflection client may ask for by name besides ours."""
    from grpclib.health.v1 import health_pb2
    from grpclib.reflection.v1 import reflection_pb2 as reflection_v1
    from grpclib.reflection.v1alpha import reflection_pb2 as reflection_v1alpha

    files = []
    for module in (health_pb2, reflection_v1, reflection_v1alpha):
        proto = FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.append(proto)
    return files


def build_schema(methods: Sequence[MethodSchema]) -> Schema:
    """Build the file, add it to a fresh pool and make its message classes."""
    file = build_file(methods)
    pool = descriptor_pool.DescriptorPool()
    for proto in _standard_files():
        pool.Add(proto)
    try:
        pool.Add(file)
    except TypeError as exc:  # what the checks at registration did not foresee
        models = ", ".join(repr(m.model) for m in methods)
        raise ModelRegistrationError(f"the schema of models {models} cannot be built: {exc}") from None
    classes = {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in (m.name for m in file.message_type)
    }
    return Schema(file=file, pool=pool, methods=tuple(methods), classes=classes)
