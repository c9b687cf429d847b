"""Models for the metrics tests: batched, unbatched and streaming, each of which fails on
request, behind the seed README's AuthMiddleware (it wants an ``authorization``
header)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp
from blazerpc.server.middleware import Middleware


class AuthMiddleware(Middleware):
    async def on_request(self, event):
        token = dict(event.metadata).get("authorization")
        if not token:
            raise GRPCError(Status.UNAUTHENTICATED, "Missing token")

    async def on_response(self, event):
        pass


app = BlazeApp(middleware=[AuthMiddleware()], max_batch_size=16)


@app.model("score")
def score(x: list[float]) -> list[float]:
    """Batched: one call for many requests. A negative value fails its request.

    With ``SHOP_SCORE_CALLS`` set, each call appends its row count to that file (one
    line per model call, from every worker), so tests know every model call made."""
    log = os.environ.get("SHOP_SCORE_CALLS")
    if log:
        with open(log, "a") as f:
            f.write(f"{len(x)}\n")
    if any(v < 0 for v in x):
        raise ValueError("negative input")
    return [v * 2 for v in x]


@app.model("lookup")
def lookup(key: int) -> int:
    """Unbatched (a scalar input has no batch axis)."""
    if key < 0:
        raise KeyError(key)
    return key + 1


@app.model("tokens", streaming=True)
def tokens(n: int) -> Iterator[str]:
    """Streaming: n messages, then an error if n is odd."""
    for i in range(n):
        yield f"t{i}"
    if n % 2:
        raise RuntimeError("odd length")


@app.model("wait")
async def wait(x: int) -> int:
    """Never returns while a test runs: a call that stays in flight."""
    import asyncio

    await asyncio.Event().wait()
    return x


@app.model("pid")
def pid(x: int) -> int:
    """The serving process: which worker answered."""
    return os.getpid()
