"""The server's admission of calls (CallTracker): a task that carries several calls, as
a plugin protocol's bidirectional stream does (one call per request message), is one
call in flight, tracked and counted once until it ends."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import Limits
from blazerpc.server._calls import CallTracker


async def test_one_task_admitted_again_is_still_one_call_in_flight() -> None:
    calls = CallTracker(Limits(max_concurrent_calls=1))

    async def stream_of_calls() -> int:
        for _ in range(100):
            with calls.admit(None, streaming=True):  # type: ignore[arg-type]
                await asyncio.sleep(0)
        return len(calls.in_flight)

    assert await asyncio.ensure_future(stream_of_calls()) == 1
    await asyncio.sleep(0)  # a task's done callbacks run at the next turn of the loop
    assert calls.in_flight == set()  # gone once its task ended


async def test_another_task_is_refused_at_the_limit() -> None:
    calls = CallTracker(Limits(max_concurrent_calls=1))
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        with calls.admit(None, streaming=True):  # type: ignore[arg-type]
            holding.set()
            await release.wait()

    async def another() -> None:
        with calls.admit(None, streaming=True):  # type: ignore[arg-type]
            pass

    held = asyncio.ensure_future(hold())
    await holding.wait()
    with pytest.raises(GRPCError) as refused:
        await asyncio.ensure_future(another())
    assert refused.value.status is Status.RESOURCE_EXHAUSTED
    release.set()
    await held
