"""Limits set on the app itself, nowhere near the defaults, for `blaze serve` to apply."""

from __future__ import annotations

import asyncio
import os

from blazerpc import BlazeApp

app = BlazeApp(max_message_size=1000, max_concurrent_calls=2, default_timeout=0.5)


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()


@app.model("hang", max_concurrency=100)
async def hang(x: int) -> int:
    await asyncio.sleep(120)
    return x
