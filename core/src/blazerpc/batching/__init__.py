"""Batching: concurrent requests joined into one model call.

A model is batched when every input and output has a batch axis (a ``list[...]``, or a
tensor whose first dimension is ``"batch"``). Policies decide when a batch leaves the
queue; plugins add policies with ``blazerpc_batching_policies`` and observe batches
with ``blazerpc_batch_listeners``.
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
