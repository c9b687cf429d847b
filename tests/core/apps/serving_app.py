"""Models for the production-serving tests: slow, hanging and identifying ones.

With ``BLAZERPC_TEST_ARRIVALS`` set, every call the server admits appends a line to
that file first, so a test knows its calls reached the server before it signals it.
"""

from __future__ import annotations

import asyncio
import os

from blazerpc import BlazeApp, CallContext, Middleware


class _Arrivals(Middleware):
    def __init__(self, path: str) -> None:
        self.path = path

    async def on_request(self, context: CallContext) -> None:
        with open(self.path, "a") as arrivals:
            arrivals.write(f"{context.model}\n")


_ARRIVALS = os.environ.get("BLAZERPC_TEST_ARRIVALS")
app = BlazeApp(middleware=[_Arrivals(_ARRIVALS)] if _ARRIVALS else [])


@app.model("slow", max_concurrency=100)
async def slow(x: int) -> int:
    await asyncio.sleep(2.0)
    return 2 * x


@app.model("hang", max_concurrency=100)
async def hang(x: int) -> int:
    await asyncio.sleep(120)
    return x


@app.model("single", max_concurrency=1)
async def single(x: int) -> int:
    # One call at a time: a second call waits in the queue.
    await asyncio.sleep(120)
    return x


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()
