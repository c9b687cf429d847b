"""Models for the Python client and `blaze call` / `blaze bench`: versions, names the
RPC rule has to map, metadata seen by middleware, a slow model, a stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import numpy as np
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, TensorInput, TensorOutput
from blazerpc.server.middleware import Middleware


class Gate(Middleware):
    """Rejects a call that carries ``x-deny`` metadata, with its value as the message."""

    async def on_request(self, event):
        denied = dict(event.metadata).get("x-deny")
        if denied:
            raise GRPCError(Status.PERMISSION_DENIED, f"denied: {denied}")

    async def on_response(self, event):
        pass


app = BlazeApp(middleware=[Gate()])


@app.model("sentiment")
def sentiment(text: list[str]) -> list[float]:
    return [0.95] * len(text)


@app.model("sentiment", version="2")
def sentiment_v2(text: list[str]) -> list[float]:
    return [0.5] * len(text)


@app.model("text-embed", version="1.5")
def text_embed(text: list[str]) -> TensorOutput[np.float32, "batch", 4]:
    return np.array([[len(t), 1, 2, 3] for t in text], dtype=np.float32)


@app.model("scale")
def scale(x: TensorInput[np.float32, "batch", 3], factor: float) -> TensorOutput[np.float32, "batch", 3]:
    return x * np.float32(factor)


@app.model("sleepy", max_concurrency=100)
async def sleepy(seconds: float) -> float:
    """Sleeps for `seconds`, then returns them.

    A second paragraph, left out of the schema.
    """
    await asyncio.sleep(seconds)
    return seconds


_flaky_calls = itertools.count(1)


@app.model("flaky")
def flaky(x: int) -> int:
    """Every third call fails with RESOURCE_EXHAUSTED."""
    if next(_flaky_calls) % 3 == 0:
        raise GRPCError(Status.RESOURCE_EXHAUSTED, "every third call")
    return x


@app.model("words", streaming=True)
def words(text: str) -> Iterator[str]:
    yield from text.split()
