"""Streaming models: async and sync generators."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("generate", streaming=True)
async def generate(prompt: str) -> AsyncIterator[str]:
    for token in prompt.split():
        yield token


@app.model("count", streaming=True)
def count(n: int) -> Iterator[int]:
    # Sync generators run in a worker thread, never on the event loop.
    assert threading.current_thread() is not threading.main_thread()
    yield from range(n)


@app.model("fail_midway", streaming=True)
def fail_midway(n: int) -> Iterator[int]:
    yield from range(n)
    raise RuntimeError(f"stopped after {n}")
