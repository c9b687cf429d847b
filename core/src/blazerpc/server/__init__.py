"""The gRPC server: the inference servicer, health, reflection and the lifecycle."""

from ._server import BlazeServer, ServerInfo, run
from ._supervisor import SupervisorInfo

__all__ = ["BlazeServer", "ServerInfo", "SupervisorInfo", "run"]
