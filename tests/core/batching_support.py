"""Helpers of the batching tests: a listener that records queue depths and a model that
doubles its rows (with a gate to hold it)."""

from __future__ import annotations

import time
from typing import Any

from support import Gate, wait_until

from blazerpc import BlazeApp, hookimpl
from blazerpc.batching import BatchListener


class DepthRecorder(BatchListener):
    """Records every queue depth the server reports (batched and unbatched models)."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.by_model: dict[str, int] = {}

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        self.depths.append(rows)
        self.by_model[model] = rows

    async def queued(self, model: str, rows: int) -> None:
        """Wait until ``rows`` rows of ``model`` are waiting (no fixed sleeps)."""
        await wait_until(lambda: self.by_model.get(model) == rows)

    def plugin(self) -> object:
        recorder = self

        class Plugin:
            @hookimpl
            def blazerpc_batch_listeners(self, app: BlazeApp) -> list[BatchListener]:
                return [recorder]

        return Plugin()


def doubling_app(calls: list[list[int]], gate: Gate | None = None, **settings: Any) -> BlazeApp:
    app = BlazeApp(**settings)

    @app.model("double")
    def double(x: list[int]) -> list[int]:
        calls.append(list(x))
        if gate is not None:
            gate()
        time.sleep(0.01)  # a fixed cost per call, off the GIL like a GPU kernel
        return [2 * v for v in x]

    return app
