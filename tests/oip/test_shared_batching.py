"""V2 and native calls of one batched model share its batcher: a real ``blaze serve``,
32 V2 calls and 32 native ones at once, far fewer model calls, each client its rows."""

from __future__ import annotations

import asyncio

import numpy as np
from v2_client import channel, infer, output, request

from blazerpc import Client
from blazerpc.testing import ServeProcess


async def test_v2_and_native_calls_join_the_same_batches(oip_server: ServeProcess) -> None:
    ch = channel(oip_server.address)
    async with Client(oip_server.address, timeout=30) as client:
        await client.predict("calls", reset=True)

        async def v2(i: int) -> float:
            value = np.array([[i]], dtype=np.float32)
            response = await infer(
                ch, request("rows", [("x", "FP32", [1, 1], value.tobytes())], id=str(i)), 30
            )
            assert response.id == str(i)
            return float(output(response, "result")[0, 0])

        async def native(i: int) -> float:
            result = await client.predict("rows", x=np.array([[i]], dtype=np.float32))
            return float(result[0, 0])

        answers = await asyncio.gather(*(v2(i) for i in range(32)), *(native(100 + i) for i in range(32)))
        calls = await client.predict("calls", reset=False)
    ch.close()
    assert answers == [i + 1.0 for i in range(32)] + [100 + i + 1.0 for i in range(32)]
    assert calls.sum(axis=0).tolist() == [32, 32]  # (V2 rows, native rows) per model call
    assert len(calls) <= 16, calls  # joined: one model call per 4 requests at the most
    assert any(v2 and native for v2, native in calls.tolist()), calls  # both kinds in one call
