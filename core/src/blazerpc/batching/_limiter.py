"""At most ``max_concurrency`` calls of an unbatched model at a time, and a bounded
number waiting: each call is then a batch of one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError

__all__ = ["ConcurrencyLimit"]


class ConcurrencyLimit:
    """Runs calls of one model under a concurrency limit with a bounded wait queue.

    A call whose client goes away while the model runs keeps its slot until the model
    really returns: a sync model cannot be interrupted in its thread, and the limit must
    hold for what actually runs. Async models are cancelled with the call.
    """

    def __init__(
        self, model: str, max_concurrency: int, max_queue_size: int, *, cancel_with_call: bool
    ) -> None:
        self._model = model
        self._max_queue = max_queue_size
        self._slots = asyncio.Semaphore(max_concurrency)
        self._waiting = 0
        self._cancel_with_call = cancel_with_call

    async def run(self, call: Callable[[list[Any]], Awaitable[Any]], args: list[Any]) -> Any:
        if self._slots.locked():
            if self._waiting >= self._max_queue:
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"model {self._model!r} is overloaded: {self._waiting} calls are waiting "
                    f"(max_queue_size={self._max_queue}); retry later",
                )
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        if self._cancel_with_call:
            # An async model stops when its call is cancelled: it runs in this task, and
            # its slot is free again when it returns or is cancelled.
            try:
                return await call(args)
            finally:
                self._slots.release()
        # A sync model runs on in its thread if the call is cancelled: the slot is held
        # until it returns. Its call is the executor's future, which ensure_future keeps
        # as it is (a coroutine, from a batch listener's wrapper, becomes a task).
        running = asyncio.ensure_future(call(args))
        running.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(running)
