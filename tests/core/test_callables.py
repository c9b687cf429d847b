"""Which callables are served as async code (awaited on the event loop) and which as sync
code (run in a worker thread): decided by the code that runs when the model is called,
through functools.partial, bound methods and __call__, not by what a wrapper wraps."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from blazerpc import BlazeApp
from blazerpc.testing import serve_app

LOOP_THREAD = "loop"
WORKER_THREAD = "worker"


def where() -> str:
    """Where model code runs: the event loop's thread (serve_app's loop runs in the
    test's thread) or a worker thread."""
    return LOOP_THREAD if threading.current_thread() is threading.main_thread() else WORKER_THREAD


async def scale(x: int, factor: int) -> str:
    await asyncio.sleep(0)
    return f"{x * factor} on {where()}"


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    async def __call__(self, x: int) -> str:
        await asyncio.sleep(0)
        return f"{x * self.factor} on {where()}"

    async def scale(self, x: int, offset: int) -> str:
        await asyncio.sleep(0)
        return f"{x * self.factor + offset} on {where()}"

    async def count(self, n: int, step: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"{i * step} on {where()}"


class StreamingScaler:
    async def __call__(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i} on {where()}"


class SyncScaler:
    def __call__(self, x: int) -> str:
        return f"{x * 5} on {where()}"


def blocking(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync wrapper that runs its async function to completion itself."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def passing_through(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync wrapper that hands back its async function's coroutine."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@blocking
async def blocked(x: int) -> str:
    return f"{x} inside asyncio.run on {where()}"


@passing_through
async def passed(x: int) -> str:
    return f"{x} on {where()}"


def sync_counter(n: int, step: int) -> Iterator[str]:
    for i in range(n):
        yield f"{i * step} on {where()}"


SCALER = Scaler(3)

UNARY: list[tuple[str, Callable[..., Any], str]] = [
    ("partial of an async function", functools.partial(scale, factor=2), "14 on loop"),
    ("object with async __call__", SCALER, "21 on loop"),
    ("partial of a bound async method", functools.partial(SCALER.scale, offset=1), "22 on loop"),
    ("object with sync __call__", SyncScaler(), "35 on worker"),
    # Sync code runs in a worker thread (asyncio.run would fail on the loop's thread)...
    ("sync wrapper running its async function", blocked, "7 inside asyncio.run on worker"),
    # ...and a coroutine it hands back is awaited on the loop.
    ("sync wrapper passing a coroutine through", passed, "7 on loop"),
]

STREAMING: list[tuple[str, Callable[..., Any], list[str]]] = [
    (
        "partial of an async generator method",
        functools.partial(SCALER.count, step=10),
        ["0 on loop", "10 on loop", "20 on loop"],
    ),
    ("object with async generator __call__", StreamingScaler(), ["0 on loop", "1 on loop", "2 on loop"]),
    (
        "partial of a sync generator",
        functools.partial(sync_counter, step=2),
        ["0 on worker", "2 on worker", "4 on worker"],
    ),
]


@pytest.mark.parametrize(("model", "expected"), [(m, e) for _, m, e in UNARY], ids=[i for i, _, _ in UNARY])
async def test_unary_callables(model: Callable[..., Any], expected: str) -> None:
    app = BlazeApp()
    app.model("m")(model)

    async with serve_app(app) as server:
        got = (await server.call("m", x=7)).result
    assert got == expected


@pytest.mark.parametrize(
    ("model", "expected"), [(m, e) for _, m, e in STREAMING], ids=[i for i, _, _ in STREAMING]
)
async def test_streaming_callables(model: Callable[..., Any], expected: list[str]) -> None:
    app = BlazeApp()
    app.model("m", streaming=True)(model)

    async def run() -> list[str]:
        async with serve_app(app) as server:
            return [m.result for m in await server.stream("m", n=3)]

    assert await run() == expected
