"""What a plugin that adds a gRPC service gets: :class:`ServiceHost` (hook
``blazerpc_services``), one :class:`ServedModel` per model, whose :meth:`pipeline` is
the model's own call path with the protocol's codec.

A second protocol (the Open Inference Protocol, say) writes only its decode and encode
(a :class:`Codec`): middleware, admission, the model's batcher or limit, execution and
the error mapping are the app's, shared with ``blazerpc.InferenceService``; so are the
batcher (calls of both protocols join the same batches), the limits and the drain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.server import Stream

from .._grpclib import read_request
from .._hooks import iter_calls
from .._limits import Limits
from .._model import Model
from ..wire import MethodSchema, Schema
from ._pipeline import Codec, Pipeline
from ._service import RawMessage

if TYPE_CHECKING:
    from ..app import BlazeApp

__all__ = ["Codec", "Pipeline", "RawMessage", "ServedModel", "ServiceHost"]


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One model of the server, for a protocol plugin.

    Attributes:
        model: the registered model.
        method: its schema (inputs, outputs, streaming).
        max_batch_size: rows one model call may hold when the model is batched;
            ``None`` when it is not.
        batch_timeout_ms: how long a batch may wait to fill, when batched.
    """

    model: Model
    method: MethodSchema
    max_batch_size: int | None
    batch_timeout_ms: float | None
    _make: Callable[[str, Codec | None], Pipeline] = field(repr=False)

    def pipeline(self, path: str, codec: Codec | None = None) -> Pipeline:
        """The model's call path for calls of the gRPC method ``path`` (what middleware
        see as ``CallContext.method``), with ``codec`` as its decode and encode, or one
        given per call to :meth:`Pipeline.handle`. Build it once, at start-up."""
        return self._make(path, codec)


@dataclass(frozen=True, eq=False)
class ServiceHost:
    """Passed to ``blazerpc_services``: the server a plugin's service joins.

    Attributes:
        app: the app served.
        options: the server's option values (``blaze serve``'s plugin options by name).
        schema: the app's schema; its ``pool`` is the one reflection serves.
        limits: the server's limits (``max_message_size``...).
        models: one :class:`ServedModel` per model, in registration order.
    """

    app: BlazeApp
    options: Mapping[str, Any]
    schema: Schema
    limits: Limits
    models: tuple[ServedModel, ...]
    _ready: Callable[[], bool] = field(repr=False)
    _draining: asyncio.Event = field(repr=False)
    _files: list[FileDescriptorProto] = field(default_factory=list, repr=False)

    @property
    def ready(self) -> bool:
        """Serving: started and not draining (what the health service reports)."""
        return self._ready()

    async def draining(self) -> None:
        """Return once the server starts draining: a long-lived call between requests
        (a bidirectional stream waiting for its next one) should end then, so the drain
        need not wait for it to the end of its grace period."""
        await self._draining.wait()

    def add_file(self, file: FileDescriptorProto) -> None:
        """Add a service's ``.proto`` file to the schema's pool (if it is not there) and
        to what reflection serves, comments included."""
        try:
            self.schema.pool.FindFileByName(file.name)
        except KeyError:
            self.schema.pool.Add(file)
        self._files.append(file)

    async def read_request(self, stream: Stream[Any, Any]) -> bytes:
        """Read a unary call's request message, refusing one over ``max_message_size``
        from its header (``RESOURCE_EXHAUSTED``) before it is read."""
        return await read_request(stream, self.limits.max_message_size)

    @property
    def files(self) -> Sequence[FileDescriptorProto]:
        """The files added with :meth:`add_file`."""
        return tuple(self._files)


def plugin_services(pm: Any, host: ServiceHost, inference: Any) -> dict[Any, tuple[str, ...]]:
    """Every plugin's ``blazerpc_services``, checked: servicers by the gRPC services
    their methods belong to. Two handlers of one path are a start-up error."""
    from ..exceptions import ConfigurationError

    taken = {path: "blazerpc.InferenceService" for path in inference.__mapping__()}
    found: dict[Any, tuple[str, ...]] = {}
    for plugin, offered in iter_calls(pm.hook.blazerpc_services, {"host": host}):
        if not isinstance(offered, Sequence):
            raise ConfigurationError(
                f"plugin {plugin}: blazerpc_services must return a list of servicers, got {offered!r}"
            )
        for servicer in offered:
            mapping = getattr(servicer, "__mapping__", None)
            if mapping is None:
                raise ConfigurationError(
                    f"plugin {plugin}: {servicer!r} is not a grpclib servicer (it has no __mapping__)"
                )
            names = []
            for path in mapping():
                other = taken.setdefault(path, plugin)
                if other != plugin:
                    raise ConfigurationError(f"plugin {plugin} serves {path}, which {other} serves already")
                names.append(path.lstrip("/").split("/", 1)[0])
            found[servicer] = tuple(dict.fromkeys(names))
    return found
