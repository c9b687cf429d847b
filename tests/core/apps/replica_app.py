"""A replica that says who it is: each answer carries the server's identity
(``BLAZERPC_TEST_REPLICA``, or its process id), so a test counts, from the servers'
side, which replica served which call."""

from __future__ import annotations

import asyncio
import os

from blazerpc import BlazeApp

app = BlazeApp(enable_batching=False)


def _identity() -> str:
    return os.environ.get("BLAZERPC_TEST_REPLICA", str(os.getpid()))


@app.model("whoami")
async def whoami(x: int) -> str:
    return _identity()


@app.model("slow")
async def slow(seconds: float) -> str:
    """Answers after ``seconds``: a call still in flight when its connection ages."""
    await asyncio.sleep(seconds)
    return _identity()
