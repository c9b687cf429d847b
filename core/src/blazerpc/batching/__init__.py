"""Batching: concurrent requests joined into one model call.

A model is batched when every input and output has a batch axis (a ``list[...]``, or a
tensor whose first dimension is ``"batch"``). Policies decide when a batch leaves the
queue; plugins add policies with ``blazerpc_batching_policies`` and observe batches
with ``blazerpc_batch_listeners``.

How many calls of a model run at once (the one statement of the rule; ``BlazeApp`` and
``app.model`` point here). ``max_concurrency`` set on the model, or else on the app,
is the limit, with up to ``max_queue_size`` waiting (rows when batched, calls
otherwise). Unset, it depends on the model:

- batched: one batch at a time;
- unbatched ``async def``: no limit of its own, only the server's
  ``max_concurrent_calls`` (an ``async def`` model says it can run concurrently);
- unbatched ``def``: as many as the model threads, 32 (the rest wait for a thread);
- streaming: never batched and never limited, whatever the settings.

The start-up log says, for every model, which of these applies.
"""

from ._listeners import BatchEvent, BatchListener
from ._policies import AdaptivePolicy, BatchConfig, BatchPolicy, FixedWindowPolicy, QueueState

__all__ = [
    "AdaptivePolicy",
    "BatchConfig",
    "BatchEvent",
    "BatchListener",
    "BatchPolicy",
    "FixedWindowPolicy",
    "QueueState",
]
