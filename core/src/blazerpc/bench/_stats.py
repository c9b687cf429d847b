"""One concurrency level's results: throughput, latency percentiles, errors, and the
server's own view of batching when its metrics are reachable."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._loop import Sample

__all__ = ["LevelResult", "summarize"]


@dataclass(frozen=True)
class LevelResult:
    """What one concurrency level measured. Latencies are in milliseconds."""

    concurrency: int
    #: Load processes the callers were spread over.
    processes: int
    seconds: float
    #: Calls that ended in the window, OK or not.
    calls: int
    #: Calls that ended with OK, per second.
    requests_per_second: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    #: Calls that did not end with OK, by status name.
    errors: dict[str, int]
    #: Streaming models: response messages per second.
    messages_per_second: float | None = None
    #: Rows per model call on the server over the window (from its metrics plugin).
    mean_batch_size: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values, in milliseconds."""
    if not ordered:
        return None
    # ceil(q/100 * n) in integers: in floats, 90/100 * 10 is 9.000000000000002.
    rank = max(1, -(-round(q * 1000) * len(ordered) // 100_000))
    return ordered[min(rank, len(ordered)) - 1] * 1000


def summarize(
    samples: Sequence[Sample],
    *,
    concurrency: int,
    processes: int,
    seconds: float,
    streaming: bool,
    mean_batch_size: float | None = None,
) -> LevelResult:
    latencies: array[float] = array("d")
    errors: Counter[str] = Counter()
    messages = 0
    for sample in samples:
        latencies.extend(sample.latencies)
        errors.update(sample.errors)
        messages += sample.messages
    ordered = sorted(latencies)
    calls = len(ordered) + sum(errors.values())
    return LevelResult(
        concurrency=concurrency,
        processes=processes,
        seconds=seconds,
        calls=calls,
        requests_per_second=len(ordered) / seconds,
        p50_ms=_percentile(ordered, 50),
        p90_ms=_percentile(ordered, 90),
        p99_ms=_percentile(ordered, 99),
        mean_ms=sum(ordered) / len(ordered) * 1000 if ordered else None,
        errors=dict(sorted(errors.items())),
        messages_per_second=messages / seconds if streaming else None,
        mean_batch_size=mean_batch_size,
    )
