"""The admission step of every inference call: the server's limits, draining, the
default timeout, and the in-flight set that a graceful shutdown waits on."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from .._draining import DRAINING
from .._limits import Limits

# Limits lives in blazerpc._limits (public as blazerpc.Limits); re-exported for this package.
__all__ = ["Admitted", "CallTracker", "Limits"]


class CallTracker:
    """Admits inference calls: tracks those in flight and applies the server's limits.

    Every call's pipeline (``_pipeline``) asks :meth:`admit` once the outer middleware
    has seen the call, so the access log and metrics see a refused call with the status
    its client gets. The tracked object is grpclib's task for the call, which
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

    def admit(self, stream: Stream[Any, Any], streaming: bool) -> Admitted:
        """Admit the running call, or refuse it: ``GRPCError`` ``UNAVAILABLE`` while
        draining, ``RESOURCE_EXHAUSTED`` at max_concurrent_calls. Use the returned
        context manager around the rest of the call (see :class:`Admitted`).

        A stream that carries several calls (a plugin protocol's bidirectional stream,
        one call per request message) is one task: tracked, and counted against the
        limit, once, until it ends."""
        if self.draining:
            raise GRPCError(Status.UNAVAILABLE, f"{DRAINING}; retry on another instance")
        task = asyncio.current_task()
        assert task is not None
        if task not in self.in_flight:
            if len(self.in_flight) >= self.limits.max_concurrent_calls:
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"the server is at its limit of {self.limits.max_concurrent_calls} concurrent calls "
                    "(max_concurrent_calls); retry later",
                )
            self.in_flight.add(task)
            task.add_done_callback(self._discard)
        return Admitted(self, task, self._default_timeout(task, stream, streaming))

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


class Admitted:
    """One admitted call (:meth:`CallTracker.admit`), as a context manager around the
    rest of it: on the way out, its default timeout is cancelled, and the server's own
    cancellation of it (the timeout, the end of a drain) becomes the ``GRPCError`` its
    client gets."""

    __slots__ = ("_calls", "_task", "_timer")

    def __init__(
        self, calls: CallTracker, task: asyncio.Task[Any], timer: asyncio.TimerHandle | None
    ) -> None:
        self._calls = calls
        self._task = task
        self._timer = timer

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            error = self._calls.cancelled(self._task)
            if error is not None:
                self._task.uncancel()  # the server's own cancellation ends here, as a status
                raise error from None
