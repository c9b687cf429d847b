"""The gRPC server: the inference servicer, health, reflection and the lifecycle; and
what a plugin that adds a protocol builds on (``ServiceHost``, hook ``blazerpc_services``)."""

from ._host import Codec, Pipeline, RawMessage, ServedModel, ServiceHost
from ._server import BlazeServer, ServerInfo, run
from ._supervisor import SupervisorInfo

__all__ = [
    "BlazeServer",
    "Codec",
    "Pipeline",
    "RawMessage",
    "ServedModel",
    "ServerInfo",
    "ServiceHost",
    "SupervisorInfo",
    "run",
]
