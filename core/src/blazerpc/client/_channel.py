"""A grpclib channel that survives GOAWAY, and says which failed calls never reached
the server.

grpclib's client (0.4.9, on h2 4.x) ends every call of a connection the moment a
GOAWAY arrives, even the calls the server announced it would still finish, and h2
itself refuses the frames that still come on the connection after a GOAWAY. Servers
send GOAWAY when they drain and when a connection reaches its maximum age
(``--max-connection-age``): a client balancing over replicas meets it all the time.
This channel handles GOAWAY as HTTP/2 means it (RFC 9113, 6.8):

- the calls the server saw (stream id up to the GOAWAY's last stream id) go on until
  they finish, on the old connection, which is closed after them;
- the calls it did not see fail with :class:`NotProcessed`: safe to send again;
- the next call opens a new connection.

A stream the server resets with ``REFUSED_STREAM`` ("closed prior to any processing",
RFC 9113, 8.7) fails with :class:`NotProcessed` too.

A new connection is used once the server's HTTP/2 preface has arrived (as gRPC's own
clients do): a connection the kernel completed but the server never accepted (a
listener closing as its server drains) then fails as a connection error, before any
call was sent on it.

grpclib and h2 internals used (checked by ``tests/core/test_balancing.py``): through
``blazerpc._grpclib`` (its private parts: each new connection, the current one and its
state, the ``H2Connection`` under it and h2's frame handlers, for the GOAWAY frame);
here, ``H2Protocol.connection`` / ``.processor`` / ``.handler``,
``Connection.stream_close_waiter``, ``Connection.feed`` and
``H2Protocol.connection_lost`` (wrapped per connection), ``EventsProcessor.processors``
(its event dispatch dict) and ``.streams``, client ``Handler.connection_lost`` (what
``Channel`` checks before reusing a connection) and protocol ``Stream.wrapper``.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from grpclib.exceptions import StreamTerminatedError
from grpclib.protocol import H2Protocol
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, StreamReset
from hyperframe.frame import GoAwayFrame

from .._grpclib import Channel, frame_handlers, h2_connection

__all__ = ["GoawayChannel", "NotProcessed"]


class NotProcessed(StreamTerminatedError):
    """The server said it did not process this call (GOAWAY or REFUSED_STREAM): it can
    be sent again, to this server or another."""


class GoawayChannel(Channel):
    """A grpclib :class:`Channel` whose connections handle GOAWAY gracefully.

    ``goaways`` counts the GOAWAYs received (a balancer re-resolves on them).
    """

    goaways = 0

    @property
    def ready(self) -> bool:
        """A connection is open and its server has spoken (its HTTP/2 preface arrived)."""
        protocol = self.current_protocol
        heard = _heard.get(protocol) if protocol is not None else None
        return bool(self.connected and heard is not None and heard[0].is_set() and heard[1])

    async def __connect__(self) -> H2Protocol:
        """grpclib's connect, then wait for the server's HTTP/2 preface, as gRPC's own
        clients do before they use a connection: a connection the kernel completed but
        the server never accepted (its listener closing as it drains, or starting up)
        then fails here, as a connection error, safe to retry; otherwise it would fail
        the calls already sent on it as if they might have been processed."""
        protocol = await super().__connect__()
        heard = _heard.get(protocol)
        if heard is not None and not heard[0].is_set():
            await heard[0].wait()
        if heard is not None and not heard[1]:
            raise ConnectionResetError(f"{self.address} closed the connection before it answered")
        return protocol

    def retire(self) -> None:
        """Send no new call on the current connection (its server said it is draining):
        the next call opens a new connection, the calls on this one finish."""
        protocol = self.current_protocol
        retire = _retire.get(protocol) if protocol is not None else None
        if retire is not None:
            retire(2**31 - 1)

    def connection_made(self, protocol: H2Protocol) -> None:
        # heard[0] is set once the server has spoken (heard[1]) or the connection is lost.
        # (Not by wrapping data_received: uvloop's transports keep the method they saw.)
        heard: list[Any] = [asyncio.Event(), False]
        _heard[protocol] = heard
        connection = protocol.connection
        feed, connection_lost = connection.feed, protocol.connection_lost

        def first_feed(data: bytes) -> Any:
            heard[1] = True
            heard[0].set()
            connection.feed = feed  # type: ignore[method-assign]
            return feed(data)

        def on_lost(exc: BaseException | None) -> None:
            heard[0].set()
            connection_lost(exc)

        connection.feed = first_feed  # type: ignore[method-assign]
        protocol.connection_lost = on_lost  # type: ignore[method-assign]

        h2: Any = h2_connection(protocol.connection)
        processor = protocol.processor
        table = frame_handlers(h2)
        if table is None or GoAwayFrame not in table:  # another h2: keep its own handling
            return

        def receive_goaway(frame: GoAwayFrame) -> tuple[list[Any], list[Any]]:
            # h2's own handler moves the connection to CLOSED, after which it refuses
            # every frame still coming for the calls the server goes on answering.
            event = ConnectionTerminated()
            event.error_code = frame.error_code
            event.last_stream_id = frame.last_stream_id
            event.additional_data = frame.additional_data or None
            return [], [event]

        table[GoAwayFrame] = receive_goaway
        last_seen = [2**31 - 1]

        def no_new_streams() -> int:
            # A call that took this connection just before the GOAWAY: it never left.
            raise NotProcessed("the connection got GOAWAY before this call was sent")

        def retire(last: int, reason: str = "") -> None:
            # The channel opens a new connection for the next call; this one carries on
            # with the calls the server saw (up to ``last``), and takes no new ones.
            first = last_seen[0] == 2**31 - 1 and not protocol.handler.connection_lost  # type: ignore[attr-defined]
            last = last_seen[0] = min(last_seen[0], last)
            protocol.handler.connection_lost = True  # type: ignore[attr-defined]
            h2.get_next_available_stream_id = no_new_streams
            for stream_id, stream in list(processor.streams.items()):
                if stream_id > last and stream.wrapper is not None:
                    stream.wrapper.cancel(NotProcessed(reason))
            if first:
                closing = asyncio.ensure_future(_close_when_done(protocol, last_seen))
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)

        def connection_terminated(event: ConnectionTerminated) -> None:
            self.goaways += 1
            reason = f"the server sent GOAWAY (error code {event.error_code}) before it saw this call"
            retire(event.last_stream_id or 0, reason)

        _retire[protocol] = retire

        def stream_reset(event: StreamReset) -> None:
            stream = processor.streams.get(event.stream_id)
            if event.remote_reset and event.error_code == ErrorCodes.REFUSED_STREAM and stream is not None:
                if stream.wrapper is not None:
                    stream.wrapper.cancel(NotProcessed("the server refused the stream (REFUSED_STREAM)"))
                processor.handler.cancel(stream)
                processor.connection.streams_failed += 1
                return
            reset(event)

        reset: Any = processor.processors[StreamReset]
        processor.processors[ConnectionTerminated] = connection_terminated
        processor.processors[StreamReset] = stream_reset


_closing: set[asyncio.Future[None]] = set()
#: Each adapted connection's [event, heard from the server]: see GoawayChannel.__connect__.
_heard: weakref.WeakKeyDictionary[H2Protocol, list[Any]] = weakref.WeakKeyDictionary()
#: Each adapted connection's retire(last_stream_id, reason).
_retire: weakref.WeakKeyDictionary[H2Protocol, Callable[..., None]] = weakref.WeakKeyDictionary()


async def _close_when_done(protocol: H2Protocol, last: list[int]) -> None:
    """Close a retired connection once the calls the server saw (``last[0]``) have ended."""
    processor, connection = protocol.processor, protocol.connection
    waiter = connection.stream_close_waiter
    while any(i <= last[0] for i in processor.streams) and not connection.is_closing():
        waiter.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), 1.0)
    if not connection.is_closing():
        processor.close("the connection got GOAWAY and its calls have ended")
