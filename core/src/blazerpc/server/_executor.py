"""Calling model code: sync code in worker threads, async code on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from .._model import ModelSpec

__all__ = ["make_stream", "make_unary"]

_DONE = object()


def _next(gen: Iterator[Any]) -> Any:
    # StopIteration cannot cross a Future; return a sentinel instead.
    return next(gen, _DONE)


def _binder(
    spec: ModelSpec, n_inputs: int
) -> Callable[[Sequence[Any]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """Splits decoded arguments into positional and keyword-only ones, as the function wants."""
    import inspect

    params = list(inspect.signature(spec.func).parameters.values())[:n_inputs]
    keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
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

        async def call_async(args: Sequence[Any]) -> Any:
            positional, keywords = bind(args)
            return await func(*positional, **keywords)

        return call_async

    async def call_in_thread(args: Sequence[Any]) -> Any:
        positional, keywords = bind(args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(func, *positional, **keywords))

    return call_in_thread


def make_stream(
    spec: ModelSpec, n_inputs: int, executor: concurrent.futures.Executor
) -> Callable[[Sequence[Any]], AsyncIterator[Any]]:
    """An async iterator over what a streaming model yields."""
    func, bind = spec.func, _binder(spec, n_inputs)
    if spec.kind == "async_generator":

        async def iterate_async(args: Sequence[Any]) -> AsyncIterator[Any]:
            positional, keywords = bind(args)
            agen = func(*positional, **keywords)
            try:
                async for item in agen:
                    yield item
            finally:
                await agen.aclose()

        return iterate_async

    async def iterate_in_thread(args: Sequence[Any]) -> AsyncIterator[Any]:
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
