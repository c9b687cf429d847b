"""Helpers of the registration tests: models with given annotations, foreign types, and
the fields and RPCs an app's schema has."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from blazerpc import BlazeApp


def foreign_type(module: str, name: str) -> type:
    """A class that looks like it comes from `module` (torch, tensorflow...)."""
    return type(name, (), {"__module__": module})


def model_with(**annotations: Any) -> Any:
    """A model function `(x) -> ...` with the given (non-string) annotations."""

    def model(x: Any) -> Any:
        return x

    model.__annotations__ = annotations
    return model


def fields(app: BlazeApp, message: str) -> list[tuple[str, int, int, int, bool]]:
    """(name, number, type, label, proto3_optional) of each field of `message`."""
    for proto in app.schema().file.message_type:
        if proto.name == message:
            return [(f.name, f.number, f.type, f.label, f.proto3_optional) for f in proto.field]
    raise KeyError(message)


def rpcs(app: BlazeApp) -> list[tuple[str, str, str]]:
    service = app.schema().file.service[0]
    return [(m.name, m.input_type, m.output_type) for m in service.method]


OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
