"""Calling model code: sync code in worker threads, async code on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import queue
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from .._model import ModelSpec

__all__ = ["MODEL_THREADS", "ModelThreads", "make_stream", "make_unary"]

#: The worker threads of a server's sync models: at most this many sync calls at once.
MODEL_THREADS = 32

_DONE = object()

_Work = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ModelThreads(concurrent.futures.Executor):
    """The worker threads that run sync model code.

    Unlike ``ThreadPoolExecutor``, whose threads Python joins when the interpreter
    exits (so one model call that never returns keeps the process alive whatever
    ``shutdown(wait=False)`` says), these are daemon threads that nothing waits for:
    a server that gave up on a call can exit. :attr:`running` counts the calls inside
    model code, so a server can say how many it abandons.
    """

    def __init__(self, max_workers: int, name: str = "blazerpc-model") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a thread each time it waits for work
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._shutdown = False

    @property
    def running(self) -> int:
        """Calls executing in a thread right now (queued ones not counted)."""
        with self._lock:
            return self._running

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("the server is shutting down: no new model calls are started")
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            self._run(*work)
            del work  # the call's arguments and result are not kept while the thread waits
            self._idle.release()

    def _run(
        self,
        future: concurrent.futures.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if not future.set_running_or_notify_cancel():
            return
        with self._lock:
            self._running += 1
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the caller gets whatever the model raised
            self._done_running()
            future.set_exception(exc)
        else:
            self._done_running()  # before the caller can see the result: no longer running
            future.set_result(result)

    def _done_running(self) -> None:
        with self._lock:
            self._running -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; with ``cancel_futures``, queued ones are cancelled. ``wait``
        waits for the threads, which a call that never returns makes wait forever:
        a server stopping passes ``wait=False`` and exits without them."""
        with self._lock:
            if not self._shutdown:
                self._shutdown = True
                if cancel_futures:
                    while True:
                        try:
                            work = self._work.get_nowait()
                        except queue.Empty:
                            break
                        if work is not None:
                            work[0].cancel()
                for _ in self._threads:
                    self._work.put(None)  # each thread ends once its current call returns
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()


def _next(gen: Iterator[Any]) -> Any:
    # StopIteration cannot cross a Future; return a sentinel instead.
    return next(gen, _DONE)


def _keyword_only(spec: ModelSpec, n_inputs: int) -> list[str]:
    params = list(inspect.signature(spec.func).parameters.values())[:n_inputs]
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY]


def _binder(
    spec: ModelSpec, n_inputs: int
) -> Callable[[Sequence[Any]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """Splits decoded arguments into positional and keyword-only ones, as the function wants."""
    params = list(inspect.signature(spec.func).parameters.values())[:n_inputs]
    keyword_only = _keyword_only(spec, n_inputs)
    if not keyword_only:
        return lambda args: (tuple(args), {})
    split = len(params) - len(keyword_only)
    return lambda args: (tuple(args[:split]), dict(zip(keyword_only, args[split:], strict=True)))


def make_unary(
    spec: ModelSpec, n_inputs: int, executor: concurrent.futures.Executor
) -> Callable[[Sequence[Any]], Awaitable[Any]]:
    """An awaitable call of a unary model with decoded arguments."""
    func, bind = spec.func, _binder(spec, n_inputs)
    if spec.kind == "coroutine":
        if _keyword_only(spec, n_inputs):

            async def call_async(args: Sequence[Any]) -> Any:
                positional, keywords = bind(args)
                return await func(*positional, **keywords)

            return call_async
        # The model's own coroutine, awaited by the caller: no frame around it.
        return lambda args: func(*args)

    def run(loop: asyncio.AbstractEventLoop, positional: tuple[Any, ...], keywords: dict[str, Any]) -> Any:
        result = func(*positional, **keywords)
        if inspect.iscoroutine(result):
            # A sync wrapper that passes its async function's coroutine through (a
            # decorator written with def and functools.wraps): run it on the loop, and
            # hold this thread (and the call's slot) until it is done.
            return asyncio.run_coroutine_threadsafe(result, loop).result()
        return result

    def call_in_thread(args: Sequence[Any]) -> asyncio.Future[Any]:
        # A future, not a coroutine: awaited as it is, with no task of its own, and it
        # completes only when the thread returns (what a concurrency limit waits for).
        positional, keywords = bind(args)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(executor, functools.partial(run, loop, positional, keywords))

    return call_in_thread


def make_stream(
    spec: ModelSpec, n_inputs: int, executor: concurrent.futures.Executor
) -> Callable[[Sequence[Any]], AsyncGenerator[Any, None]]:
    """An async generator over what a streaming model yields; the caller ``aclose()``s it.

    An async generator model's own generator is returned as it is: wrapping it in
    another would cost a generator step per message.
    """
    func, bind = spec.func, _binder(spec, n_inputs)
    if spec.kind == "async_generator":

        def iterate_async(args: Sequence[Any]) -> AsyncGenerator[Any, None]:
            positional, keywords = bind(args)
            agen: AsyncGenerator[Any, None] = func(*positional, **keywords)
            return agen

        return iterate_async

    async def iterate_in_thread(args: Sequence[Any]) -> AsyncGenerator[Any, None]:
        positional, keywords = bind(args)
        gen = func(*positional, **keywords)  # creating a generator runs none of its code
        pending: concurrent.futures.Future[Any] | None = None
        try:
            while True:
                pending = executor.submit(_next, gen)
                item = await asyncio.wrap_future(pending)
                if item is _DONE:
                    return
                yield item
        finally:
            # Close the generator in a worker, once it is not running (a cancelled call
            # may leave a next() in flight).
            if pending is None or pending.done():
                executor.submit(gen.close)
            else:
                pending.add_done_callback(lambda _: gen.close())

    return iterate_in_thread
