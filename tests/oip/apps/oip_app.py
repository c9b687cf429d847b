"""Models for the Open Inference Protocol tests: one per datatype kind, a batched echo
that counts its calls, and a streaming model."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import numpy as np

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp(batch_timeout_ms=float(os.environ.get("OIP_BATCH_TIMEOUT_MS", "20")), max_batch_size=256)

#: Model calls of `rows`: per call, its rows below 100 and its rows from 100 on (the
#: batching test sends V2 calls values below 100, native calls values from 100).
ROW_CALLS: list[tuple[int, int]] = []


@app.model("scale", batching=False)
def scale(x: TensorInput[np.float32, 2, 3], factor: float) -> TensorOutput[np.float32, 2, 3]:
    """FP32 tensor times an FP64 scalar."""
    return x * np.float32(factor)


@app.model("count", batching=False)
def count(values: list[int], flags: list[bool]) -> tuple[int, list[bool]]:
    """INT64 and BOOL lists: the sum of values, and the flags negated."""
    return sum(values), [not f for f in flags]


@app.model("half", batching=False)
def half(x: TensorInput[np.float16, "n"]) -> TensorOutput[np.float16, "n"]:
    """FP16 tensor doubled."""
    return x * np.float16(2)


@app.model("shout", batching=False)
def shout(text: list[str], blob: bytes) -> tuple[list[str], bytes]:
    """BYTES: str upper-cased, bytes reversed."""
    return [t.upper() for t in text], blob[::-1]


@app.model("rows")
async def rows(x: TensorInput[np.float32, "batch", 1]) -> TensorOutput[np.float32, "batch", 1]:
    """A batched echo plus one; counts its calls (model `calls` reports them)."""
    ROW_CALLS.append((int((x < 100).sum()), int((x >= 100).sum())))
    await asyncio.sleep(0.01)
    return x + 1


@app.model("calls", batching=False)
def calls(reset: bool) -> TensorOutput[np.int64, "calls", 2]:
    """The row counts of every call of `rows` so far (then forgotten, with `reset`)."""
    found = np.array(ROW_CALLS, dtype=np.int64).reshape(-1, 2)
    if reset:
        ROW_CALLS.clear()
    return found


@app.model("tokens", streaming=True)
async def tokens(prompt: str, n: int) -> AsyncIterator[str]:
    """Streams `n` tokens: `prompt-0`, `prompt-1`..."""
    for i in range(n):
        yield f"{prompt}-{i}"
