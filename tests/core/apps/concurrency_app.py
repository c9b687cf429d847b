"""Models with the default concurrency settings (nothing set on the app or the models).

With ``BLAZERPC_TEST_ARRIVALS`` set, every call the server admits appends a line to that
file first, so a test knows its calls reached the server before it signals it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from blazerpc import BlazeApp, CallContext, Middleware


class _Arrivals(Middleware):
    def __init__(self, path: str) -> None:
        self.path = path

    async def on_request(self, context: CallContext) -> None:
        with open(self.path, "a") as arrivals:
            arrivals.write(f"{context.model}\n")


_ARRIVALS = os.environ.get("BLAZERPC_TEST_ARRIVALS")
app = BlazeApp(middleware=[_Arrivals(_ARRIVALS)] if _ARRIVALS else [])
_running = 0


@app.model("nap")
async def nap(x: int) -> int:
    """Sleeps 1 s; returns how many calls of it were running when it woke."""
    global _running
    _running += 1
    try:
        await asyncio.sleep(1.0)
        return _running
    finally:
        _running -= 1


@app.model("work")
def work(x: int) -> int:
    return x


@app.model("total")
def total(x: list[int]) -> list[int]:
    return x


@app.model("count", streaming=True)
def count(n: int) -> Iterator[int]:
    yield from range(n)
