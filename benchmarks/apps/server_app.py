"""The models of `benchmarks/server.py`, doing what `baseline_server.py` does by hand.

BENCH_BATCHING=off|on picks batching for `score`; BENCH_SYNC=1 serves `score` as a plain
`def` (run in a worker thread) instead of `async def` (run on the event loop, as the
baseline's handler is).
"""

import os
from collections.abc import AsyncIterator

import numpy as np

from blazerpc import BlazeApp, TensorInput, TensorOutput

N = "n"
app = BlazeApp(enable_batching=os.environ.get("BENCH_BATCHING", "off") == "on", max_batch_size=64)

if os.environ.get("BENCH_SYNC") == "1":

    @app.model("score")
    def score(x: list[float]) -> list[float]:
        return [v * 0.5 for v in x]

else:

    @app.model("score")
    async def score(x: list[float]) -> list[float]:
        return [v * 0.5 for v in x]


@app.model("echo")
async def echo(x: TensorInput[np.float32, N]) -> TensorOutput[np.float32, N]:
    return x


@app.model("count", streaming=True)
async def count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i
