"""The "limit" step of an unbatched model's calls: at most ``max_concurrency`` at a time
and a bounded number waiting (:class:`ConcurrencyLimit`), or no limit of the model's own
(:class:`NoLimit`); and, for the batch listeners, each call reported as a batch of one
(:class:`ObservedLimit`)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from ..batching import BatchListener
from ..batching._listeners import notify_queue_depth, report_call

__all__ = ["ConcurrencyLimit", "Limit", "NoLimit", "ObservedLimit"]

_Call = Callable[[list[Any]], Awaitable[Any]]


class Limit(Protocol):
    """Runs ``call(args)`` when the model may take it."""

    def run(self, call: _Call, args: list[Any]) -> Awaitable[Any]: ...


class NoLimit:
    """No limit of the model's own: the server's ``max_concurrent_calls`` bounds an
    ``async def`` model, and the model threads a sync one."""

    def run(self, call: _Call, args: list[Any]) -> Awaitable[Any]:
        return call(args)


class ConcurrencyLimit:
    """Runs calls of one model under a concurrency limit with a bounded wait queue.

    A call whose client goes away while the model runs keeps its slot until the model
    really returns: a sync model cannot be interrupted in its thread, and the limit must
    hold for what actually runs. Async models are cancelled with the call.

    The slots are a counter and a queue of waiting calls, first come first served: a
    call that finds a free slot takes it without awaiting anything (asyncio's
    Semaphore costs several calls even then), and a freed slot goes straight to the
    longest-waiting call.
    """

    def __init__(
        self, model: str, max_concurrency: int, max_queue_size: int, *, cancel_with_call: bool
    ) -> None:
        self._model = model
        self._max_queue = max_queue_size
        self._free = max_concurrency
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._cancel_with_call = cancel_with_call

    async def _acquire(self) -> None:
        if len(self._waiters) >= self._max_queue:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"model {self._model!r} is overloaded: {len(self._waiters)} calls are waiting "
                f"(max_queue_size={self._max_queue}); retry later",
            )
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn  # resolved by _release: the slot is handed over
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot, but cancelled before taking it: pass it on
            elif turn in self._waiters:  # (a release may have skipped it already)
                self._waiters.remove(turn)
            raise

    def _release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

    async def run(self, call: _Call, args: list[Any]) -> Any:
        if self._free and not self._waiters:
            self._free -= 1
        else:
            await self._acquire()
        if self._cancel_with_call:
            # An async model stops when its call is cancelled: it runs in this task, and
            # its slot is free again when it returns or is cancelled.
            try:
                return await call(args)
            finally:
                self._release()
        # A sync model runs on in its thread if the call is cancelled: the slot is held
        # until it returns. Its call is the executor's future, which ensure_future keeps
        # as it is (a coroutine, from a batch listener's wrapper, becomes a task).
        try:
            running = asyncio.ensure_future(call(args))
        except BaseException:  # no model call started (the executor shut down, say)
            self._release()
            raise
        running.add_done_callback(lambda _: self._release())
        return await asyncio.shield(running)


class ObservedLimit:
    """``limit``, with each call reported to the batch listeners as a batch of one row:
    its wait for a slot (the queue depth counts waiting calls) and its model time."""

    def __init__(self, limit: Limit, listeners: Sequence[BatchListener], model: str, version: str) -> None:
        self._limit = limit
        self._listeners = tuple(listeners)
        self._model = model
        self._version = version
        self._waiting = 0

    def _queue_changed(self) -> None:
        notify_queue_depth(self._listeners, self._model, self._version, self._waiting)

    async def run(self, call: _Call, args: list[Any]) -> Any:
        queued = time.monotonic()
        waiting = True
        self._waiting += 1
        self._queue_changed()

        def leave_queue() -> None:
            nonlocal waiting
            if waiting:  # once: when the call starts, or when it gives up waiting
                waiting = False
                self._waiting -= 1
                self._queue_changed()

        async def observed(call_args: list[Any]) -> Any:
            leave_queue()
            started = time.monotonic()
            failed = True
            try:
                result = await call(call_args)
                failed = False
                return result
            finally:
                # Reported when the model is done, even if the client left meanwhile.
                report_call(
                    self._listeners,
                    self._model,
                    self._version,
                    rows=1,
                    requests=1,
                    queue_waits=(started - queued,),
                    started=started,
                    failed=failed,
                )

        try:
            return await self._limit.run(observed, args)
        finally:
            leave_queue()
