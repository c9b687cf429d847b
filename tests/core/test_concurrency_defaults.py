"""The concurrency defaults, over a real ``blaze serve``: an unbatched ``async def``
model is bounded only by the server's ``max_concurrent_calls``, and the start-up log
says what each model really does."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from support import app_target

from blazerpc import Client
from blazerpc.testing import ServeProcess, serve_process


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _naps(proc: ServeProcess, calls: int) -> list[int]:
    async with Client(proc.address, timeout=60) as client:
        return list(await asyncio.gather(*(client.predict("nap", x=i) for i in range(calls))))


async def test_50_calls_of_an_async_model_run_together() -> None:
    with serve_process(app_target("concurrency_app")) as proc:
        started = time.monotonic()
        running = await _naps(proc, 50)
        elapsed = time.monotonic() - started
    # One at a time (the old default) would be 50 s, each call seeing itself alone.
    assert max(running) > 1
    assert elapsed < 15, f"50 calls of a 1 s model took {elapsed:.1f} s"


async def test_sigterm_with_50_async_calls_in_flight_answers_all_50(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("concurrency_app"), "--grace-period", "30", env=env) as proc:
        async with Client(proc.address, timeout=60) as client:
            await client.connect()
            calls = [asyncio.ensure_future(client.predict("nap", x=i)) for i in range(50)]
            deadline = time.monotonic() + 30
            while _lines(arrivals) < 50:  # every call is in the server
                assert time.monotonic() < deadline, f"{_lines(arrivals)} of 50 calls arrived"
                await asyncio.sleep(0.01)
            proc.process.send_signal(signal.SIGTERM)
            results = list(await asyncio.gather(*calls))
        code = await asyncio.get_running_loop().run_in_executor(None, proc.process.wait, 60)
    assert len(results) == 50  # every call answered OK (an error status would have raised)
    assert code == 0


def test_the_start_up_log_says_what_each_model_does() -> None:
    with serve_process(app_target("concurrency_app")) as proc:
        logs = {
            e["model"]: e
            for e in list(proc.logs)
            if "model" in e and str(e.get("event", "")).startswith(("Model ", "Batching model "))
        }
    assert logs["nap"]["event"] == (
        "Model nap v1 is not batched: input 'x' (int) has no batch axis; async, so no limit of "
        "its own (the server's max_concurrent_calls, 1024)"
    )
    assert "max_concurrency" not in logs["nap"]
    assert logs["work"]["event"].endswith(
        "; sync, so up to 32 calls at a time (the model threads, shared by every sync model)"
    )
    assert logs["count"]["event"] == "Model count v1 streams: not batched and not limited"
    assert "max_concurrency" not in logs["count"]
    assert logs["total"]["event"].endswith(", 1 batch at a time")
    assert logs["total"]["max_concurrency"] == 1
