"""BlazeRPC: serve a type-annotated Python function as a gRPC inference endpoint.

    from blazerpc import BlazeApp

    app = BlazeApp()

    @app.model("sentiment")
    def predict(text: list[str]) -> list[float]:
        ...

Then ``blaze serve app:app``.
"""

from ._limits import Limits
from ._model import Model
from .app import BlazeApp
from .client import CallError, Client, ClientInputError, SyncClient
from .exceptions import (
    BlazeRPCError,
    ConfigurationError,
    InferenceError,
    InvalidInputError,
    ModelRegistrationError,
    PluginError,
    RequestError,
    TypeMappingError,
)
from .hookspecs import hookimpl
from .server.middleware import CallContext, ExceptionMiddleware, LoggingMiddleware, Middleware
from .types import TensorInput, TensorOutput

__version__ = "0.1.0"

__all__ = [
    "BlazeApp",
    "BlazeRPCError",
    "CallContext",
    "CallError",
    "Client",
    "ClientInputError",
    "ConfigurationError",
    "ExceptionMiddleware",
    "InferenceError",
    "InvalidInputError",
    "Limits",
    "LoggingMiddleware",
    "Middleware",
    "Model",
    "ModelRegistrationError",
    "PluginError",
    "RequestError",
    "SyncClient",
    "TensorInput",
    "TensorOutput",
    "TypeMappingError",
    "__version__",
    "hookimpl",
]
