"""The protocol's messages: ``inference.proto``'s descriptor, added to a server's pool.

Why a committed descriptor and not a generated ``_pb2.py``: the server's message classes
must come from the pool that reflection serves (the app's schema pool, one per app), so
the plugin needs the ``FileDescriptorProto`` itself, not classes bound to protobuf's
default pool; and ``_pb2.py`` files from grpcio-tools embed a check of the protobuf
runtime's version, which ties the plugin to one protobuf range. The serialized
descriptor (``inference.binpb``, built from ``inference.proto`` by
``scripts/build_descriptor.py``, comments included for ``grpcurl describe``) works with
any protobuf 4+ runtime and needs no protoc at run time.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorProto

__all__ = ["SERVICE", "Messages", "file_descriptor"]

PACKAGE = "inference"
SERVICE = "inference.GRPCInferenceService"


@cache
def file_descriptor() -> FileDescriptorProto:
    """``inference.proto`` as a ``FileDescriptorProto`` (read once)."""
    data = resources.files(__package__).joinpath("inference.binpb").read_bytes()
    return FileDescriptorProto.FromString(data)


class Messages:
    """The protocol's message classes from one pool (the file is added if missing)."""

    ServerLiveRequest: Any
    ServerLiveResponse: Any
    ServerReadyRequest: Any
    ServerReadyResponse: Any
    ModelReadyRequest: Any
    ModelReadyResponse: Any
    ServerMetadataRequest: Any
    ServerMetadataResponse: Any
    ModelMetadataRequest: Any
    ModelMetadataResponse: Any
    ModelInferRequest: Any
    ModelInferResponse: Any
    ModelStreamInferResponse: Any
    ModelConfigRequest: Any
    ModelConfigResponse: Any
    ModelStatisticsRequest: Any
    ModelStatisticsResponse: Any
    RepositoryIndexRequest: Any
    RepositoryIndexResponse: Any
    InferTensorContents: Any

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self.pool = pool = pool if pool is not None else descriptor_pool.DescriptorPool()
        file = file_descriptor()
        try:
            pool.FindFileByName(file.name)
        except KeyError:
            pool.Add(file)
        for name in self.__class__.__annotations__:
            if name == "pool":
                continue
            descriptor = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
            setattr(self, name, message_factory.GetMessageClass(descriptor))
