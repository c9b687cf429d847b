"""When a batch leaves the queue: the policy interface and the two built-in policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["AdaptivePolicy", "BatchConfig", "BatchPolicy", "FixedWindowPolicy", "QueueState"]


@dataclass(frozen=True)
class BatchConfig:
    """A model's batching settings, after app defaults and per-model overrides."""

    max_batch_size: int
    timeout: float  # seconds
    policy: str
    max_concurrency: int
    max_queue_size: int


@dataclass(frozen=True)
class QueueState:
    """What a policy sees when the model has room for another batch.

    Attributes:
        rows: rows waiting that could go into the next batch.
        oldest_wait: seconds the oldest of them has waited.
        in_flight: batches the model is running now (fewer than ``max_concurrency``).
        config: the model's batching settings.
    """

    rows: int
    oldest_wait: float
    in_flight: int
    config: BatchConfig


class BatchPolicy(Protocol):
    """Decides when the next batch leaves the queue.

    ``delay`` is asked whenever the model has room for another batch and requests are
    waiting; it is asked again as soon as a request arrives or a batch finishes, so a
    policy only says how long it would wait if nothing changed. It must not raise: if it
    does, the requests of the batch it was deciding about fail with ``INTERNAL`` (the
    message names the policy) and the error is logged.
    """

    def delay(self, state: QueueState) -> float:
        """Seconds to wait before dispatching; ``0`` (or less) dispatches now."""
        ...


class FixedWindowPolicy:
    """Dispatch when ``max_batch_size`` rows wait, or the oldest has waited
    ``batch_timeout_ms``. Predictable; adds up to the timeout to every call at low load."""

    name = "fixed"

    def delay(self, state: QueueState) -> float:
        if state.rows >= state.config.max_batch_size:
            return 0.0
        return state.config.timeout - state.oldest_wait


class AdaptivePolicy:
    """Dispatch at once while the model is idle; while it is busy, let requests gather
    (up to ``max_batch_size`` rows or ``batch_timeout_ms``).

    At low load a call waits for nothing; at high load the requests that arrive during
    one batch form the next, so batches grow with the load. The default.
    """

    name = "adaptive"

    def delay(self, state: QueueState) -> float:
        if state.in_flight == 0 or state.rows >= state.config.max_batch_size:
            return 0.0
        return state.config.timeout - state.oldest_wait
