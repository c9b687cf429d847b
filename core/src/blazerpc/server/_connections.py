"""Connection ageing (``--max-connection-age``): an HTTP/2 connection older than the
maximum age gets GOAWAY, is closed once its calls have finished (or the grace has
passed), and its client reconnects: through a Kubernetes Service or to workers sharing
one port, the new connection may reach another replica, so a long-lived client does
not stay pinned to one of them forever.

As grpc-go's ``MaxConnectionAge`` and ``MaxConnectionAgeGrace``: each connection's age
gets a random jitter of +-10%, so connections made together do not all end together.

The GOAWAY is written here, not through h2's ``close_connection``: that one moves h2's
connection to its CLOSED state, after which h2 refuses to send anything, and the calls
still running on the connection could not answer. After our GOAWAY, h2 still carries
those calls; a new stream the client opened before the GOAWAY reached it is refused
with ``RST_STREAM(REFUSED_STREAM)``, which tells a client it was never processed and
may be retried anywhere.

grpclib internals used: ``H2Protocol.connection`` and ``.processor`` (set in its
``connection_made``), ``EventsProcessor.streams`` (the connection's open streams),
``Connection.stream_close_waiter`` (set whenever a stream is released) and the
``h2.connection.H2Connection`` under the connection (``blazerpc._grpclib.h2_connection``,
for ``highest_inbound_stream_id``); the handler's ``accept`` is replaced per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import weakref
from collections.abc import Callable
from typing import Any

import structlog
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .._grpclib import h2_connection
from ..exceptions import ConfigurationError

__all__ = ["Connections", "check_connection_age"]

_log = structlog.get_logger("blazerpc")

#: +-10% of the age, as grpc-go.
JITTER = 0.1
#: Seconds a connection whose calls have all finished stays open after its GOAWAY, for
#: its client to read the last answers and close it first (grpclib's own client fails
#: the calls whose answers it has not read yet when the connection closes under them).
LINGER = 1.0


def check_connection_age(max_age: float | None, grace: float | None) -> None:
    """Raise :class:`ConfigurationError` for values that cannot work."""
    if max_age is not None and not max_age > 0:
        raise ConfigurationError(f"max_connection_age must be more than 0 seconds, got {max_age!r}")
    if grace is not None:
        if max_age is None:
            raise ConfigurationError("max_connection_age_grace needs max_connection_age")
        if not grace >= 0:
            raise ConfigurationError(f"max_connection_age_grace must be 0 seconds or more, got {grace!r}")


class Connections:
    """The server's HTTP/2 connections, as :meth:`watch` is given them: their ageing
    (when ``max_age`` is set) and the graceful end of every one at the end of a drain.

    Args:
        close: sends a final GOAWAY and closes a protocol's connection (the server's own).
        max_age: seconds (+-10%) after which a connection gets GOAWAY (``None``: never).
        grace: seconds an aged connection's calls may still run after its GOAWAY; then
            it is closed under them. ``None``: as long as they take.
    """

    def __init__(
        self, close: Callable[[Any], None], max_age: float | None = None, grace: float | None = None
    ) -> None:
        check_connection_age(max_age, grace)
        self.max_age = max_age
        self.grace = grace
        self._close = close
        self._open: weakref.WeakKeyDictionary[Any, tuple[Any, asyncio.Event]] = weakref.WeakKeyDictionary()
        self._retiring: set[asyncio.Task[None]] = set()

    def watch(self, protocol: Any, transport: Any) -> None:
        """Track ``protocol`` (and start its clock); call from its ``connection_made``,
        after grpclib's, with the transport it writes to."""
        lost = asyncio.Event()
        self._open[protocol] = (transport, lost)
        timer = None
        if self.max_age is not None:
            age = self.max_age * random.uniform(1 - JITTER, 1 + JITTER)
            timer = asyncio.get_running_loop().call_later(age, self._expire, protocol)
        connection_lost = protocol.connection_lost

        def on_lost(exc: BaseException | None) -> None:
            if timer is not None:
                timer.cancel()
            lost.set()
            self._open.pop(protocol, None)
            connection_lost(exc)

        protocol.connection_lost = on_lost

    def _goaway(self, protocol: Any) -> asyncio.Event | None:
        """GOAWAY (beside h2, which goes on carrying the calls the client sent before it)
        and refuse new streams; the connection's ``lost`` event, or None if it is gone."""
        entry = self._open.get(protocol)
        if entry is None:
            return None
        transport, lost = entry
        if lost.is_set() or transport.is_closing():
            return None
        if protocol.handler.accept is not _refuse:
            connection = protocol.connection
            connection.flush()  # anything h2 has ready goes before the GOAWAY
            last = h2_connection(connection).highest_inbound_stream_id
            transport.write(GoAwayFrame(0, last_stream_id=last, error_code=ErrorCodes.NO_ERROR).serialize())
            protocol.handler.accept = _refuse
        return lost

    def _expire(self, protocol: Any) -> None:
        lost = self._goaway(protocol)
        if lost is None:
            return
        _log.debug("Connection reached its maximum age: GOAWAY sent", calls=len(protocol.processor.streams))
        task = asyncio.ensure_future(self._retire(protocol, lost, self.grace, LINGER))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def end_all(self, timeout: float) -> None:
        """The end of a drain: GOAWAY on every connection; each is closed once the calls
        still on it (those refused ``UNAVAILABLE`` at the last moment) have answered,
        within ``timeout`` seconds (at least 1) and its client has had a moment
        (within ``timeout``) to close it first."""
        ends = []
        for protocol in list(self._open):
            lost = self._goaway(protocol)
            if lost is not None:
                ends.append(self._retire(protocol, lost, max(1.0, timeout), max(0.0, min(LINGER, timeout))))
        await asyncio.gather(*ends)

    async def _retire(self, protocol: Any, lost: asyncio.Event, grace: float | None, linger: float) -> None:
        """Close the connection once its calls are done (or ``grace`` has passed) and its
        client has had ``linger`` seconds to close it first."""
        loop = asyncio.get_running_loop()
        deadline = None if grace is None else loop.time() + grace
        connection, streams = protocol.connection, protocol.processor.streams
        waiter = connection.stream_close_waiter
        while streams and not lost.is_set():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                _log.info(
                    f"Closing a connection after its GOAWAY with {len(streams)} calls still running "
                    f"(after {grace:g} s)",
                    calls=len(streams),
                )
                break
            waiter.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(waiter.wait(), lost.wait()), remaining)
        if not streams and not lost.is_set() and linger > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), linger)
        if not lost.is_set():
            self._close(protocol)


def _refuse(stream: Any, headers: Any, release_stream: Callable[[], Any]) -> None:
    """A connection's handler after its GOAWAY: a stream the client opened before it saw
    the GOAWAY was never processed. (The client may have reset it already, in the same
    read.)"""
    if stream.closable:
        stream.reset_nowait(ErrorCodes.REFUSED_STREAM)
    release_stream()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
