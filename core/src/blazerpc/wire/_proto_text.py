"""Render the generated ``FileDescriptorProto`` as ``.proto`` source text."""

from __future__ import annotations

from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto, FileDescriptorProto

from ._schema import field_path, leading_comments, method_path

__all__ = ["SCALAR_TYPE_NAMES", "render_proto"]

_F = FieldDescriptorProto
#: The .proto name of every scalar field type.
SCALAR_TYPE_NAMES = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}


def _type_name(field: FieldDescriptorProto, package: str) -> str:
    if field.type in (_F.TYPE_MESSAGE, _F.TYPE_ENUM):
        name = field.type_name.lstrip(".")
        prefix = package + "."
        return name[len(prefix) :] if name.startswith(prefix) else name
    return SCALAR_TYPE_NAMES[field.type]


def _comment_lines(text: str, indent: str) -> list[str]:
    return [f"{indent}//{line}".rstrip() for line in text.rstrip("\n").split("\n")]


def _render_message(
    msg: DescriptorProto, package: str, comments: dict[tuple[int, ...], str], index: int
) -> list[str]:
    lines = [f"message {msg.name} {{"]
    for number, field in enumerate(msg.field):
        if field.label == _F.LABEL_REPEATED:
            label = "repeated "
        elif field.proto3_optional:
            label = "optional "
        else:
            label = ""
        comment = comments.get(field_path(index, number))
        if comment:
            lines += _comment_lines(comment, "  ")
        lines.append(f"  {label}{_type_name(field, package)} {field.name} = {field.number};")
    lines.append("}")
    return lines


def render_proto(file: FileDescriptorProto, header: str | None = None) -> str:
    """The ``.proto`` text of ``file`` (messages, then services), ending in a newline."""
    lines = []
    if header:
        lines += [f"// {line}" if line else "//" for line in header.splitlines()]
        lines.append("")
    lines += [f'syntax = "{file.syntax or "proto2"}";', "", f"package {file.package};", ""]
    comments = leading_comments(file)
    for index, msg in enumerate(file.message_type):
        lines += _render_message(msg, file.package, comments, index)
        lines.append("")
    for service_index, service in enumerate(file.service):
        lines.append(f"service {service.name} {{")
        for number, method in enumerate(service.method):
            comment = comments.get(method_path(service_index, number))
            if comment:
                if number:
                    lines.append("")
                lines += _comment_lines(comment, "  ")
            request = _type_name(_F(type=_F.TYPE_MESSAGE, type_name=method.input_type), file.package)
            reply = _type_name(_F(type=_F.TYPE_MESSAGE, type_name=method.output_type), file.package)
            stream_in = "stream " if method.client_streaming else ""
            stream_out = "stream " if method.server_streaming else ""
            lines.append(f"  rpc {method.name}({stream_in}{request}) returns ({stream_out}{reply});")
        lines.append("}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
