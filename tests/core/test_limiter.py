"""The unbatched models' concurrency limit: slots are never lost or doubled, whatever
is cancelled when."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc.server._limit import ConcurrencyLimit


def _limit(slots: int, queue: int = 10) -> ConcurrencyLimit:
    return ConcurrencyLimit("m", slots, queue, cancel_with_call=True)


async def test_at_most_n_run_and_the_rest_wait_in_order() -> None:
    limit = _limit(2)
    running = peak = 0
    order: list[int] = []

    async def call(args: list[int]) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(args[0])
        await asyncio.sleep(0.01)
        running -= 1
        return args[0]

    results = await asyncio.gather(*[limit.run(call, [i]) for i in range(6)])
    assert results == list(range(6))
    assert peak == 2
    assert order == list(range(6))  # first come, first served


@pytest.mark.parametrize("when", ["after the slot is handed over", "before it is"])
async def test_a_waiter_cancelled_as_the_slot_frees_passes_it_on(when: str) -> None:
    limit = _limit(1)
    gate = asyncio.Event()
    ran: list[str] = []
    waiters: dict[str, asyncio.Future[None]] = {}

    async def call(args: list[str]) -> None:
        ran.append(args[0])
        if args[0] == "a":
            await gate.wait()
            if when == "before it is":
                waiters["b"].cancel()  # b is cancelled while still waiting
            else:
                # Runs after a's slot went to b, before b could resume and take it.
                asyncio.get_running_loop().call_soon(waiters["b"].cancel)

    a = asyncio.ensure_future(limit.run(call, ["a"]))
    await asyncio.sleep(0)
    waiters["b"] = asyncio.ensure_future(limit.run(call, ["b"]))
    c = asyncio.ensure_future(limit.run(call, ["c"]))
    await asyncio.sleep(0)
    gate.set()
    await a
    with pytest.raises(asyncio.CancelledError):
        await waiters["b"]
    await asyncio.wait_for(c, 1)  # the slot went on to c
    await asyncio.wait_for(limit.run(call, ["d"]), 1)  # and is free again afterwards
    assert ran == ["a", "c", "d"]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    limit = _limit(1, queue=1)
    gate = asyncio.Event()

    async def call(args: list[str]) -> None:
        await gate.wait()

    a = asyncio.ensure_future(limit.run(call, ["a"]))
    await asyncio.sleep(0)
    b = asyncio.ensure_future(limit.run(call, ["b"]))
    await asyncio.sleep(0)
    with pytest.raises(GRPCError) as full:
        await limit.run(call, ["c"])
    assert full.value.status is Status.RESOURCE_EXHAUSTED
    assert "1 calls are waiting (max_queue_size=1)" in (full.value.message or "")
    b.cancel()
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(limit.run(call, ["d"]))  # b's place in the queue is free
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(a, waiting), 1)
