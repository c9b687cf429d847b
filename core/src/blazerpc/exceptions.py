"""BlazeRPC's exceptions.

Two families: configuration errors, raised at registration or start-up and never seen
by clients; and request errors, which carry the gRPC status a client receives. A model
may raise a request error itself (``raise InvalidInputError("text is empty")``) to answer
with that status instead of ``INTERNAL``.
"""

from __future__ import annotations

from grpclib.const import Status

__all__ = [
    "BlazeRPCError",
    "ConfigurationError",
    "InferenceError",
    "InvalidInputError",
    "ModelRegistrationError",
    "PluginError",
    "RequestError",
    "TypeMappingError",
]


class BlazeRPCError(Exception):
    """Base of every error BlazeRPC raises."""


class ConfigurationError(BlazeRPCError):
    """The app, a model or a plugin is set up wrongly; raised before serving."""


class ModelRegistrationError(ConfigurationError):
    """A model cannot be registered (bad name, duplicate name and version, ...)."""


class TypeMappingError(ModelRegistrationError):
    """An annotation has no wire representation."""


class PluginError(ConfigurationError):
    """A plugin failed to load, or one the app needs is missing."""


class RequestError(BlazeRPCError):
    """An error answered to the client with ``status`` and the exception's message."""

    status: Status = Status.INTERNAL

    def __init__(self, message: str, *, status: Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidInputError(RequestError):
    """The request is malformed or does not match the model's schema."""

    status = Status.INVALID_ARGUMENT


class InferenceError(RequestError):
    """The model failed, or returned something that does not match its schema."""

    status = Status.INTERNAL
