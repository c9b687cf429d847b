"""What the batcher tells other plugins (the metrics plugin, say) about its queues."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchEvent", "BatchListener"]


@dataclass(frozen=True)
class BatchEvent:
    """One call of a model on a batch.

    Attributes:
        model, version: the model.
        rows: rows in the batch (the model saw one input of this many rows).
        requests: requests in the batch.
        queue_waits: seconds each request waited in the queue before dispatch.
        duration: seconds the model call took.
        failed: the batched call raised (its requests were then run one by one).
    """

    model: str
    version: str
    rows: int
    requests: int
    queue_waits: tuple[float, ...]
    duration: float
    failed: bool


class BatchListener:
    """Receives batching events; returned by plugins from ``blazerpc_batch_listeners``.

    Methods run on the event loop, in the request path: keep them cheap and never
    block. Override what you need. Calls of unbatched unary models arrive too, as
    batches of one row; waiting calls count as queue depth.
    """

    def on_batch(self, event: BatchEvent) -> None:
        """A batch finished (after its results were handed back)."""

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        """The number of rows waiting for ``model`` changed to ``rows``."""
