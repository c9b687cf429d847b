"""Every use of grpclib's (and h2's) private parts, in one place, each with the reason
(grpclib 0.4.9, h2 4.x), for the server and the client.

grpclib has no public way to do these; each use below says what it reaches and why, so
that a grpclib upgrade is checked here and nowhere else (``tests/core/test_grpclib_adapter.py``
fails if another module reaches one). (hyperframe's DATA frame ``repr`` is patched in
``blazerpc._h2``, shared with the client: that patches hyperframe, not grpclib.)

- :func:`read_request`: ``Stream._stream`` (the HTTP/2 stream), to read a message's
  5-byte prefix before its body, and refuse an oversized one unread.
- :func:`method_name`: ``Stream._method_name``, the path of a call no handler serves, for
  its ``UNIMPLEMENTED`` message.
- :class:`Server`: ``Server._protocol_factory`` (one HTTP/2 connection), to keep each
  connection (a drain closes them with GOAWAY) and wrap its transport (write coalescing);
  ``Server._mapping`` (the method table grpclib looks paths up in), to answer unknown
  paths with a status; ``Server._server`` (the asyncio server), for the bound port and to
  stop listening before the drain.
- :func:`goaway`: ``H2Protocol.connection._connection`` (h2's connection), to send GOAWAY.
- :func:`h2_connection`: ``Connection._connection`` (the ``h2.connection.H2Connection``),
  for ``highest_inbound_stream_id`` (the server's own GOAWAY, ``server/_connections.py``)
  and to stop new streams on a connection that got GOAWAY (``client/_channel.py``).
- :func:`frame_handlers`: h2's ``H2Connection._frame_dispatch_table``, to handle a received
  GOAWAY frame without h2 closing the connection under the calls the server still answers.
- :class:`Channel`: ``Channel._protocol_factory`` (one HTTP/2 connection), to adapt each
  new connection (:meth:`Channel.connection_made`); ``Channel._protocol`` (the current
  connection, deleted on close), ``Channel._connected``, and ``Channel._host`` /
  ``._port``, for ``client/_channel.py``'s readiness, retiring and error message, and
  for ``client/_balancer.py`` to close an address that left once its calls are done.
- :func:`reflection_services`: ``ServerReflection._file_descriptor_response``, to answer
  with the file as built (comments included; grpclib drops ``source_code_info``), and the
  v1alpha service from ``grpclib.reflection._deprecated``, where grpclib keeps it; both
  built with their underscored keyword arguments ``_service_names`` and ``_pool``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.client import Channel as _GrpclibChannel
from grpclib.const import Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.reflection._deprecated import ServerReflection as _V1Alpha
from grpclib.reflection.service import ServerReflection as _V1
from grpclib.server import Server as _GrpclibServer
from grpclib.server import Stream

__all__ = [
    "Channel",
    "Server",
    "frame_handlers",
    "goaway",
    "h2_connection",
    "method_name",
    "read_request",
    "reflection_services",
]

_log = structlog.get_logger("blazerpc")


async def read_request(stream: Stream[Any, Any], max_size: int) -> bytes:
    """Read the one request message of a call, refusing an oversized one from its header.

    grpclib's own reader buffers the whole message first; this reads the 5-byte
    length prefix, checks it, and only then the body.
    """
    recv = stream._stream.recv_data  # the HTTP/2 stream: the only way to see the prefix first
    try:
        header: bytes = await recv(5)
        if len(header) == 5:
            if header[0]:
                raise GRPCError(
                    Status.UNIMPLEMENTED, "compressed messages are not supported: send them uncompressed"
                )
            length = int.from_bytes(header[1:5], "big")
            if length > max_size:
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"the request is {length} bytes, over this server's limit of {max_size} bytes "
                    "(max_message_size)",
                )
            data: bytes = await recv(length)
            if len(data) == length:
                return data
    except AssertionError:  # grpclib's buffer asserts when the stream ends part-way
        pass
    else:
        if not header:
            raise GRPCError(Status.INVALID_ARGUMENT, "the call carried no request message")
    raise GRPCError(Status.INVALID_ARGUMENT, "the request message is truncated")


def method_name(stream: Stream[Any, Any]) -> str:
    """The path the client called (grpclib keeps it private on the stream)."""
    return str(getattr(stream, "_method_name", "?"))


class Server(_GrpclibServer):
    """grpclib's server, keeping its HTTP/2 connections (:attr:`protocols`) and passing
    each new connection's transport through :meth:`wrap_transport`."""

    def __init__(self, handlers: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(handlers, **kwargs)
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()

    def wrap_transport(self, transport: asyncio.Transport) -> asyncio.Transport:
        """The transport a new connection writes to; override to wrap it."""
        return transport

    def connection_made(self, protocol: Any, transport: asyncio.Transport) -> None:
        """Called once grpclib has set a new connection up (``protocol.connection`` and
        ``.processor`` exist), with the transport it writes to; override to watch it."""

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        self.protocols.add(protocol)
        made = protocol.connection_made

        def connection_made(transport: Any) -> None:
            wrapped = self.wrap_transport(transport)
            made(wrapped)
            self.connection_made(protocol, wrapped)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

    def replace_method_table(self, wrap: Callable[[dict[str, Handler]], dict[str, Handler]]) -> None:
        """Serve through ``wrap(table)``: grpclib looks methods up with ``table.get(path)``
        in the table its constructor built."""
        self._mapping = wrap(self._mapping)

    @property
    def listener(self) -> asyncio.AbstractServer | None:
        """The asyncio server listening for connections, once started."""
        listener: asyncio.AbstractServer | None = self._server
        return listener


def goaway(protocol: Any) -> None:
    """Send GOAWAY (``NO_ERROR``) on one of :attr:`Server.protocols` and close it."""
    connection = getattr(protocol, "connection", None)
    if connection is None or connection.is_closing():
        return
    try:
        h2_connection(connection).close_connection()  # GOAWAY with NO_ERROR
        connection.flush()
    except Exception:  # noqa: BLE001 - a connection in a bad state is just closed
        _log.debug("GOAWAY failed; closing the connection", exc_info=True)
    connection.close()


def h2_connection(connection: Any) -> Any:
    """The ``h2.connection.H2Connection`` under a grpclib ``Connection`` (kept private)."""
    return connection._connection


def frame_handlers(h2: Any) -> dict[Any, Any] | None:
    """h2's received-frame handlers by frame class (``None`` on an h2 that has none)."""
    table: dict[Any, Any] | None = getattr(h2, "_frame_dispatch_table", None)
    return table


class Channel(_GrpclibChannel):
    """grpclib's channel, calling :meth:`connection_made` for each new connection once
    grpclib has set it up, and showing the current connection's state."""

    def connection_made(self, protocol: H2Protocol) -> None:
        """Called once grpclib has set a new connection up (``protocol.connection``,
        ``.processor`` and ``.handler`` exist); override to adapt it."""

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        made = protocol.connection_made

        def connection_made(transport: Any) -> None:
            made(transport)
            self.connection_made(protocol)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

    @property
    def current_protocol(self) -> H2Protocol | None:
        """grpclib's current connection (``None`` before the first, or once closed)."""
        protocol: H2Protocol | None = getattr(self, "_protocol", None)
        return protocol

    @property
    def connected(self) -> bool:
        """grpclib would reuse :attr:`current_protocol` for the next call."""
        return bool(self._connected)

    @property
    def address(self) -> str:
        """``host:port``, as given."""
        return f"{self._host}:{self._port}"


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


def reflection_services(names: Sequence[str], pool: Any, files: Sequence[FileDescriptorProto]) -> list[Any]:
    """Reflection ``v1`` and ``v1alpha``, serving ``files`` (in ``pool``) with their
    comments, so grpcurl ``describe`` and ``blazerpc.Client`` see each model's name,
    version and docstring and each tensor's dtype and shape."""
    served = {file.name: file.SerializeToString() for file in files}
    services: list[Any] = []
    for cls in (_V1WithComments, _V1AlphaWithComments):
        service = cls(_service_names=names, _pool=pool)
        service._files = served
        services.append(service)
    return services
