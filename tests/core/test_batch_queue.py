"""The batch queue over a real server: deadlines that pass in the queue, clients that
leave, a full queue, rows freed at once, constant cost per arrival and departure."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from batching_support import DepthRecorder, doubling_app
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import Gate, wait_until

from blazerpc.testing import serve_app


async def test_a_request_whose_deadline_passes_in_the_queue_never_reaches_the_model() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, plugins=[depth.plugin()])

    async with serve_app(app) as server:
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
        first = result
    assert list(first.result) == [2]
    assert all(777 not in call for call in calls)
    assert [5] in calls


async def test_a_client_that_goes_away_is_dropped_from_the_queue() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, plugins=[depth.plugin()])

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        gone = asyncio.ensure_future(server.call("double", x=[555]))
        await depth.queued("double", 1)
        gone.cancel()  # the client cancels: the server side sees the stream reset
        await depth.queued("double", 0)
        gate.release.set()
        await first
        assert list((await server.call("double", x=[3])).result) == [6]
    assert all(555 not in call for call in calls)


async def test_a_full_queue_answers_resource_exhausted_at_once() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("double", x=[1]))
        await wait_until(gate.entered.is_set)
        queued = asyncio.ensure_future(server.call("double", x=[1, 2, 3, 4]))
        await depth.queued("double", 4)
        started = time.monotonic()
        with pytest.raises(GRPCError) as full:
            await server.call("double", x=[9])
        assert time.monotonic() - started < 5  # answered while the model is still blocked
        gate.release.set()
        first, queued, full = await first, await queued, full.value
    assert list(first.result) == [2]
    assert list(queued.result) == [2, 4, 6, 8]
    assert full.status is Status.RESOURCE_EXHAUSTED
    assert "max_queue_size=4" in (full.message or "")


async def test_requests_that_expire_in_the_queue_free_their_rows_while_the_model_is_busy() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async with serve_app(app) as server:
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
    assert all(100 + i not in call for call in calls for i in range(4))


async def test_a_client_that_leaves_frees_its_rows_at_once() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = doubling_app(calls, gate, max_queue_size=4, plugins=[depth.plugin()])

    async with serve_app(app) as server:
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
    assert [51, 52, 53, 54] not in calls


async def test_a_deep_queue_costs_constant_time_per_arrival_and_departure() -> None:
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
    assert elapsed < 5, f"{elapsed:.1f} s for 20 000 arrivals and departures"
