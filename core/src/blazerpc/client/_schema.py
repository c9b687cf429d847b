"""What a client learns from the server: descriptors fetched through reflection, built
into message classes in a private pool, and the conversions between Python values and
those messages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.message import Message
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from grpclib.reflection.v1 import reflection_pb2 as reflection_v1
from grpclib.reflection.v1alpha import reflection_pb2 as reflection_v1alpha

from ..types import TENSOR_DTYPES
from ..wire._proto_text import SCALAR_TYPE_NAMES
from ..wire._schema import (
    base_name,
    field_path,
    leading_comments,
    method_path,
    parse_method_comment,
    parse_required_comment,
    parse_tensor_comment,
)
from ._errors import CallError, ClientInputError
from ._inputs import fill_field, unknown_input

__all__ = [
    "SERVICE",
    "FieldInfo",
    "ModelInfo",
    "ServiceSchema",
    "decode_tensor",
    "fetch_files",
    "rpc_for",
]

SERVICE = "blazerpc.InferenceService"

_FD = FieldDescriptor
#: The .proto names of field types, as the server's schema text uses them.
_TYPE_NAMES: dict[int, str] = {int(kind): name for kind, name in SCALAR_TYPE_NAMES.items()}
_TYPE_NAMES[_FD.TYPE_ENUM] = "enum"


# --- reflection --------------------------------------------------------------------------


async def _fetch_with(
    channel: Channel, module: Any, symbol: str, timeout: float | None, metadata: Any
) -> list[bytes]:
    path = f"/{module.DESCRIPTOR.package}.ServerReflection/ServerReflectionInfo"
    request_type, response_type = module.ServerReflectionRequest, module.ServerReflectionResponse
    found: dict[str, bytes] = {}
    async with channel.request(
        path, Cardinality.STREAM_STREAM, request_type, response_type, timeout=timeout, metadata=metadata
    ) as stream:

        async def ask(**query: str) -> None:
            await stream.send_message(request_type(**query))
            reply = await stream.recv_message()
            if reply is None:
                raise CallError(Status.UNAVAILABLE, "the reflection stream ended without an answer")
            if reply.HasField("error_response"):
                error = reply.error_response
                try:
                    status = Status(error.error_code)
                except ValueError:  # not a gRPC status code
                    status = Status.UNKNOWN
                raise CallError(status, f"reflection: {error.error_message}")
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                proto = FileDescriptorProto.FromString(raw)
                found.setdefault(proto.name, raw)

        await ask(file_containing_symbol=symbol)
        while True:  # files the answer depends on but did not include
            missing = {
                dep
                for raw in list(found.values())
                for dep in FileDescriptorProto.FromString(raw).dependency
                if dep not in found
            }
            if not missing:
                break
            for name in sorted(missing):
                await ask(file_by_filename=name)
                if name not in found:
                    raise CallError(Status.INTERNAL, f"reflection did not return the file {name}")
        await stream.end()
        async for _ in stream:
            pass
    return list(found.values())


async def fetch_files(
    channel: Channel, symbol: str, timeout: float | None, metadata: Any = None
) -> list[FileDescriptorProto]:
    """The file defining ``symbol`` and every file it depends on, through reflection
    (``grpc.reflection.v1``, or ``v1alpha`` on servers that only have that), sending
    ``metadata`` (a server or proxy that wants credentials wants them here too)."""
    for module in (reflection_v1, reflection_v1alpha):
        try:
            raws = await _fetch_with(channel, module, symbol, timeout, metadata)
        except GRPCError as exc:
            if exc.status is Status.UNIMPLEMENTED and module is reflection_v1:
                continue
            if exc.status is Status.UNIMPLEMENTED:
                raise CallError(Status.UNIMPLEMENTED, "the server has no reflection service") from None
            raise
        return [FileDescriptorProto.FromString(raw) for raw in raws]
    raise AssertionError("unreachable")


# --- the service -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    """A field of a model's request or response."""

    name: str
    #: ``"string"``, ``"int64"``, ``"tensor"``, or a message's full name.
    type: str
    repeated: bool = False
    #: The field may be absent: ``None`` when it is (proto3 ``optional`` and not
    #: commented ``Required:``; the server refuses a request without a required field).
    optional: bool = False
    #: A tensor's declared dtype (``"float32"``), ``None`` for any dtype.
    dtype: str | None = None
    #: A tensor's declared dimensions (``('batch', 3)``), ``None`` for any shape.
    dims: tuple[int | str, ...] | None = None

    @property
    def describe(self) -> str:
        """The field's type as ``blaze call --list`` shows it: ``list[string]``,
        ``float32[batch, 3]``, ``optional int64``."""
        if self.type == "tensor":
            dims = "..." if self.dims is None else ", ".join(str(d) for d in self.dims)
            kind = f"{self.dtype or 'tensor'}[{dims}]"
        else:
            kind = self.type
        if self.repeated:
            return f"list[{kind}]"
        return f"optional {kind}" if self.optional else kind


@dataclass(frozen=True)
class ModelInfo:
    """One RPC of ``blazerpc.InferenceService``: a model (and version) the server serves."""

    #: The model's name, as registered (``"text-embed"``). From a server that does not
    #: document its RPCs: the RPC's name without ``Predict``, in snake case.
    name: str
    #: The model's version (``"1"`` unless registered with another), ``None`` if unknown.
    version: str | None
    rpc: str
    path: str
    streaming: bool
    request_type: str
    response_type: str
    inputs: tuple[FieldInfo, ...]
    outputs: tuple[FieldInfo, ...]
    #: The model function's docstring (its first paragraph), or "".
    doc: str = ""

    @property
    def single_result(self) -> bool:
        """The response is one field, ``result``: calls return its value (else a dict)."""
        return len(self.outputs) == 1 and self.outputs[0].name == "result"

    @property
    def signature(self) -> str:
        """``(text: list[string]) -> list[double]``."""
        params = ", ".join(f"{f.name}: {f.describe}" for f in self.inputs)
        if self.single_result:
            result = self.outputs[0].describe
        else:
            result = "{" + ", ".join(f"{f.name}: {f.describe}" for f in self.outputs) + "}"
        return f"({params}) -> {'stream ' if self.streaming else ''}{result}"


def _repeated(field: FieldDescriptor) -> bool:
    # ``is_repeated`` is protobuf >= 6; ``label`` is gone from protobuf 7.
    flag = getattr(field, "is_repeated", None)
    if flag is None:
        return bool(field.label == _FD.LABEL_REPEATED)  # type: ignore[attr-defined, unused-ignore]
    return bool(flag)


def _is_tensor(message: Descriptor | None) -> bool:
    if message is None:
        return False
    fields = {f.name: f for f in message.fields}
    shape, dtype, data = fields.get("shape"), fields.get("dtype"), fields.get("data")
    return (
        len(fields) == 3
        and shape is not None
        and dtype is not None
        and data is not None
        and shape.type == _FD.TYPE_INT64
        and _repeated(shape)
        and dtype.type == _FD.TYPE_STRING
        and data.type == _FD.TYPE_BYTES
    )


def _field_info(field: FieldDescriptor, comment: str) -> FieldInfo:
    dtype: str | None = None
    dims: tuple[int | str, ...] | None = None
    if field.type == _FD.TYPE_MESSAGE:
        message = field.message_type
        kind = "tensor" if _is_tensor(message) else message.full_name if message else "message"
        declared = parse_tensor_comment(comment) if kind == "tensor" else None
        if declared is not None:
            dtype, dims = declared
            dtype = dtype if dtype in TENSOR_DTYPES else None
    else:
        kind = _TYPE_NAMES.get(field.type, str(field.type))
    repeated = _repeated(field)
    # Request scalars have presence whether or not they are required; the comment
    # says which are (a server without such comments gave presence to optional ones only).
    optional = (
        not repeated
        and field.has_presence
        and field.type != _FD.TYPE_MESSAGE
        and not parse_required_comment(comment)
    )
    return FieldInfo(field.name, kind, repeated, optional, dtype, dims)


def _snake(base: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


def rpc_for(model: str, version: str | None) -> str:
    """The RPC a model is served as: ``Predict<Name>``, or ``Predict<Name>V<version>``."""
    return "Predict" + base_name(model, version)


class _Converter:
    """Python values <-> one message class, by field."""

    def __init__(self, descriptor: Descriptor, comments: Mapping[int, str]) -> None:
        self.cls = message_factory.GetMessageClass(descriptor)
        self.fields = {f.name: f for f in descriptor.fields}
        self.infos = tuple(_field_info(f, comments.get(i, "")) for i, f in enumerate(descriptor.fields))
        self.by_name = {i.name: i for i in self.infos}
        self.tensors = {i.name: i for i in self.infos if i.type == "tensor"}
        self.single = len(self.infos) == 1 and self.infos[0].name == "result"

    # Python -> message

    def build(self, values: Mapping[str, Any], model: str) -> Message:
        msg = self.cls()
        for name, value in values.items():
            field = self.fields.get(name)
            if field is None:
                raise unknown_input(model, name, self.fields)
            if value is None:
                continue
            fill_field(msg, field, self.by_name[name], value, model)
        return msg

    # message -> Python

    def read(self, msg: Message) -> Any:
        if self.single:
            return self._get(msg, self.fields["result"])
        return {name: self._get(msg, field) for name, field in self.fields.items()}

    def _get(self, msg: Message, field: FieldDescriptor) -> Any:
        name = field.name
        repeated = _repeated(field)
        if name in self.tensors:
            if repeated:
                return [decode_tensor(t) for t in getattr(msg, name)]
            return decode_tensor(getattr(msg, name)) if msg.HasField(name) else None
        if field.type == _FD.TYPE_MESSAGE:
            if repeated:
                return [_message_dict(m) for m in getattr(msg, name)]
            return _message_dict(getattr(msg, name)) if msg.HasField(name) else None
        if repeated:
            return list(getattr(msg, name))
        if field.has_presence and not msg.HasField(name):
            return None
        return getattr(msg, name)


def _message_dict(msg: Message) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def decode_tensor(tensor: Any) -> np.ndarray:
    """A ``TensorProto`` as a read-only array over its data (no further copy)."""
    dtype = TENSOR_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise CallError(Status.INTERNAL, f"the server sent a tensor of unknown dtype {tensor.dtype!r}")
    shape = tuple(tensor.shape)
    data = tensor.data
    size = 1
    for d in shape:
        size *= d
    if size * dtype.itemsize != len(data) or any(d < 0 for d in shape):
        raise CallError(
            Status.INTERNAL,
            f"the server sent a {tensor.dtype} tensor of shape {list(shape)} with {len(data)} bytes",
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


@dataclass
class _Method:
    info: ModelInfo
    request: _Converter
    response: _Converter


class ServiceSchema:
    """``blazerpc.InferenceService`` as a client sees it, built from reflection's files."""

    def __init__(self, files: Sequence[FileDescriptorProto], service: str = SERVICE) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for proto in _dependency_order(files):
            self.pool.Add(proto)
        try:
            descriptor = self.pool.FindServiceByName(service)
        except KeyError:
            raise CallError(Status.UNIMPLEMENTED, f"the server does not serve {service}") from None
        file = next(f for f in files if f.name == descriptor.file.name)
        comments = leading_comments(file)
        # Comments are found by position: the index of each message and of the service.
        self._message_index = {f"{file.package}.{m.name}": i for i, m in enumerate(file.message_type)}
        service_index = [f"{file.package}.{s.name}" for s in file.service].index(service)
        self.methods: dict[str, _Method] = {}
        for index, method in enumerate(descriptor.methods):
            self._add(method, service, comments, method_path(service_index, index))

    def _add(
        self,
        method: MethodDescriptor,
        service: str,
        comments: Mapping[tuple[int, ...], str],
        path: tuple[int, ...],
    ) -> None:
        def fields_of(message: Descriptor) -> dict[int, str]:
            index = self._message_index.get(message.full_name)
            if index is None:  # defined in another file: no comments of ours
                return {}
            return {i: comments.get(field_path(index, i), "") for i in range(len(message.fields))}

        request = _Converter(method.input_type, fields_of(method.input_type))
        response = _Converter(method.output_type, fields_of(method.output_type))
        name: str = _snake(method.name.removeprefix("Predict"))
        version: str | None = None
        doc = ""
        documented = parse_method_comment(comments.get(path, ""))
        if documented is not None:
            name, version, doc = documented
        info = ModelInfo(
            name=name,
            version=version,
            rpc=method.name,
            path=f"/{service}/{method.name}",
            streaming=method.server_streaming,
            request_type=method.input_type.full_name,
            response_type=method.output_type.full_name,
            inputs=request.infos,
            outputs=response.infos,
            doc=doc,
        )
        self.methods[method.name] = _Method(info, request, response)

    @property
    def models(self) -> list[ModelInfo]:
        return [m.info for m in self.methods.values()]

    def find(self, model: str, version: str | None = None) -> _Method:
        """The RPC serving ``model`` and ``version``.

        ``model`` is the model's name (or its RPC's name). Without ``version``: the
        model's unversioned RPC (``PredictSentiment``), or its only version. A version
        is a string, as the server registers it (``"2"``, not ``2``).
        """
        if version is not None and not isinstance(version, str):
            raise ClientInputError(
                f"version must be a string, as the server registers versions: "
                f"version={str(version)!r}, not version={version!r} ({type(version).__name__})",
                model=model,
                value=version,
            )
        same = [m for m in self.methods.values() if model in (m.info.name, m.info.rpc)]
        if version is not None:
            found = [m for m in same if m.info.version == version]
        else:
            found = [m for m in same if m.info.rpc == rpc_for(model, None)] or same
        if len(found) == 1:
            return found[0]
        if not found:  # a server whose RPCs carry no model comments: the naming rule
            legacy = self.methods.get(rpc_for(model, version))
            if legacy is not None:
                return legacy
        versions = sorted(m.info.version or m.info.rpc for m in same)
        if found:
            raise ClientInputError(
                f"model {model!r} has several versions ({', '.join(versions)}): choose one with version=",
                model=model,
            )
        what = f"model {model!r}" + (f" version {version!r}" if version is not None else "")
        hint = f" (its versions: {', '.join(versions)})" if versions else ""
        served = ", ".join(_label(m) for m in self.models) or "none"
        raise CallError(Status.UNIMPLEMENTED, f"the server does not serve {what}{hint}; it serves: {served}")


def _label(info: ModelInfo) -> str:
    return info.name if info.version in (None, "1") else f"{info.name} v{info.version}"


def _dependency_order(files: Iterable[FileDescriptorProto]) -> list[FileDescriptorProto]:
    by_name = {f.name: f for f in files}
    ordered: list[FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in by_name:
            return
        seen.add(name)
        for dep in by_name[name].dependency:
            visit(dep)
        ordered.append(by_name[name])

    for name in by_name:
        visit(name)
    return ordered
