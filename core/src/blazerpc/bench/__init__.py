"""``blaze bench``: a closed-loop load generator for any BlazeRPC server.

Each level runs ``concurrency`` callers (spread over one or more load processes) that
send the same request, encoded once, again as soon as the previous answer arrived;
after a warm-up, the calls ending in a fixed window are measured: requests per second,
latency percentiles, errors by status, and, when the server's metrics plugin is
reachable, the server's mean rows per model call over the window.
"""

from ._loop import Target
from ._run import BenchConfig, run_bench
from ._stats import LevelResult

__all__ = ["BenchConfig", "LevelResult", "Target", "run_bench"]
