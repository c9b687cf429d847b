"""The per-model batcher: a queue, a dispatcher task, and failure isolation.

Requests join the queue with their decoded inputs. When the policy says so, the
dispatcher takes the oldest request and every later one that can join it (same batch
key, within ``max_batch_size`` rows), concatenates their inputs, calls the model once,
and slices each output back by each request's row count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from .._draining import DRAINING
from ..exceptions import InferenceError, InvalidInputError
from ..wire import BatchAxis
from ._listeners import BatchListener, notify_queue_depth, report_call
from ._policies import BatchConfig, BatchPolicy, QueueState

__all__ = ["Batcher"]

_log = structlog.get_logger("blazerpc")


@dataclass(eq=False, slots=True)
class _Pending:
    args: list[Any]
    rows: int
    key: Hashable
    future: asyncio.Future[list[Any]]
    enqueued: float
    deadline: float | None  # time.monotonic() by which the client gives up
    queued: bool = True  # still waiting (not dispatched, failed or gone)


@dataclass(eq=False, slots=True)
class _Lane:
    """The waiting requests of one batch key, oldest first, and their rows."""

    waiting: OrderedDict[_Pending, None] = field(default_factory=OrderedDict)
    rows: int = 0


class _RowCountError(InferenceError):
    """The model returned a different number of rows than it was given."""


@dataclass
class Batcher:
    """Batches the calls of one model. Create and start it inside the event loop.

    The queue is kept so that every step is O(1) per request: ``_queue`` holds every
    waiting request oldest first, ``_lanes`` the same requests by batch key (only
    requests of one key can share a batch). A request whose client goes away (or whose
    deadline passes: grpclib then cancels the call) leaves both at once, freeing its rows
    for others, even while the model is busy and the dispatcher asleep.
    """

    model: str
    version: str
    inputs: Sequence[BatchAxis]
    output_names: Sequence[str]
    call: Callable[[list[Any]], Awaitable[Any]]
    split_result: Callable[[Any], list[Any]]
    policy: BatchPolicy
    config: BatchConfig
    listeners: Sequence[BatchListener] = ()
    #: Per output, what turns the model's value into something sliceable (tensor
    #: outputs: the array converters, so a torch.Tensor or OrtValue splits as numpy).
    prepare_outputs: Sequence[Callable[[Any], Any] | None] = ()
    _queue: OrderedDict[_Pending, None] = field(default_factory=OrderedDict, init=False)
    _lanes: dict[Hashable, _Lane] = field(default_factory=dict, init=False)
    _queued_rows: int = field(default=0, init=False)
    _in_flight: int = field(default=0, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _batches: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    # --- the request side ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever())
        self._task.add_done_callback(self._dispatcher_ended)

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("the batch dispatcher stopped", model=self.model, exc_info=task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        error = GRPCError(Status.UNAVAILABLE, DRAINING)
        for pending in self._queue:
            pending.queued = False
            if not pending.future.done():
                pending.future.set_exception(error)
        self._queue.clear()
        self._lanes.clear()
        self._queued_rows = 0

    def _rows_and_key(self, args: list[Any]) -> tuple[int, Hashable]:
        rows = [axis.rows(value) for axis, value in zip(self.inputs, args, strict=True)]
        if len(set(rows)) > 1:
            raise InvalidInputError(
                "inputs have different batch lengths: "
                + ", ".join(f"{n} rows in input {i + 1}" for i, n in enumerate(rows))
                + f"; model {self.model!r} is batched, so every input needs one row per item (if "
                "its lists are not rows of a batch, register it with batching=False)"
            )
        key = tuple(axis.key(v) if axis.key else None for axis, v in zip(self.inputs, args, strict=True))
        return rows[0] if rows else 0, key

    async def submit(self, args: list[Any], timeout: float | None) -> list[Any]:
        """Queue one request's decoded inputs; returns its output field values."""
        rows, key = self._rows_and_key(args)
        if self._task is None or self._task.done():
            raise GRPCError(
                Status.INTERNAL,
                f"the batcher of model {self.model!r} is not running (it stopped after an error: "
                "see the server log); restart the server",
            )
        limit = self.config.max_queue_size
        if self._queue and self._queued_rows + rows > limit:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"model {self.model!r} is overloaded: {self._queued_rows} rows are queued "
                f"(max_queue_size={limit}); retry later",
            )
        now = time.monotonic()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        pending = _Pending(args, rows, key, future, now, now + timeout if timeout is not None else None)
        self._queue[pending] = None
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.waiting[pending] = None
        lane.rows += rows
        self._queued_rows += rows
        self._queue_changed()
        self._wake.set()
        try:
            return await future
        finally:
            if pending.queued:  # the call was cancelled (client gone, deadline) while queued
                self._leave(pending)
                self._queue_changed()

    # --- the queue -------------------------------------------------------------------

    def _queue_changed(self) -> None:
        if self.listeners:
            notify_queue_depth(self.listeners, self.model, self.version, self._queued_rows)

    def _leave(self, pending: _Pending) -> None:
        """Take ``pending`` out of the queue (O(1)); its rows are free at once."""
        pending.queued = False
        del self._queue[pending]
        lane = self._lanes[pending.key]
        del lane.waiting[pending]
        lane.rows -= pending.rows
        if not lane.waiting:
            del self._lanes[pending.key]
        self._queued_rows -= pending.rows

    def _take(self, lane: _Lane) -> list[_Pending]:
        """The oldest requests of ``lane`` that fit in one batch: always its first, then
        the following ones while their rows fit (FIFO: none is skipped for a smaller
        later one). A request whose deadline has passed is failed instead."""
        batch: list[_Pending] = []
        rows = 0
        now = time.monotonic()
        limit = self.config.max_batch_size
        waiting = lane.waiting
        while waiting:
            p = next(iter(waiting))
            if batch and rows + p.rows > limit:
                break
            self._leave(p)
            if p.future.done():  # cancelled a moment ago: its call has not resumed yet
                continue
            if p.deadline is not None and now >= p.deadline:
                p.future.set_exception(
                    GRPCError(Status.DEADLINE_EXCEEDED, "the deadline passed while the request was queued")
                )
                continue
            batch.append(p)
            rows += p.rows
        self._queue_changed()
        return batch

    # --- the dispatcher --------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue or self._in_flight >= self.config.max_concurrency:
                self._wake.clear()
                await self._wake.wait()
                continue
            head = next(iter(self._queue))
            lane = self._lanes[head.key]
            state = QueueState(
                rows=lane.rows,
                oldest_wait=time.monotonic() - head.enqueued,
                in_flight=self._in_flight,
                config=self.config,
            )
            try:
                delay = self.policy.delay(state)
                wait = bool(delay > 0)  # raises for what is not a number of seconds (None, say)
            except Exception as exc:  # noqa: BLE001 - a broken policy fails its requests, not the server
                self._policy_failed(lane, exc)
                continue
            if wait:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            batch = self._take(lane)
            if not batch:
                continue
            self._in_flight += 1
            task = loop.create_task(self._run(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    def _policy_failed(self, lane: _Lane, exc: Exception) -> None:
        """The policy raised deciding about ``lane``'s next batch: those requests fail."""
        name, kind = self.config.policy, type(self.policy).__qualname__
        _log.error("batching policy failed", model=self.model, policy=name, exc_info=exc)
        error = GRPCError(
            Status.INTERNAL,
            f"batching policy {name!r} ({kind}) of model {self.model!r} failed: "
            f"{type(exc).__name__}: {exc}; fix the policy, or choose another with batch_policy=...",
        )
        for p in self._take(lane):
            if not p.future.done():
                p.future.set_exception(error)

    # --- running a batch -------------------------------------------------------------

    def _split(self, result: Any, sizes: list[int]) -> list[list[Any]]:
        """Per request, its slice of every output field."""
        total = sum(sizes)
        fields = self.split_result(result)
        if self.prepare_outputs:
            fields = [v if p is None else p(v) for p, v in zip(self.prepare_outputs, fields, strict=True)]
        for name, value in zip(self.output_names, fields, strict=True):
            try:
                got = len(value)
            except TypeError:
                raise _RowCountError(
                    f"model {self.model!r} is batched but returned {type(value).__name__} for "
                    f"{name!r}; return one row per input row"
                ) from None
            if got != total:
                raise _RowCountError(
                    f"model {self.model!r} returned {got} rows in {name!r} for a batch of {total} rows; "
                    "a batched model must return one row per input row"
                )
        out: list[list[Any]] = []
        start = 0
        for size in sizes:
            out.append([value[start : start + size] for value in fields])
            start += size
        return out

    async def _call(self, batch: list[_Pending]) -> list[list[Any]]:
        joined = [axis.concat([p.args[i] for p in batch]) for i, axis in enumerate(self.inputs)]
        return self._split(await self.call(joined), [p.rows for p in batch])

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        waits = tuple(started - p.enqueued for p in batch)
        try:
            try:
                outputs = await self._call(batch)
            except _RowCountError as exc:
                self._report(batch, waits, started, failed=True)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - the error goes to the requests that caused it
                self._report(batch, waits, started, failed=True)
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(exc)
                else:
                    await self._isolate(batch)
            else:
                for p, values in zip(batch, outputs, strict=True):
                    if not p.future.done():
                        p.future.set_result(values)
                self._report(batch, waits, started, failed=False)
        finally:
            self._in_flight -= 1
            self._wake.set()

    def _report(
        self,
        batch: list[_Pending],
        waits: tuple[float, ...],
        started: float,
        *,
        failed: bool,
        rerun: bool = False,
    ) -> None:
        """One model call, to the listeners."""
        if self.listeners:
            report_call(
                self.listeners,
                self.model,
                self.version,
                rows=sum(p.rows for p in batch),
                requests=len(batch),
                queue_waits=waits,
                started=started,
                failed=failed,
                rerun=rerun,
            )

    async def _isolate(self, batch: list[_Pending]) -> None:
        """Re-run each request of a failed batch alone: only the culprits get an error.
        Each re-run is a model call of its own, reported as such."""
        _log.info("batch failed; re-running its requests one by one", model=self.model, requests=len(batch))
        for p in batch:
            if p.future.done():
                continue
            started = time.monotonic()
            try:
                [values] = await self._call([p])
            except Exception as exc:  # noqa: BLE001 - this request's own error
                self._report([p], (), started, failed=True, rerun=True)
                if not p.future.done():
                    p.future.set_exception(exc)
            else:
                if not p.future.done():
                    p.future.set_result(values)
                self._report([p], (), started, failed=False, rerun=True)
