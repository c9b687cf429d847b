"""What the batcher tells other plugins (the metrics plugin, say) about its queues."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

__all__ = ["BatchEvent", "BatchListener", "notify_batch", "notify_queue_depth", "report_call"]

_log = structlog.get_logger("blazerpc")


@dataclass(frozen=True)
class BatchEvent:
    """One call of a model: a batch, or the re-run of one request of a failed batch.

    Attributes:
        model, version: the model.
        rows: rows in the call (the model saw one input of this many rows).
        requests: requests in the call.
        queue_waits: seconds each request waited in the queue before dispatch. A
            request's wait is reported once, with the batch it was dispatched in, so a
            re-run has none.
        duration: seconds the model call took.
        failed: the call raised, or returned the wrong number of rows. A failed batch of
            several requests is followed by one event per request re-run alone (see
            ``rerun``), so that only the requests that cause the failure get an error.
        rerun: this call re-ran one request of a failed batch on its own.
    """

    model: str
    version: str
    rows: int
    requests: int
    queue_waits: tuple[float, ...]
    duration: float
    failed: bool
    rerun: bool = False


class BatchListener:
    """Receives batching events; returned by plugins from ``blazerpc_batch_listeners``.

    Methods run on the event loop, in the request path: keep them cheap and never
    block. Override what you need. Calls of unbatched unary models arrive too, as
    batches of one row; waiting calls count as queue depth. An exception raised by a
    listener is logged and otherwise ignored: it never affects a call.
    """

    def on_batch(self, event: BatchEvent) -> None:
        """A model call finished (after its results were handed back): a batch, or a
        re-run of one request of a failed batch. One event per model call."""

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        """The number of rows waiting for ``model`` changed to ``rows``."""


def notify_batch(listeners: Sequence[BatchListener], event: BatchEvent) -> None:
    """Tell every listener about ``event``; one that raises is logged and skipped."""
    for listener in listeners:
        try:
            listener.on_batch(event)
        except Exception:  # noqa: BLE001 - a listener must never affect a call
            _log.exception(
                "batch listener failed",
                listener=type(listener).__qualname__,
                method="on_batch",
                model=event.model,
            )


def report_call(
    listeners: Sequence[BatchListener],
    model: str,
    version: str,
    *,
    rows: int,
    requests: int,
    queue_waits: tuple[float, ...],
    started: float,
    failed: bool,
    rerun: bool = False,
) -> None:
    """One model call that began at ``started`` (``time.monotonic()``) and just ended,
    to every listener: the one place a :class:`BatchEvent` is built."""
    event = BatchEvent(
        model=model,
        version=version,
        rows=rows,
        requests=requests,
        queue_waits=queue_waits,
        duration=time.monotonic() - started,
        failed=failed,
        rerun=rerun,
    )
    notify_batch(listeners, event)


def notify_queue_depth(listeners: Sequence[BatchListener], model: str, version: str, rows: int) -> None:
    """Tell every listener the queue depth of ``model``; one that raises is logged and skipped."""
    for listener in listeners:
        try:
            listener.on_queue_depth(model, version, rows)
        except Exception:  # noqa: BLE001 - a listener must never affect a call
            _log.exception(
                "batch listener failed",
                listener=type(listener).__qualname__,
                method="on_queue_depth",
                model=model,
            )
