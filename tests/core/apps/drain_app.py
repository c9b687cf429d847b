"""Models for the shutdown tests: sync code that never returns in time, and models held
busy by a gate so that later requests really wait in their queue.

The gate is a file that ``BLAZERPC_TEST_GATE`` names. Each call of a gated model
appends a line to ``<gate>.entered`` (so a test sees which calls are inside the model),
then waits until the gate file exists; ``hang_sync`` appends its line too. Every call the
server admits appends one to ``<gate>.arrived`` first (so a test knows its calls reached
the server before it signals it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from blazerpc import BlazeApp, CallContext, Middleware


def _note(suffix: str, line: object) -> None:
    gate = os.environ.get("BLAZERPC_TEST_GATE")
    if gate is not None:
        with open(gate + suffix, "a") as notes:
            notes.write(f"{line}\n")


class _Arrivals(Middleware):
    async def on_request(self, context: CallContext) -> None:
        _note(".arrived", context.model)


app = BlazeApp(middleware=[_Arrivals()])


def _wait_at_the_gate(what: object) -> None:
    gate = Path(os.environ["BLAZERPC_TEST_GATE"])
    _note(".entered", what)
    deadline = time.monotonic() + 60
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened the gate {gate}")
        time.sleep(0.01)


@app.model("hang_sync", max_concurrency=100)
def hang_sync(x: int) -> int:
    """A sync model stuck in its thread: nothing can interrupt it."""
    _note(".entered", x)
    time.sleep(3600)
    return x


@app.model("queued", max_concurrency=1)
def queued(x: int) -> int:
    """Unbatched, one call at a time (max_concurrency=1): later calls wait for the slot."""
    _wait_at_the_gate(x)
    return 10 * x


@app.model("queued_batch", max_batch_size=64)
def queued_batch(x: list[int]) -> tuple[list[int], list[int]]:
    """Batched: while one batch is at the gate, later requests queue; each row of the
    answer also says how many rows its batch had."""
    _wait_at_the_gate(x)
    return [10 * v for v in x], [len(x)] * len(x)


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()
