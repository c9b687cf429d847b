"""A batch listener that raises from both its methods, and a policy that raises for a
queue of exactly 3 rows: neither may break the server (see test_batching)."""

from __future__ import annotations

from collections.abc import Callable

from blazerpc import BlazeApp, hookimpl
from blazerpc.batching import AdaptivePolicy, BatchConfig, BatchEvent, BatchListener, QueueState


class BrokenListener(BatchListener):
    def on_batch(self, event: BatchEvent) -> None:
        raise RuntimeError("on_batch is broken")

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        raise RuntimeError("on_queue_depth is broken")


class ThreeRowsPolicy(AdaptivePolicy):
    """The adaptive policy, except that it raises when exactly 3 rows wait."""

    def delay(self, state: QueueState) -> float:
        if state.rows == 3:
            raise ValueError("3 rows: this policy cannot decide")
        return super().delay(state)


class Plugin:
    @hookimpl
    def blazerpc_batch_listeners(self, app: BlazeApp) -> list[BatchListener]:
        return [BrokenListener()]

    @hookimpl
    def blazerpc_batching_policies(self) -> dict[str, Callable[[BatchConfig], ThreeRowsPolicy]]:
        return {"three-rows": lambda config: ThreeRowsPolicy()}


app = BlazeApp(plugins=[Plugin()], batch_policy="three-rows")


@app.model("double")
def double(x: list[int]) -> list[int]:
    return [2 * v for v in x]


@app.model("inc")
def inc(x: int) -> int:
    """Unbatched: its calls reach the listeners as batches of one."""
    return x + 1
