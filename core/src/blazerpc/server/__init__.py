"""The gRPC server: the inference servicer, health, reflection and the lifecycle."""

from ._server import BlazeServer, ServerInfo, run

__all__ = ["BlazeServer", "ServerInfo", "run"]
