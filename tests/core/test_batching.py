"""Batching over a real server: one model call per batch, each request its own rows,
failures isolated, sync models off the event loop, what never shares a batch."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from batching_support import DepthRecorder, doubling_app
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import Gate, wait_until

from blazerpc import BlazeApp, TensorInput, TensorOutput, hookimpl
from blazerpc.batching import BatchEvent, BatchListener
from blazerpc.testing import serve_app


async def test_32_concurrent_clients_share_few_model_calls_and_get_their_own_rows() -> None:
    calls: list[list[int]] = []
    app = doubling_app(calls)
    inputs = [[1000 * i + k for k in range(1 + i % 3)] for i in range(32)]

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("double", x=x) for x in inputs])
        results = [list(r.result) for r in replies]
    assert results == [[2 * v for v in x] for x in inputs]
    assert len(calls) < len(inputs) / 4, f"{len(calls)} model calls for {len(inputs)} requests"
    assert sorted(v for call in calls for v in call) == sorted(v for x in inputs for v in x)
    assert max(len(call) for call in calls) > 1


async def test_one_bad_request_fails_alone_and_the_others_succeed() -> None:
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

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("checked", x=[0]))
        await wait_until(gate.entered.is_set)  # the model is busy: the rest queue up together
        rest = [asyncio.ensure_future(server.call("checked", x=[i, i])) for i in range(1, 16)]
        negative = asyncio.ensure_future(server.call("checked", x=[-5]))
        await depth.queued("checked", 31)  # 15 requests of 2 rows and the bad one
        gate.release.set()
        results = await asyncio.gather(first, *rest, negative, return_exceptions=True)
    *good, bad = results
    assert [list(r.result) for r in good] == [[1]] + [[i + 1, i + 1] for i in range(1, 16)]
    assert isinstance(bad, GRPCError)
    assert bad.status is Status.INTERNAL
    assert "ValueError: negative input in [-5]" in (bad.message or "")
    assert any(len(call) > 2 and -5 in call for call in calls), "the bad request was first tried in a batch"


async def test_a_failed_batch_and_each_re_run_are_reported_as_model_calls_of_their_own() -> None:
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

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("checked", x=[0]))
        await wait_until(gate.entered.is_set)
        rest = [asyncio.ensure_future(server.call("checked", x=x)) for x in ([1], [2, 2], [-3], [4])]
        await depth.queued("checked", 5)  # all four queue behind the blocked call: one batch
        gate.release.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
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


async def test_wrong_number_of_rows_fails_every_request_of_the_batch() -> None:
    app = BlazeApp()

    @app.model("short")
    def short(x: list[int]) -> list[int]:
        return x[:-1]

    async with serve_app(app) as server:
        got = await asyncio.gather(
            *[server.call("short", x=[1, 2]) for _ in range(4)], return_exceptions=True
        )
    for result in got:
        assert isinstance(result, GRPCError)
        assert result.status is Status.INTERNAL
        assert "returned" in (result.message or "")
        assert "one row per input row" in (result.message or "")


async def test_wrong_row_count_fails_every_request_of_a_real_batch_without_re_runs() -> None:
    calls: list[list[int]] = []
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(plugins=[depth.plugin()])

    @app.model("short")
    def short(x: list[int]) -> list[int]:
        calls.append(list(x))
        gate()
        return x[:-1] if len(x) > 1 else x  # one row short, for a batch

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("short", x=[0]))
        await wait_until(gate.entered.is_set)
        batch = [asyncio.ensure_future(server.call("short", x=[i])) for i in range(1, 5)]
        await depth.queued("short", 4)  # the four queue up behind the blocked call
        gate.release.set()
        first, *batched = await asyncio.gather(first, *batch, return_exceptions=True)
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
async def test_a_sync_model_runs_off_the_event_loop_thread(batched: bool) -> None:
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

    async with serve_app(app) as server:
        loop_thread = threading.current_thread()
        slow_call = asyncio.ensure_future(server.call("slow", x=[1]))
        await wait_until(lambda: bool(threads))
        # The loop answers while the sync model is still blocked in its thread.
        assert (await server.call("quick", x=7)).result == 7
        assert not slow_call.done()
        release.set()
        assert list((await slow_call).result) == [1]
    [thread] = threads
    assert thread is not loop_thread
    assert thread.name.startswith("blazerpc-model")


async def test_requests_with_different_trailing_dimensions_never_share_a_batch() -> None:
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

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("rowsum", x=tensor(1, 2)))
        await wait_until(gate.entered.is_set)
        mixed = [asyncio.ensure_future(server.call("rowsum", x=tensor(2, n))) for n in (2, 3, 2, 3)]
        await depth.queued("rowsum", 8)
        gate.release.set()
        replies = await asyncio.gather(first, *mixed)
    assert sorted(shapes) == [(1, 2), (4, 2), (4, 3)]
    for reply, n in zip(replies[1:], (2, 3, 2, 3), strict=True):
        got = np.frombuffer(reply.result.data, dtype=np.float32)
        assert got.tolist() == np.arange(2 * n, dtype=np.float32).reshape(2, n).sum(axis=1).tolist()


async def test_async_models_are_batched_too() -> None:
    calls: list[list[str]] = []
    app = BlazeApp()

    @app.model("shout")
    async def shout(text: list[str]) -> list[str]:
        calls.append(list(text))
        await asyncio.sleep(0.02)
        return [t.upper() for t in text]

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("shout", text=[f"w{i}"]) for i in range(16)])
        got = [list(r.result) for r in replies]
    assert got == [[f"W{i}"] for i in range(16)]
    assert len(calls) < 16


async def test_models_without_a_batch_axis_or_with_batching_off_are_called_per_request() -> None:
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

    async with serve_app(app) as server:
        await asyncio.gather(*[server.call("scalar", x=i) for i in range(8)])
        await asyncio.gather(*[server.call("off", x=[i]) for i in range(8)])
    assert seen == {"scalar": 8, "off": 8}
