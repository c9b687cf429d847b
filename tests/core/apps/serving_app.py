"""Models for the production-serving tests: slow, hanging and identifying ones."""

from __future__ import annotations

import asyncio
import os

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("slow", max_concurrency=100)
async def slow(x: int) -> int:
    await asyncio.sleep(2.0)
    return 2 * x


@app.model("hang", max_concurrency=100)
async def hang(x: int) -> int:
    await asyncio.sleep(120)
    return x


@app.model("single")
async def single(x: int) -> int:
    # max_concurrency is 1 (the default): a second call waits in the queue.
    await asyncio.sleep(120)
    return x


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()
