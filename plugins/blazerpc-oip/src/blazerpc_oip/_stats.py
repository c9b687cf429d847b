"""``ModelStatistics`` from the batching events: one :class:`Statistics` per server."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from blazerpc.batching import BatchEvent, BatchListener

__all__ = ["ModelCounts", "Statistics"]


@dataclass
class ModelCounts:
    """Running totals of one model's calls (Triton's ``ModelStatistics`` fields)."""

    last_inference_ms: int = 0
    inference_count: int = 0  # rows inferred
    execution_count: int = 0  # model calls
    success: int = 0  # requests answered
    fail: int = 0  # requests whose model call failed
    queue_count: int = 0
    queue_ns: int = 0
    compute_ns: int = 0  # summed over model calls
    #: Per batch size (rows): [model calls, nanoseconds].
    batches: dict[int, list[int]] = field(default_factory=dict)


class Statistics(BatchListener):
    """Counts every model call (native and V2 alike: they share the batcher)."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ModelCounts] = {}

    def counts(self, model: str, version: str) -> ModelCounts:
        found = self.models.get((model, version))
        if found is None:
            found = self.models[(model, version)] = ModelCounts()
        return found

    def on_batch(self, event: BatchEvent) -> None:
        c = self.counts(event.model, event.version)
        ns = int(event.duration * 1e9)
        c.execution_count += 1
        c.compute_ns += ns
        c.last_inference_ms = int(time.time() * 1000)
        c.queue_count += len(event.queue_waits)
        c.queue_ns += int(sum(event.queue_waits) * 1e9)
        if event.failed:
            if event.rerun or event.requests == 1:
                c.fail += event.requests
            return  # the requests of a failed batch are counted when re-run
        c.inference_count += event.rows
        c.success += event.requests
        entry = c.batches.setdefault(event.rows, [0, 0])
        entry[0] += 1
        entry[1] += ns
