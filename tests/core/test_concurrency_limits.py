"""max_concurrency over a real server: batched and unbatched models run at most that many
calls at once, and a full queue of an unbatched model answers RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from batching_support import DepthRecorder
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import Gate, wait_until

from blazerpc import BlazeApp
from blazerpc.testing import serve_app


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_a_batched_model_runs_at_most_max_concurrency_batches_at_once(limit: int) -> None:
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

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("slow", x=[i]) for i in range(16)])
        got = [list(r.result) for r in replies]
    assert got == [[i] for i in range(16)]
    assert peak[0] == limit  # never more, and the limit was reached
    assert all(len(call) <= 2 for call in calls)
    assert len(calls) < 16  # batched all the same


@pytest.mark.parametrize("limit", [1, 3])
async def test_an_unbatched_model_runs_at_most_max_concurrency_calls_at_once(limit: int) -> None:
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

    async with serve_app(app) as server:
        got = [r.result for r in await asyncio.gather(*[server.call("slow", x=i) for i in range(12)])]
    assert got == list(range(12))
    assert peak[0] == limit


async def test_an_unbatched_model_with_a_full_queue_answers_resource_exhausted() -> None:
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(max_queue_size=2, max_concurrency=1, plugins=[depth.plugin()])

    @app.model("blocked")
    def blocked(x: int) -> int:
        gate()
        return x

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("blocked", x=0))
        await wait_until(gate.entered.is_set)
        waiting = [asyncio.ensure_future(server.call("blocked", x=i)) for i in (1, 2)]
        await depth.queued("blocked", 2)
        with pytest.raises(GRPCError) as full:
            await server.call("blocked", x=3)
        gate.release.set()
        done, full = [r.result for r in await asyncio.gather(first, *waiting)], full.value
    assert done == [0, 1, 2]
    assert full.status is Status.RESOURCE_EXHAUSTED
    assert "max_queue_size=2" in (full.message or "")
