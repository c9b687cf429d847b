"""Batch policies and listeners over a real server: max batch size, the adaptive and
fixed-window policies, a policy from a plugin, batch listeners and their failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from batching_support import DepthRecorder, doubling_app
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import APPS, AppCaller, Gate, load_app_module, wait_until

from blazerpc import BlazeApp, hookimpl
from blazerpc.batching import BatchConfig, BatchEvent, BatchListener, FixedWindowPolicy, QueueState
from blazerpc.testing import serve_app


async def test_max_batch_size_counts_rows_and_a_larger_request_runs_alone() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_batch_size=4, plugins=[depth.plugin()])

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("double", x=[0]))
        await wait_until(gate.entered.is_set)
        others = [asyncio.ensure_future(server.call("double", x=[i, i, i])) for i in range(1, 5)]
        big = asyncio.ensure_future(server.call("double", x=list(range(100, 106))))
        await depth.queued("double", 18)
        gate.release.set()
        await asyncio.gather(first, *others, big)
    assert list(range(100, 106)) in calls
    assert all(len(call) <= 4 for call in calls if call != list(range(100, 106)))


async def test_adaptive_policy_gathers_requests_that_arrive_while_the_model_is_busy() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(
        calls, gate, batch_policy="adaptive", batch_timeout_ms=10_000, plugins=[depth.plugin()]
    )

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("double", x=[0]))
        await wait_until(gate.entered.is_set)  # dispatched at once: the model was idle
        rest = [asyncio.ensure_future(server.call("double", x=[i])) for i in range(1, 6)]
        await depth.queued("double", 5)
        gate.release.set()
        await asyncio.gather(first, *rest)
    assert calls[0] == [0]
    assert sorted(calls[1]) == [1, 2, 3, 4, 5]
    assert len(calls) == 2


async def test_fixed_policy_waits_for_a_full_batch() -> None:
    calls: list[list[int]] = []
    app = doubling_app(calls, batch_policy="fixed", max_batch_size=4, batch_timeout_ms=30_000)

    async with serve_app(app) as server:
        await asyncio.gather(*[server.call("double", x=[i]) for i in range(4)])
    assert [sorted(call) for call in calls] == [[0, 1, 2, 3]]


async def test_fixed_policy_sends_a_partial_batch_when_the_timeout_passes() -> None:
    calls: list[list[int]] = []
    called_at: list[float] = []
    app = BlazeApp(batch_policy="fixed", max_batch_size=8, batch_timeout_ms=300)

    @app.model("double")
    def double(x: list[int]) -> list[int]:
        calls.append(list(x))
        called_at.append(time.monotonic())
        return [2 * v for v in x]

    async with serve_app(app) as server:
        sent = time.monotonic()
        replies = await asyncio.gather(*[server.call("double", x=[i]) for i in range(3)])
    assert [list(r.result) for r in replies] == [[0], [2], [4]]
    assert [sorted(call) for call in calls] == [[0, 1, 2]]  # 3 of 8 rows: sent at the timeout
    assert 0.25 <= called_at[0] - sent < 5


class CountingPolicy:
    """A third-party policy: the fixed window, counting how often it was asked."""

    def __init__(self, config: BatchConfig) -> None:
        self.asked = 0
        self.inner = FixedWindowPolicy()

    def delay(self, state: QueueState) -> float:
        self.asked += 1
        return self.inner.delay(state)


async def test_a_policy_from_a_plugin_is_used_by_name() -> None:
    policies: list[CountingPolicy] = []

    class PolicyPlugin:
        @hookimpl
        def blazerpc_batching_policies(self) -> dict[str, Callable[[BatchConfig], CountingPolicy]]:
            def make(config: BatchConfig) -> CountingPolicy:
                policies.append(CountingPolicy(config))
                return policies[-1]

            return {"counting": make}

    calls: list[list[int]] = []
    app = doubling_app(
        calls, plugins=[PolicyPlugin()], batch_policy="counting", max_batch_size=3, batch_timeout_ms=30_000
    )

    async with serve_app(app) as server:
        await asyncio.gather(*[server.call("double", x=[i]) for i in range(3)])
    assert len(policies) == 1
    assert policies[0].asked > 0
    assert [sorted(call) for call in calls] == [[0, 1, 2]]


async def test_batch_listeners_see_every_batch_and_the_queue_depth() -> None:
    events: list[BatchEvent] = []
    depths: list[int] = []

    class Listener(BatchListener):
        def on_batch(self, event: BatchEvent) -> None:
            events.append(event)

        def on_queue_depth(self, model: str, version: str, rows: int) -> None:
            depths.append(rows)

    class ListenerPlugin:
        @hookimpl
        def blazerpc_batch_listeners(self, app: BlazeApp) -> list[BatchListener]:
            return [Listener()]

    calls: list[list[int]] = []
    app = doubling_app(calls, plugins=[ListenerPlugin()])

    async with serve_app(app) as server:
        await asyncio.gather(*[server.call("double", x=[i, i]) for i in range(10)])
    assert len(events) == len(calls)
    assert sum(e.rows for e in events) == 20
    assert sum(e.requests for e in events) == 10
    assert all(len(e.queue_waits) == e.requests and e.duration > 0 for e in events)
    assert {e.model for e in events} == {"double"}
    assert max(depths) > 0
    assert depths[-1] == 0


async def test_failing_listeners_are_logged_and_a_failing_policy_fails_only_its_requests() -> None:

    from blazerpc.testing import serve_process

    module = load_app_module(APPS / "broken_batching_app.py")
    with serve_process(f"{APPS / 'broken_batching_app'}.py:app") as proc:
        client = AppCaller(module, proc)

        for i in range(3):  # listeners raise on every call: the calls do not notice
            assert list((await client.call("double", x=[i, 1])).result) == [2 * i, 2]
            assert (await client.call("inc", x=i)).result == i + 1
        with pytest.raises(GRPCError) as broken:
            await client.call("double", x=[1, 2, 3])  # the policy raises for 3 rows
        assert broken.value.status is Status.INTERNAL
        message = broken.value.message or ""
        assert "batching policy 'three-rows' (ThreeRowsPolicy) of model 'double' failed" in message
        assert "ValueError: 3 rows: this policy cannot decide" in message
        # The dispatcher is still running.
        assert list((await client.call("double", x=[5])).result) == [10]
        assert list((await client.call("double", x=[1, 2, 3, 4])).result) == [2, 4, 6, 8]
        logs = list(proc.logs)
    failures = {(e.get("method"), e.get("model")) for e in logs if e.get("event") == "batch listener failed"}
    assert failures == {
        ("on_batch", "double"),
        ("on_queue_depth", "double"),
        ("on_batch", "inc"),
        ("on_queue_depth", "inc"),
    }
    assert all(e["listener"] == "BrokenListener" for e in logs if e.get("event") == "batch listener failed")
    assert [e["policy"] for e in logs if e.get("event") == "batching policy failed"] == ["three-rows"]
