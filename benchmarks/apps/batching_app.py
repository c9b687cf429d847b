"""A model whose cost is mostly fixed per call, like a GPU forward pass: 5 ms per call
plus 0.05 ms per row, spent off the GIL. BENCH_BATCHING picks off/adaptive/fixed."""

import os
import time

from blazerpc import BlazeApp

mode = os.environ.get("BENCH_BATCHING", "adaptive")
app = BlazeApp(
    enable_batching=mode != "off",
    batch_policy=mode if mode != "off" else "adaptive",
    max_batch_size=64,
    batch_timeout_ms=5.0,
    max_concurrency=1,  # one call (or batch) at a time, as a GPU would
)


@app.model("score")
def score(x: list[float]) -> list[float]:
    time.sleep(0.005 + 0.00005 * len(x))
    return [v * 0.5 for v in x]
