"""A replica that says who it is: each answer carries the server's identity
(``BLAZERPC_TEST_REPLICA``, or its process id), so a test counts, from the servers'
side, which replica served which call. With ``BLAZERPC_TEST_CALLS`` set, every model
call also appends ``<identity> <model>`` to that file as it starts."""

from __future__ import annotations

import asyncio
import os

from blazerpc import BlazeApp

app = BlazeApp(enable_batching=False)


def _identity() -> str:
    return os.environ.get("BLAZERPC_TEST_REPLICA", str(os.getpid()))


def _note(model: str) -> None:
    calls = os.environ.get("BLAZERPC_TEST_CALLS")
    if calls:
        with open(calls, "a") as log:
            log.write(f"{_identity()} {model}\n")


@app.model("whoami")
async def whoami(x: int) -> str:
    _note("whoami")
    return _identity()


@app.model("slow")
async def slow(seconds: float) -> str:
    """Answers after ``seconds``: a call still in flight when its connection ages."""
    _note("slow")
    await asyncio.sleep(seconds)
    return _identity()
