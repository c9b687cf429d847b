"""A slow model, for the server's own limits (max_concurrent_calls, default_timeout)."""

from __future__ import annotations

import asyncio

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("slow", max_concurrency=100)
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
