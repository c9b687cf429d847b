"""Helpers shared by the framework plugins' tests (tests/torch, tests/onnx, tests/embeddings).

Each of those folders runs in its own environment; tests/conftest.py puts this folder on
``sys.path`` so they can ``import plugin_support``. ``Gate``, ``wait_until`` and
``load_app_module`` live in tests/common.py (shared with tests/core) and are re-exported here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from blazerpc import hookimpl
from blazerpc.batching import BatchEvent, BatchListener
from blazerpc.testing import RunningServer, blaze_command
from blazerpc.wire._schema import Schema
from common import Gate, load_app_module, wait_until

__all__ = [
    "BatchWatcher",
    "Gate",
    "array",
    "call_as_one_batch",
    "call_process",
    "load_app_module",
    "plugins_list_json",
    "tensor",
    "wait_until",
]


def tensor(array: np.ndarray) -> dict[str, Any]:
    """A ``TensorProto`` as keyword arguments of a request message."""
    return {"shape": list(array.shape), "dtype": array.dtype.name, "data": array.tobytes()}


def array(message: Any) -> np.ndarray:
    """A ``TensorProto`` message of a response as an array."""
    return np.frombuffer(message.data, dtype=message.dtype).reshape(tuple(message.shape))


class BatchWatcher(BatchListener):
    """A plugin that sees every batch and every queue depth (register it on the app)."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}
        self.batches: list[BatchEvent] = []

    @hookimpl
    def blazerpc_batch_listeners(self, app: Any) -> Sequence[BatchListener]:
        return [self]

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        self.depth[model] = rows

    def on_batch(self, event: BatchEvent) -> None:
        self.batches.append(event)

    def requests_per_batch(self, model: str) -> list[int]:
        return [e.requests for e in self.batches if e.model == model]


async def call_as_one_batch(
    server: RunningServer,
    model: str,
    gate: Gate,
    watcher: BatchWatcher,
    requests: Sequence[dict[str, Any]],
    rows: Callable[[dict[str, Any]], int],
) -> list[Any]:
    """Send ``requests`` so that all but the first reach the model as one batch.

    The first request holds the model at ``gate``; the others are sent once it is there
    and queue up; when the queue holds all their rows the gate opens.
    """
    first = asyncio.ensure_future(server.call(model, **requests[0]))
    await wait_until(gate.entered.is_set)
    rest = [asyncio.ensure_future(server.call(model, **r)) for r in requests[1:]]
    queued = sum(rows(r) for r in requests[1:])
    await wait_until(lambda: watcher.depth.get(model) == queued)
    gate.release.set()
    return [await first, *[await r for r in rest]]


def plugins_list_json(*env_pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """``blaze plugins list --json`` of this environment, run as users run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZERPC_")}
    env.update(env_pairs)
    result = subprocess.run(
        [*blaze_command(), "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records


async def call_process(host: str, port: int, schema: Schema, model: str, **fields: Any) -> Any:
    """Call ``model`` of a server started with ``serve_process`` using ``schema``'s classes."""
    from grpclib.client import Channel, UnaryUnaryMethod

    method = next(m for m in schema.methods if m.model == model)
    request, response = schema.classes[method.request], schema.classes[method.response]
    channel = Channel(host, port)
    try:
        return await UnaryUnaryMethod(channel, method.path, request, response)(request(**fields), timeout=60)
    finally:
        channel.close()
