"""A closed-loop load generator, run in its own process: N concurrent callers for a
fixed time, each sending the same pre-encoded request; prints JSON results.

    python _load.py HOST PORT PATH REQUEST_HEX CONCURRENCY SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from grpclib.client import Channel
from grpclib.const import Cardinality

from blazerpc.server._service import BlazeCodec, RawMessage


async def main(host: str, port: int, path: str, payload: bytes, concurrency: int, seconds: float) -> dict:
    channel = Channel(host, port, codec=BlazeCodec())
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = 0.0

    async def one_call() -> None:
        async with channel.request(
            path, Cardinality.UNARY_UNARY, RawMessage, RawMessage, timeout=30
        ) as stream:
            await stream.send_message(payload, end=True)
            await stream.recv_message()

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await one_call()
            except Exception as exc:  # noqa: BLE001 - counted, not raised
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            else:
                latencies.append(time.perf_counter() - started)

    # Warm up the connection, then measure.
    await one_call()
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*[caller() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    channel.close()
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
        )

    return {
        "calls": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


if __name__ == "__main__":
    host, port, path, payload_hex, concurrency, seconds = sys.argv[1:7]
    result = asyncio.run(
        main(host, int(port), path, bytes.fromhex(payload_hex), int(concurrency), float(seconds))
    )
    print(json.dumps(result))
