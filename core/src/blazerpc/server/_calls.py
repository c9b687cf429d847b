"""Every inference call passes through here: limits, draining, and the in-flight set
that a graceful shutdown waits on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from .._limits import Limits

T = TypeVar("T")

# Limits lives in blazerpc._limits (public as blazerpc.Limits); re-exported for this package.
__all__ = ["CallTracker", "Limits", "read_request"]


async def read_request(stream: Stream[Any, Any], max_size: int) -> bytes:
    """Read the one request message of a call, refusing an oversized one from its header.

    grpclib's own reader buffers the whole message first; this reads the 5-byte
    length prefix, checks it, and only then the body.
    """
    recv = stream._stream.recv_data  # grpclib's HTTP/2 stream: the only way to see the prefix first
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


class CallTracker:
    """Admits inference calls: tracks those in flight and applies the server's limits.

    The handler of every call (``_service``) asks :meth:`admit` once the outer
    middleware has seen the call, so the access log and metrics see a refused call with
    the status its client gets. The tracked object is grpclib's task for the call, which
    ends only after the trailers are sent, so waiting on it waits for the client to have
    its answer.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.draining = False
        self._cancelling: set[asyncio.Task[Any]] = set()  # cancelled at the end of a drain
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled by the default timeout
        self._discard = self.in_flight.discard  # one bound method, not one per call

    def admit(self) -> asyncio.Task[Any]:
        """Count the running call in and return its task, or refuse it: ``GRPCError``
        ``UNAVAILABLE`` while draining, ``RESOURCE_EXHAUSTED`` at max_concurrent_calls."""
        if self.draining:
            raise GRPCError(Status.UNAVAILABLE, "the server is shutting down; retry on another instance")
        if len(self.in_flight) >= self.limits.max_concurrent_calls:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {self.limits.max_concurrent_calls} concurrent calls "
                "(max_concurrent_calls); retry later",
            )
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        task.add_done_callback(self._discard)
        return task

    async def run(
        self,
        call: Callable[[Stream[Any, Any], Any], Awaitable[T]],
        streaming: bool,
        stream: Stream[Any, Any],
        context: Any = None,
    ) -> T:
        """``call(stream, context)``, admitted (:meth:`admit`) and under the default
        timeout; the server's own cancellation of it (the timeout, the end of a drain)
        ends as the ``GRPCError`` its client gets."""
        task = self.admit()
        timer = self._default_timeout(task, stream, streaming)
        try:
            return await call(stream, context)
        except asyncio.CancelledError:
            error = self.cancelled(task)
            if error is None:
                raise
            task.uncancel()  # the server's own cancellation ends here, as a status
            raise error from None
        finally:
            if timer is not None:
                timer.cancel()

    def _default_timeout(
        self, task: asyncio.Task[Any], stream: Stream[Any, Any], streaming: bool
    ) -> asyncio.TimerHandle | None:
        """Start the default timeout of ``task``, a unary call whose client sent no
        deadline; cancel the returned handle when the call is done."""
        timeout = self.limits.default_timeout
        if timeout is None or streaming or stream.deadline is not None:
            return None
        return asyncio.get_running_loop().call_later(timeout, self._expire, task)

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired.add(task)
        task.add_done_callback(self._expired.discard)
        task.cancel()

    def cancelled(self, task: asyncio.Task[Any]) -> GRPCError | None:
        """Why this server cancelled ``task``, as the error its client gets; ``None`` if
        the server did not (the client went away, or its own deadline passed: grpclib
        cancels those calls itself)."""
        if task in self._cancelling:  # shut down at the end of the grace period
            return GRPCError(Status.UNAVAILABLE, "the server shut down before the call completed; retry")
        if task in self._expired:
            return GRPCError(
                Status.DEADLINE_EXCEEDED,
                f"the call took longer than the server's default timeout of "
                f"{self.limits.default_timeout:g} s (the client sent no deadline)",
            )
        return None

    def cancel_all(self) -> None:
        """Cancel every call still in flight; each answers ``UNAVAILABLE``."""
        for task in list(self.in_flight):
            self._cancelling.add(task)
            task.cancel()
