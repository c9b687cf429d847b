"""Server reflection, ``grpc.reflection.v1`` and ``v1alpha``, over the schema's pool.

grpclib's services answer with ``FileDescriptor.CopyToProto``, which drops
``source_code_info``; for the generated file they answer with the file as it was built,
comments included, so grpcurl ``describe`` and ``blazerpc.Client`` see each model's name,
version and docstring and each tensor's dtype and shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.reflection._deprecated import ServerReflection as _V1Alpha
from grpclib.reflection.service import ServerReflection as _V1

__all__ = ["reflection_services"]


class _KeepComments:
    """Answers with the built file for the names in ``_files``."""

    _files: dict[str, bytes]

    def _file_descriptor_response(self, file_descriptor: Any) -> Any:
        response = super()._file_descriptor_response(file_descriptor)  # type: ignore[misc]
        raw = self._files.get(file_descriptor.name)
        if raw is not None:
            response.file_descriptor_response.file_descriptor_proto[:] = [raw]
        return response


class _V1WithComments(_KeepComments, _V1):
    pass


class _V1AlphaWithComments(_KeepComments, _V1Alpha):
    pass


def reflection_services(names: Sequence[str], pool: Any, file: FileDescriptorProto) -> list[Any]:
    """Both reflection services, serving ``file`` (in ``pool``) with its comments."""
    files = {file.name: file.SerializeToString()}
    services: list[Any] = []
    for cls in (_V1WithComments, _V1AlphaWithComments):
        service = cls(_service_names=names, _pool=pool)
        service._files = files
        services.append(service)
    return services
