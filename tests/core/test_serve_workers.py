"""`blaze serve --workers`: worker processes that share the port, are replaced when
killed, stop with the parent and write whole log lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError
from serving_support import channel_per_worker, request, rpc, wait_for_log
from support import app_target, spawned

from blazerpc.testing import ServeProcess, blaze_command, serve_process


@pytest.fixture
def two_workers() -> Iterator[ServeProcess]:
    with serve_process(app_target("serving_app"), "--workers", "2", "--grace-period", "5") as proc:
        wait_for_log(proc, lambda e: e.get("event") == "Worker 2/2 serving")
        yield proc


async def worker_pids(proc: ServeProcess, count: int, timeout: float = 30) -> set[int]:
    """PIDs answering on new connections, until ``count`` distinct ones are seen."""

    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        channel = Channel(proc.host, proc.port)  # a new connection each time
        try:
            seen.add((await rpc(channel, "pid")(request("pid", text="?"), timeout=5)).result)
        except (GRPCError, ConnectionError, StreamTerminatedError, OSError):
            await asyncio.sleep(0.05)
        finally:
            channel.close()
    return seen


async def test_two_workers_share_the_port(two_workers: ServeProcess) -> None:
    logged = {e["pid"] for e in two_workers.logs if str(e.get("event", "")).startswith("Worker ")}
    assert len(logged) == 2
    assert await worker_pids(two_workers, 2) == logged
    assert two_workers.process.pid not in logged


async def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(two_workers: ServeProcess) -> None:
    first = wait_for_log(two_workers, lambda e: e.get("event") == "Worker 1/2 serving")
    os.kill(first["pid"], signal.SIGKILL)
    wait_for_log(two_workers, lambda e: str(e.get("event", "")).startswith("Worker 1 exited with code -9"))
    replaced = wait_for_log(
        two_workers, lambda e: e.get("event") == "Worker 1/2 serving" and e["pid"] != first["pid"]
    )
    pids = await worker_pids(two_workers, 2)
    assert replaced["pid"] in pids
    assert first["pid"] not in pids


def test_stopping_the_parent_stops_every_worker(two_workers: ServeProcess) -> None:
    pids = {e["pid"] for e in two_workers.logs if str(e.get("event", "")).startswith("Worker ")}
    assert two_workers.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_the_log_lines_of_two_workers_never_interleave() -> None:
    """Both workers write JSON lines to the one stderr at once: each line stays whole."""
    command = [*blaze_command(), "serve", app_target("serving_app"), "--host", "127.0.0.1", "--port", "0"]
    command += ["--log-format", "json", "--workers", "2", "--grace-period", "1"]
    with spawned(command) as server:
        server.wait_for(lambda lines: any('"Worker 2/2 serving"' in line for line in lines))
        port = next(json.loads(line)["port"] for line in server.lines if '"Server listening' in line)
        proc = ServeProcess(process=server.process, port=port, host="127.0.0.1")  # type: ignore[arg-type]

        channels = await channel_per_worker(proc, 2)
        await asyncio.gather(
            *[
                rpc(ch, "pid")(request("pid", text="?"), timeout=10)
                for ch in channels.values()
                for _ in range(200)
            ]
        )
        for channel in channels.values():
            channel.close()
        code = server.stop()
    assert code == 0
    entries = [json.loads(line) for line in server.lines]  # a torn line would not parse
    assert sum(e.get("event") == "call" for e in entries) >= 400


@pytest.mark.parametrize(
    ("slow", "sig"),
    [("all", signal.SIGTERM), ("after_first", signal.SIGTERM), ("after_first", signal.SIGINT)],
    ids=["none-serving-sigterm", "one-serving-sigterm", "one-serving-sigint"],
)
def test_a_signal_during_start_up_stops_the_workers_promptly(
    tmp_path: Path, slow: str, sig: signal.Signals
) -> None:
    """Workers take 60 s to import the app; a signal meanwhile stops the ones serving and
    the one still starting at once, instead of after its start-up."""
    pids = tmp_path / "pids"
    pids.mkdir()
    command = [*blaze_command(), "serve", app_target("slow_import_app"), "--host", "127.0.0.1", "--port", "0"]
    command += ["--log-format", "json", "--workers", "2", "--grace-period", "5"]
    env = {"BLAZERPC_TEST_PIDS": str(pids), "BLAZERPC_TEST_SLOW": slow}
    with spawned(command, env=env) as server:
        importing = 1 if slow == "all" else 2  # processes that have started importing the app
        server.wait_for(lambda _: len(list(pids.iterdir())) >= importing)
        time.sleep(0.3)  # well inside the import's 60 s sleep
        signalled = time.monotonic()
        code = server.stop(sig, timeout=20)
        stopped = time.monotonic() - signalled
    lines = server.lines
    workers = sorted(int(p.name) for p in pids.iterdir())
    assert len(workers) == importing
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert code == 0, "".join(lines)
    assert stopped < 5, f"stopped {stopped:.1f} s after the signal"
    events = [json.loads(line).get("event") for line in lines]
    assert ("Worker 1/2 serving" in events) is (slow == "after_first")
    assert "Worker 2/2 serving" not in events
