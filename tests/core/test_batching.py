"""Batching over a real server: one model call per batch, isolation, deadlines, limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import Client, load_app_module

from blazerpc import BlazeApp, ConfigurationError, TensorInput, TensorOutput, hookimpl
from blazerpc.batching import BatchConfig, BatchEvent, BatchListener, FixedWindowPolicy, QueueState
from blazerpc.testing import RunningServer, serve_app


def run(app: BlazeApp, scenario: Callable[[RunningServer], Any]) -> Any:
    async def main() -> Any:
        async with serve_app(app) as server:
            return await scenario(server)

    return asyncio.run(main())


async def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Poll a condition set by the model's thread (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


class Gate:
    """Blocks the model's first call until released, so requests pile up in the queue."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        if not self.release.is_set():
            self.entered.set()
            assert self.release.wait(10)


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


def test_32_concurrent_clients_share_few_model_calls_and_get_their_own_rows() -> None:
    calls: list[list[int]] = []
    app = doubling_app(calls)
    inputs = [[1000 * i + k for k in range(1 + i % 3)] for i in range(32)]

    async def scenario(server: RunningServer) -> list[list[int]]:
        replies = await asyncio.gather(*[server.call("double", x=x) for x in inputs])
        return [list(r.result) for r in replies]

    results = run(app, scenario)
    assert results == [[2 * v for v in x] for x in inputs]
    assert len(calls) < len(inputs) / 4, f"{len(calls)} model calls for {len(inputs)} requests"
    assert sorted(v for call in calls for v in call) == sorted(v for x in inputs for v in x)
    assert max(len(call) for call in calls) > 1


def test_one_bad_request_fails_alone_and_the_others_succeed() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(plugins=[depth.plugin()])

    @app.model("checked")
    def checked(x: list[int]) -> list[int]:
        calls.append(list(x))
        gate()
        if any(v < 0 for v in x):
            raise ValueError(f"negative input in {x}")
        return [v + 1 for v in x]

    async def scenario(server: RunningServer) -> list[Any]:
        first = asyncio.ensure_future(server.call("checked", x=[0]))
        await wait_until(gate.entered.is_set)  # the model is busy: the rest queue up together
        rest = [asyncio.ensure_future(server.call("checked", x=[i, i])) for i in range(1, 16)]
        bad = asyncio.ensure_future(server.call("checked", x=[-5]))
        await depth.queued("checked", 31)  # 15 requests of 2 rows and the bad one
        gate.release.set()
        return await asyncio.gather(first, *rest, bad, return_exceptions=True)

    results = run(app, scenario)
    *good, bad = results
    assert [list(r.result) for r in good] == [[1]] + [[i + 1, i + 1] for i in range(1, 16)]
    assert isinstance(bad, GRPCError)
    assert bad.status is Status.INTERNAL
    assert "ValueError: negative input in [-5]" in (bad.message or "")
    assert any(len(call) > 2 and -5 in call for call in calls), "the bad request was first tried in a batch"


def test_a_failed_batch_and_each_re_run_are_reported_as_model_calls_of_their_own() -> None:
    calls: list[list[int]] = []
    events: list[BatchEvent] = []
    gate = Gate()

    class Listener(BatchListener):
        def on_batch(self, event: BatchEvent) -> None:
            events.append(event)

    class Plugin:
        @hookimpl
        def blazerpc_batch_listeners(self, app: BlazeApp) -> list[BatchListener]:
            return [Listener()]

    depth = DepthRecorder()
    app = BlazeApp(plugins=[Plugin(), depth.plugin()])

    @app.model("checked")
    def checked(x: list[int]) -> list[int]:
        calls.append(list(x))
        gate()
        if any(v < 0 for v in x):
            raise ValueError("negative")
        return x

    async def scenario(server: RunningServer) -> list[Any]:
        first = asyncio.ensure_future(server.call("checked", x=[0]))
        await wait_until(gate.entered.is_set)
        rest = [asyncio.ensure_future(server.call("checked", x=x)) for x in ([1], [2, 2], [-3], [4])]
        await depth.queued("checked", 5)  # all four queue behind the blocked call: one batch
        gate.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = run(app, scenario)
    assert [getattr(r, "result", None) for r in results] == [[0], [1], [2, 2], None, [4]]
    assert isinstance(results[3], GRPCError)
    assert calls == [[0], [1, 2, 2, -3, 4], [1], [2, 2], [-3], [4]]
    # One event per model call, in order: 1 + 1 + 4, rows as the model saw them.
    assert [(e.rows, e.requests, e.failed, e.rerun) for e in events] == [
        (1, 1, False, False),
        (5, 4, True, False),
        (1, 1, False, True),
        (2, 1, False, True),
        (1, 1, True, True),
        (1, 1, False, True),
    ]
    # A request's queue wait is reported once, with the batch it was dispatched in.
    assert [len(e.queue_waits) for e in events] == [1, 4, 0, 0, 0, 0]
    assert all(e.duration > 0 for e in events)


def test_wrong_number_of_rows_fails_every_request_of_the_batch() -> None:
    app = BlazeApp()

    @app.model("short")
    def short(x: list[int]) -> list[int]:
        return x[:-1]

    async def scenario(server: RunningServer) -> list[Any]:
        return await asyncio.gather(
            *[server.call("short", x=[1, 2]) for _ in range(4)], return_exceptions=True
        )

    for result in run(app, scenario):
        assert isinstance(result, GRPCError)
        assert result.status is Status.INTERNAL
        assert "returned" in (result.message or "")
        assert "one row per input row" in (result.message or "")


def test_a_request_whose_deadline_passes_in_the_queue_never_reaches_the_model() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> Any:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        late = asyncio.ensure_future(server.call("double", x=[777], timeout=0.5))
        await depth.queued("double", 1)
        # grpclib's client gives up at its deadline with TimeoutError; the server drops it.
        with pytest.raises(asyncio.TimeoutError):
            await late
        await depth.queued("double", 0)  # gone from the queue while the model is still busy
        gate.release.set()
        result = await first
        assert list((await server.call("double", x=[5])).result) == [10]
        return result

    first = run(app, scenario)
    assert list(first.result) == [2]
    assert all(777 not in call for call in calls)
    assert [5] in calls


def test_a_client_that_goes_away_is_dropped_from_the_queue() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        gone = asyncio.ensure_future(server.call("double", x=[555]))
        await depth.queued("double", 1)
        gone.cancel()  # the client cancels: the server side sees the stream reset
        await depth.queued("double", 0)
        gate.release.set()
        await first
        assert list((await server.call("double", x=[3])).result) == [6]

    run(app, scenario)
    assert all(555 not in call for call in calls)


def test_a_full_queue_answers_resource_exhausted_at_once() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> tuple[Any, Any, GRPCError]:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        queued = asyncio.ensure_future(server.call("double", x=[1, 2, 3, 4]))
        await depth.queued("double", 4)
        started = time.monotonic()
        with pytest.raises(GRPCError) as full:
            await server.call("double", x=[9])
        assert time.monotonic() - started < 5  # answered while the model is still blocked
        gate.release.set()
        return await first, await queued, full.value

    first, queued, full = run(app, scenario)
    assert list(first.result) == [2]
    assert list(queued.result) == [2, 4, 6, 8]
    assert full.status is Status.RESOURCE_EXHAUSTED
    assert "max_queue_size=4" in (full.message or "")


def test_requests_that_expire_in_the_queue_free_their_rows_while_the_model_is_busy() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        expiring = [server.call("double", x=[100 + i], timeout=0.2) for i in range(4)]
        for outcome in await asyncio.gather(*expiring, return_exceptions=True):
            assert isinstance(outcome, asyncio.TimeoutError)
        assert max(depth.depths) == 4
        # The model is still blocked: the expired rows left the queue all the same.
        await wait_until(lambda: depth.depths[-1] == 0)
        later = asyncio.ensure_future(server.call("double", x=[7]))  # fits: no RESOURCE_EXHAUSTED
        await wait_until(lambda: depth.depths[-1] == 1)
        assert not gate.release.is_set()
        gate.release.set()
        assert list((await later).result) == [14]
        assert list((await first).result) == [2]

    run(app, scenario)
    assert all(100 + i not in call for call in calls for i in range(4))


def test_a_client_that_leaves_frees_its_rows_at_once() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        gone = asyncio.ensure_future(server.call("double", x=[51, 52, 53, 54]))
        await wait_until(lambda: depth.depths[-1] == 4)
        gone.cancel()  # the client cancels: the server sees the stream reset
        await wait_until(lambda: depth.depths[-1] == 0)
        later = asyncio.ensure_future(server.call("double", x=[1, 2, 3, 4]))
        await wait_until(lambda: depth.depths[-1] == 4)
        gate.release.set()
        assert list((await later).result) == [2, 4, 6, 8]
        await first

    run(app, scenario)
    assert [51, 52, 53, 54] not in calls


def test_a_deep_queue_costs_constant_time_per_arrival_and_departure() -> None:
    """20 000 requests arrive one per loop turn behind a busy model, then their clients
    leave. Each arrival and departure is O(1): a rescan of the queue per arrival (what
    the dispatcher once did) makes this 2e8 steps, minutes instead of well under 5 s."""
    from blazerpc.app import build_runtime
    from blazerpc.batching._batcher import Batcher

    app = doubling_app([], max_queue_size=100_000)
    runtime = build_runtime(app)
    [plan] = runtime.plans
    assert plan.policy is not None
    release = asyncio.Event()

    async def model(args: list[Any]) -> list[int]:
        await release.wait()
        return [2 * v for v in args[0]]

    async def main() -> float:
        depths = DepthRecorder()
        batcher = Batcher(
            model="double",
            version="1",
            inputs=plan.inputs,
            output_names=["result"],
            call=model,
            split_result=lambda result: [result],
            policy=plan.policy,
            config=plan.config,
            listeners=[depths],
        )
        batcher.start()
        busy = asyncio.ensure_future(batcher.submit([[0]], None))
        await wait_until(lambda: depths.depths[-2:] == [1, 0])  # dispatched: the model is busy
        started = time.perf_counter()
        waiting = []
        for i in range(20_000):
            waiting.append(asyncio.ensure_future(batcher.submit([[i]], None)))
            await asyncio.sleep(0)  # one arrival per loop turn, as from the network
        assert depths.depths[-1] == 20_000
        for task in waiting:
            task.cancel()
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
        assert depths.depths[-1] == 0
        release.set()
        assert await busy == [[0]]
        await batcher.stop()
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed < 5, f"{elapsed:.1f} s for 20 000 arrivals and departures"


def test_max_batch_size_counts_rows_and_a_larger_request_runs_alone() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_batch_size=4, plugins=[depth.plugin()])

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("double", x=[0]))
        await wait_until(gate.entered.is_set)
        others = [asyncio.ensure_future(server.call("double", x=[i, i, i])) for i in range(1, 5)]
        big = asyncio.ensure_future(server.call("double", x=list(range(100, 106))))
        await depth.queued("double", 18)
        gate.release.set()
        await asyncio.gather(first, *others, big)

    run(app, scenario)
    assert list(range(100, 106)) in calls
    assert all(len(call) <= 4 for call in calls if call != list(range(100, 106)))


def test_adaptive_policy_gathers_requests_that_arrive_while_the_model_is_busy() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(
        calls, gate, batch_policy="adaptive", batch_timeout_ms=10_000, plugins=[depth.plugin()]
    )

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("double", x=[0]))
        await wait_until(gate.entered.is_set)  # dispatched at once: the model was idle
        rest = [asyncio.ensure_future(server.call("double", x=[i])) for i in range(1, 6)]
        await depth.queued("double", 5)
        gate.release.set()
        await asyncio.gather(first, *rest)

    run(app, scenario)
    assert calls[0] == [0]
    assert sorted(calls[1]) == [1, 2, 3, 4, 5]
    assert len(calls) == 2


def test_fixed_policy_waits_for_a_full_batch() -> None:
    calls: list[list[int]] = []
    app = doubling_app(calls, batch_policy="fixed", max_batch_size=4, batch_timeout_ms=30_000)

    async def scenario(server: RunningServer) -> None:
        await asyncio.gather(*[server.call("double", x=[i]) for i in range(4)])

    run(app, scenario)
    assert [sorted(call) for call in calls] == [[0, 1, 2, 3]]


def test_fixed_policy_sends_a_partial_batch_when_the_timeout_passes() -> None:
    calls: list[list[int]] = []
    called_at: list[float] = []
    app = BlazeApp(batch_policy="fixed", max_batch_size=8, batch_timeout_ms=300)

    @app.model("double")
    def double(x: list[int]) -> list[int]:
        calls.append(list(x))
        called_at.append(time.monotonic())
        return [2 * v for v in x]

    async def scenario(server: RunningServer) -> tuple[float, list[Any]]:
        sent = time.monotonic()
        replies = await asyncio.gather(*[server.call("double", x=[i]) for i in range(3)])
        return sent, replies

    sent, replies = run(app, scenario)
    assert [list(r.result) for r in replies] == [[0], [2], [4]]
    assert [sorted(call) for call in calls] == [[0, 1, 2]]  # 3 of 8 rows: sent at the timeout
    assert 0.25 <= called_at[0] - sent < 5


def test_wrong_row_count_fails_every_request_of_a_real_batch_without_re_runs() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(plugins=[depth.plugin()])

    @app.model("short")
    def short(x: list[int]) -> list[int]:
        calls.append(list(x))
        gate()
        return x[:-1] if len(x) > 1 else x  # one row short, for a batch

    async def scenario(server: RunningServer) -> list[Any]:
        first = asyncio.ensure_future(server.call("short", x=[0]))
        await wait_until(gate.entered.is_set)
        batch = [asyncio.ensure_future(server.call("short", x=[i])) for i in range(1, 5)]
        await depth.queued("short", 4)  # the four queue up behind the blocked call
        gate.release.set()
        return await asyncio.gather(first, *batch, return_exceptions=True)

    first, *batched = run(app, scenario)
    assert list(first.result) == [0]
    # One model call for the four requests, and no re-run of each alone (which would
    # have returned one row each and "succeeded").
    assert [sorted(call) for call in calls] == [[0], [1, 2, 3, 4]]
    for result in batched:
        assert isinstance(result, GRPCError)
        assert result.status is Status.INTERNAL
        assert result.message == (
            "model 'short' returned 3 rows in 'result' for a batch of 4 rows; "
            "a batched model must return one row per input row"
        )


@pytest.mark.parametrize("batched", [True, False])
def test_a_sync_model_runs_off_the_event_loop_thread(batched: bool) -> None:
    threads: list[threading.Thread] = []
    release = threading.Event()
    app = BlazeApp(enable_batching=batched)

    @app.model("slow")
    def slow(x: list[int]) -> list[int]:
        threads.append(threading.current_thread())
        assert release.wait(10)  # would stall every other call if it ran on the loop
        return x

    @app.model("quick")
    async def quick(x: int) -> int:
        return x

    async def scenario(server: RunningServer) -> threading.Thread:
        loop_thread = threading.current_thread()
        slow_call = asyncio.ensure_future(server.call("slow", x=[1]))
        await wait_until(lambda: bool(threads))
        # The loop answers while the sync model is still blocked in its thread.
        assert (await server.call("quick", x=7)).result == 7
        assert not slow_call.done()
        release.set()
        assert list((await slow_call).result) == [1]
        return loop_thread

    loop_thread = run(app, scenario)
    [thread] = threads
    assert thread is not loop_thread
    assert thread.name.startswith("blazerpc-model")


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_batched_model_runs_at_most_max_concurrency_batches_at_once(limit: int) -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]
    calls: list[list[int]] = []
    app = BlazeApp(max_concurrency=limit, max_batch_size=2)

    @app.model("slow")
    def slow(x: list[int]) -> list[int]:
        with lock:
            calls.append(list(x))
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x

    async def scenario(server: RunningServer) -> list[list[int]]:
        replies = await asyncio.gather(*[server.call("slow", x=[i]) for i in range(16)])
        return [list(r.result) for r in replies]

    assert run(app, scenario) == [[i] for i in range(16)]
    assert peak[0] == limit  # never more, and the limit was reached
    assert all(len(call) <= 2 for call in calls)
    assert len(calls) < 16  # batched all the same


def test_requests_with_different_trailing_dimensions_never_share_a_batch() -> None:
    shapes: list[tuple[int, ...]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(plugins=[depth.plugin()])

    @app.model("rowsum")
    def rowsum(x: TensorInput[np.float32, "batch", "n"]) -> TensorOutput[np.float32, "batch"]:
        shapes.append(x.shape)
        gate()
        return x.sum(axis=1)

    def tensor(rows: int, n: int) -> dict[str, Any]:
        data = np.arange(rows * n, dtype=np.float32).reshape(rows, n)
        return {"shape": [rows, n], "dtype": "float32", "data": data.tobytes()}

    async def scenario(server: RunningServer) -> list[Any]:
        first = asyncio.ensure_future(server.call("rowsum", x=tensor(1, 2)))
        await wait_until(gate.entered.is_set)
        mixed = [asyncio.ensure_future(server.call("rowsum", x=tensor(2, n))) for n in (2, 3, 2, 3)]
        await depth.queued("rowsum", 8)
        gate.release.set()
        return await asyncio.gather(first, *mixed)

    replies = run(app, scenario)
    assert sorted(shapes) == [(1, 2), (4, 2), (4, 3)]
    for reply, n in zip(replies[1:], (2, 3, 2, 3), strict=True):
        got = np.frombuffer(reply.result.data, dtype=np.float32)
        assert got.tolist() == np.arange(2 * n, dtype=np.float32).reshape(2, n).sum(axis=1).tolist()


def test_async_models_are_batched_too() -> None:
    calls: list[list[str]] = []
    app = BlazeApp()

    @app.model("shout")
    async def shout(text: list[str]) -> list[str]:
        calls.append(list(text))
        await asyncio.sleep(0.02)
        return [t.upper() for t in text]

    async def scenario(server: RunningServer) -> list[list[str]]:
        replies = await asyncio.gather(*[server.call("shout", text=[f"w{i}"]) for i in range(16)])
        return [list(r.result) for r in replies]

    assert run(app, scenario) == [[f"W{i}"] for i in range(16)]
    assert len(calls) < 16


def test_models_without_a_batch_axis_or_with_batching_off_are_called_per_request() -> None:
    seen: dict[str, int] = {"scalar": 0, "off": 0}
    app = BlazeApp()

    @app.model("scalar")
    def scalar(x: int) -> int:
        seen["scalar"] += 1
        time.sleep(0.005)
        return x + 1

    @app.model("off", batching=False)
    def off(x: list[int]) -> list[int]:
        seen["off"] += 1
        time.sleep(0.005)
        return x

    async def scenario(server: RunningServer) -> None:
        await asyncio.gather(*[server.call("scalar", x=i) for i in range(8)])
        await asyncio.gather(*[server.call("off", x=[i]) for i in range(8)])

    run(app, scenario)
    assert seen == {"scalar": 8, "off": 8}


def test_per_model_settings_override_the_apps() -> None:
    calls: dict[str, list[list[int]]] = {"small": [], "fixed": [], "off": []}
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(max_batch_size=32, batch_policy="adaptive", plugins=[depth.plugin()])

    @app.model("small", max_batch_size=2)
    def small(x: list[int]) -> list[int]:
        calls["small"].append(list(x))
        gate()
        return x

    @app.model("fixed", batch_policy="fixed", max_batch_size=3, batch_timeout_ms=30_000)
    def fixed(x: list[int]) -> list[int]:
        calls["fixed"].append(list(x))
        return x

    @app.model("off", batching=False)
    def off(x: list[int]) -> list[int]:
        calls["off"].append(list(x))
        time.sleep(0.01)
        return x

    async def scenario(server: RunningServer) -> None:
        first = asyncio.ensure_future(server.call("small", x=[0]))
        await wait_until(gate.entered.is_set)
        rest = [asyncio.ensure_future(server.call("small", x=[i])) for i in range(1, 6)]
        await depth.queued("small", 5)
        gate.release.set()
        await asyncio.gather(first, *rest)
        # The app's adaptive policy would send the first of these alone, at once.
        await asyncio.gather(*[server.call("fixed", x=[i]) for i in range(3)])
        await asyncio.gather(*[server.call("off", x=[i]) for i in range(4)])

    run(app, scenario)
    assert calls["small"][0] == [0]
    assert sorted(v for call in calls["small"][1:] for v in call) == [1, 2, 3, 4, 5]
    assert [len(call) for call in calls["small"][1:]] == [2, 2, 1]  # not one batch of 5
    assert [sorted(call) for call in calls["fixed"]] == [[0, 1, 2]]
    assert sorted(calls["off"]) == [[0], [1], [2], [3]]


def test_batching_true_on_a_model_batches_it_in_an_app_with_batching_off() -> None:
    calls: dict[str, list[list[int]]] = {"forced": [], "follows": []}
    gates = {"forced": Gate(), "follows": Gate()}
    depth = DepthRecorder()
    app = BlazeApp(enable_batching=False, max_concurrency=1, plugins=[depth.plugin()])

    @app.model("forced", batching=True)
    def forced(x: list[int]) -> list[int]:
        calls["forced"].append(list(x))
        gates["forced"]()
        return x

    @app.model("follows")
    def follows(x: list[int]) -> list[int]:
        calls["follows"].append(list(x))
        gates["follows"]()
        return x

    async def scenario(server: RunningServer) -> None:
        for model, gate in gates.items():
            first = asyncio.ensure_future(server.call(model, x=[0]))
            await wait_until(gate.entered.is_set)
            rest = [asyncio.ensure_future(server.call(model, x=[i])) for i in range(1, 4)]
            await depth.queued(model, 3)
            gate.release.set()
            await asyncio.gather(first, *rest)

    run(app, scenario)
    assert calls["forced"][0] == [0]
    assert [sorted(call) for call in calls["forced"][1:]] == [[1, 2, 3]]
    assert sorted(calls["follows"]) == [[0], [1], [2], [3]]


def test_batching_true_on_a_model_without_a_batch_axis_fails_at_start_up() -> None:
    app = BlazeApp()

    @app.model("scalar", batching=True)
    def scalar(x: int) -> int:
        return x

    with pytest.raises(
        ConfigurationError,
        match=r"model 'scalar' is registered with batching=True but cannot be batched: input 'x' "
        r"\(int\) has no batch axis; give every input and output a batch axis",
    ):
        app.schema()


#: What the start-up log says of an unbatched sync model without a max_concurrency.
SYNC = "; sync, so up to 32 calls at a time (the model threads, shared by every sync model)"


@pytest.mark.parametrize(
    ("target", "lines"),
    [
        (
            "app",
            {
                "rows": "Batching model rows v1: adaptive policy, up to 16 rows, 5 ms, 1 batch at a time",
                "scalar": "Model scalar v1 is not batched: input 'x' (int) has no batch axis" + SYNC,
                "unrowed": "Model unrowed v1 is not batched: it is registered with batching=False" + SYNC,
                "tokens": "Model tokens v1 streams: not batched and not limited",
            },
        ),
        (
            "app_off",
            {
                "follows": "Model follows v1 is not batched: the app has enable_batching=False "
                "(batching=True on @app.model batches one model)" + SYNC,
                "forced": "Batching model forced v1: fixed policy, up to 4 rows, 10 ms, 1 batch at a time",
            },
        ),
    ],
)
def test_the_start_up_log_says_which_models_are_batched_and_why_not(
    target: str, lines: dict[str, str]
) -> None:
    from support import APPS

    from blazerpc.testing import serve_process

    with serve_process(f"{APPS / 'batching_plans_app'}.py:{target}") as proc:
        logs = list(proc.logs)
    plans = {
        e["model"]: e["event"]
        for e in logs
        if str(e.get("event", "")).startswith(("Batching model", "Model ")) and "model" in e
    }
    assert plans == lines
    assert all(e["level"] == "info" for e in logs if e.get("event") in lines.values())


def test_inputs_of_different_lengths_in_one_request_are_invalid() -> None:
    app = BlazeApp()

    @app.model("pair")
    def pair(a: list[int], b: list[int]) -> list[int]:
        return [x + y for x, y in zip(a, b, strict=True)]

    async def scenario(server: RunningServer) -> GRPCError:
        with pytest.raises(GRPCError) as info:
            await server.call("pair", a=[1, 2, 3], b=[1])
        assert list((await server.call("pair", a=[1, 2], b=[10, 20])).result) == [11, 22]
        return info.value

    error = run(app, scenario)
    assert error.status is Status.INVALID_ARGUMENT
    assert "different batch lengths" in (error.message or "")


class CountingPolicy:
    """A third-party policy: the fixed window, counting how often it was asked."""

    def __init__(self, config: BatchConfig) -> None:
        self.asked = 0
        self.inner = FixedWindowPolicy()

    def delay(self, state: QueueState) -> float:
        self.asked += 1
        return self.inner.delay(state)


def test_a_policy_from_a_plugin_is_used_by_name() -> None:
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

    async def scenario(server: RunningServer) -> None:
        await asyncio.gather(*[server.call("double", x=[i]) for i in range(3)])

    run(app, scenario)
    assert len(policies) == 1
    assert policies[0].asked > 0
    assert [sorted(call) for call in calls] == [[0, 1, 2]]


def test_batch_listeners_see_every_batch_and_the_queue_depth() -> None:
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

    async def scenario(server: RunningServer) -> None:
        await asyncio.gather(*[server.call("double", x=[i, i]) for i in range(10)])

    run(app, scenario)
    assert len(events) == len(calls)
    assert sum(e.rows for e in events) == 20
    assert sum(e.requests for e in events) == 10
    assert all(len(e.queue_waits) == e.requests and e.duration > 0 for e in events)
    assert {e.model for e in events} == {"double"}
    assert max(depths) > 0
    assert depths[-1] == 0


def test_failing_listeners_are_logged_and_a_failing_policy_fails_only_its_requests() -> None:
    from support import APPS

    from blazerpc.testing import serve_process

    module = load_app_module("broken_batching_app")
    with serve_process(f"{APPS / 'broken_batching_app'}.py:app") as proc:
        client = Client(module, proc)

        async def scenario() -> None:
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

        asyncio.run(scenario())
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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be a whole number >= 1"),
        ({"batch_timeout_ms": -1}, "batch_timeout_ms must be a number >= 0"),
        ({"max_concurrency": 1.5}, "max_concurrency must be a whole number >= 1"),
        ({"max_queue_size": 0}, "max_queue_size must be a whole number >= 1"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BlazeApp(**settings)
    app = BlazeApp()
    with pytest.raises(ConfigurationError, match=message):
        app.model("m", **settings)(lambda x: x)


def test_an_unknown_policy_is_refused_at_start_up_with_the_known_ones() -> None:
    app = BlazeApp(batch_policy="nope")

    @app.model("double")
    def double(x: list[int]) -> list[int]:
        return x

    with pytest.raises(ConfigurationError, match="unknown batch_policy 'nope'; available: adaptive, fixed"):
        app.schema()


@pytest.mark.parametrize("limit", [1, 3])
def test_an_unbatched_model_runs_at_most_max_concurrency_calls_at_once(limit: int) -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]
    app = BlazeApp(max_concurrency=limit)

    @app.model("slow")
    def slow(x: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return x

    async def scenario(server: RunningServer) -> list[int]:
        return [r.result for r in await asyncio.gather(*[server.call("slow", x=i) for i in range(12)])]

    assert run(app, scenario) == list(range(12))
    assert peak[0] == limit


def test_an_unbatched_model_with_a_full_queue_answers_resource_exhausted() -> None:
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(max_queue_size=2, max_concurrency=1, plugins=[depth.plugin()])

    @app.model("blocked")
    def blocked(x: int) -> int:
        gate()
        return x

    async def scenario(server: RunningServer) -> tuple[list[int], GRPCError]:
        first = asyncio.ensure_future(server.call("blocked", x=0))
        await wait_until(gate.entered.is_set)
        waiting = [asyncio.ensure_future(server.call("blocked", x=i)) for i in (1, 2)]
        await depth.queued("blocked", 2)
        with pytest.raises(GRPCError) as full:
            await server.call("blocked", x=3)
        gate.release.set()
        return [r.result for r in await asyncio.gather(first, *waiting)], full.value

    done, full = run(app, scenario)
    assert done == [0, 1, 2]
    assert full.status is Status.RESOURCE_EXHAUSTED
    assert "max_queue_size=2" in (full.message or "")
