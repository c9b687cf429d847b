"""Helpers shared by the framework plugins' tests (tests/torch, tests/onnx, tests/embeddings).

Each of those folders runs in its own environment; their conftest.py puts this folder on
``sys.path`` so they can ``import plugin_support``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from blazerpc import hookimpl
from blazerpc.batching import BatchEvent, BatchListener
from blazerpc.testing import RunningServer, blaze_command
from blazerpc.wire._schema import Schema


def tensor(array: np.ndarray) -> dict[str, Any]:
    """A ``TensorProto`` as keyword arguments of a request message."""
    return {"shape": list(array.shape), "dtype": array.dtype.name, "data": array.tobytes()}


def array(message: Any) -> np.ndarray:
    """A ``TensorProto`` message of a response as an array."""
    return np.frombuffer(message.data, dtype=message.dtype).reshape(tuple(message.shape))


async def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll a condition set by another thread or task (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)


class Gate:
    """Blocks the model's first call until released, so that other requests queue."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *_: Any) -> None:
        if not self.release.is_set():
            self.entered.set()
            assert self.release.wait(30), "the gate was never released"


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


def load_app_module(path: Path) -> ModuleType:
    """Import an app file (for its schema, or the model objects it built)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
