"""Graceful drain of a real `blaze serve` process: SIGTERM, the grace period, a second
signal, queued calls, GOAWAY, and sync models that never return."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, StreamEnded
from serving_support import (
    DRAIN,
    channel_per_worker,
    line_count,
    request,
    rpc,
    wait_async,
    wait_for_log,
)
from support import RecordingChannel, app_target

from blazerpc.testing import ServeProcess, serve_process

# --- graceful drain ----------------------------------------------------------------------


async def test_sigterm_drains_50_calls_in_flight(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "20", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        statuses: list[tuple[float, int]] = []

        async def watch() -> None:
            with contextlib.suppress(GRPCError, StreamTerminatedError, ConnectionError):  # ends with GOAWAY
                async with HealthStub(channel).Watch.open(timeout=30) as stream:
                    await stream.send_message(
                        HealthCheckRequest(service="blazerpc.InferenceService"), end=True
                    )
                    async for reply in stream:
                        statuses.append((time.monotonic(), reply.status))

        watcher = asyncio.ensure_future(watch())
        await wait_async(lambda: statuses)
        calls = [
            asyncio.ensure_future(rpc(channel, "slow")(request("slow", x=i), timeout=30)) for i in range(50)
        ]
        await wait_async(lambda: line_count(arrivals) == 50)  # inside the 2 s model
        proc.process.send_signal(signal.SIGTERM)
        await wait_async(lambda: len(statuses) > 1)
        with pytest.raises(GRPCError) as refused:
            await rpc(channel, "slow")(request("slow", x=999), timeout=10)
        rejected = refused.value
        results = [r.result for r in await asyncio.gather(*calls)]
        done_at = time.monotonic()
        await asyncio.wait_for(watcher, 30)
        channel.close()
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

    assert results == [2 * i for i in range(50)]
    assert [s for _, s in statuses[:2]] == [HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING]
    assert statuses[1][0] < done_at  # NOT_SERVING came before the calls finished
    assert rejected.status is Status.UNAVAILABLE
    assert "shutting down" in (rejected.message or "")
    assert code == 0
    assert elapsed < 20
    drain = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Draining"))
    assert drain["calls"] == 50


async def test_calls_still_running_when_the_grace_period_ends_get_unavailable(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "1", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        calls = [
            asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=i), timeout=60)) for i in range(3)
        ]
        await wait_async(lambda: line_count(arrivals) == 3)
        proc.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        channel.close()
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

        # The access log (middleware) records the status the clients got, not CANCELLED.
        wait_for_log(proc, lambda e: e.get("event") == "Server stopped")
        statuses = [e["status"] for e in proc.logs if e.get("event") == "call"]

    for result in results:
        assert isinstance(result, GRPCError)
        assert result.status is Status.UNAVAILABLE
        assert "shut down before the call completed" in (result.message or "")
    assert code == 0
    assert elapsed < 10
    assert statuses == ["UNAVAILABLE"] * 3


async def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "60", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        calls = [
            asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=i), timeout=60)) for i in range(2)
        ]
        await wait_async(lambda: line_count(arrivals) == 2)
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        proc.process.send_signal(signal.SIGINT)
        results = await asyncio.gather(*calls, return_exceptions=True)
        channel.close()
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

    assert all(isinstance(r, GRPCError) and r.status is Status.UNAVAILABLE for r in results)
    assert code == 0
    assert elapsed < 15


@pytest.mark.parametrize("model", ["queued", "queued_batch"])
async def test_requests_queued_behind_a_busy_model_finish_during_a_drain(tmp_path: Path, model: str) -> None:
    """The first call holds the model at a gate; three more wait in its queue (the slot of
    an unbatched model, the batcher's queue of a batched one) when SIGTERM comes."""
    gate, entered = tmp_path / "gate", tmp_path / "gate.entered"
    batched = model == "queued_batch"

    def call(channel: Channel, x: int) -> Any:
        message = request(model, DRAIN, x=[x] if batched else x)
        return asyncio.ensure_future(rpc(channel, model, DRAIN)(message, timeout=30))

    env = {"BLAZERPC_TEST_GATE": str(gate)}
    with serve_process(app_target("drain_app"), "--grace-period", "20", env=env) as proc:
        channel = Channel(proc.host, proc.port)
        first = call(channel, 0)
        await wait_async(entered.exists)
        queued = [call(channel, x) for x in (1, 2, 3)]
        arrived = tmp_path / "gate.arrived"
        # All four on the server (the three behind the call at the gate) before SIGTERM.
        await wait_async(lambda: line_count(arrived) == 4)
        inside = entered.read_text().splitlines()
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        gate.touch()
        replies = await asyncio.gather(first, *queued)
        channel.close()
        code = proc.process.wait(30)

    assert code == 0
    assert inside == (["[0]"] if batched else ["0"])  # only the first call was in the model
    drain = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Draining"))
    assert drain["calls"] == 4
    calls = entered.read_text().splitlines()
    if batched:
        assert [list(r.result_0) for r in replies] == [[0], [10], [20], [30]]
        # The three queued requests left the queue together, as one batch, after SIGTERM.
        assert [list(r.result_1) for r in replies] == [[1], [3], [3], [3]]
        assert len(calls) == 2
        assert sorted(json.loads(calls[1])) == [1, 2, 3]
    else:
        assert [r.result for r in replies] == [0, 10, 20, 30]
        assert sorted(map(int, calls)) == [0, 1, 2, 3]


async def test_a_drain_ends_every_connection_with_goaway(tmp_path: Path) -> None:
    """Seen by grpclib clients: the HTTP/2 GOAWAY frame (NO_ERROR) arrives on the busy
    connection after its call's answer, and on an idle one too; then both close."""
    gate, entered = tmp_path / "gate", tmp_path / "gate.entered"
    env = {"BLAZERPC_TEST_GATE": str(gate)}
    with serve_process(app_target("drain_app"), "--grace-period", "20", env=env) as proc:
        busy, idle = RecordingChannel(proc.host, proc.port), RecordingChannel(proc.host, proc.port)
        await rpc(idle, "pid", DRAIN)(request("pid", DRAIN, text="?"), timeout=5)
        call = asyncio.ensure_future(rpc(busy, "queued", DRAIN)(request("queued", DRAIN, x=7), timeout=30))
        await wait_async(entered.exists)
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        await asyncio.sleep(0.3)
        goaways_while_running = len(busy.of_type(ConnectionTerminated))
        gate.touch()
        reply = await call
        await wait_async(lambda: busy.lost_at is not None and idle.lost_at is not None)
        busy.close()
        idle.close()
        code = proc.process.wait(30)

    assert code == 0
    assert reply.result == 70
    assert goaways_while_running == 0  # not while a call is still running
    for channel in (busy, idle):
        [(received, goaway)] = channel.of_type(ConnectionTerminated)
        assert goaway.error_code == ErrorCodes.NO_ERROR
        assert channel.lost_at is not None
        assert channel.lost_at >= received
    # On the busy connection, the call's end came first.
    kinds = [type(event) for _, event in busy.events]
    assert kinds.index(StreamEnded) < kinds.index(ConnectionTerminated)


# --- a sync model that never returns -------------------------------------------------------


def _events(proc: ServeProcess, prefix: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e) for i, e in enumerate(list(proc.logs)) if str(e.get("event", "")).startswith(prefix)]


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_hung_sync_model_does_not_keep_the_process_past_the_grace_period(
    workers: int, tmp_path: Path
) -> None:
    grace = 1.0
    args = ("--grace-period", str(grace), "--workers", str(workers))
    entered = tmp_path / "gate.entered"  # hang_sync notes each call there
    env = {"BLAZERPC_TEST_GATE": str(tmp_path / "gate")}
    with serve_process(app_target("drain_app"), *args, env=env) as proc:
        if workers > 1:
            wait_for_log(proc, lambda e: e.get("event") == f"Worker {workers}/{workers} serving")

        channels = await channel_per_worker(proc, workers, DRAIN)
        # Two calls stuck in time.sleep(3600) on every worker.
        calls = [
            asyncio.ensure_future(rpc(ch, "hang_sync", DRAIN)(request("hang_sync", DRAIN, x=i), timeout=60))
            for ch in channels.values()
            for i in range(2)
        ]
        # Every one inside the model, in its thread, before SIGTERM.
        await wait_async(lambda: line_count(entered) == 2 * workers)
        signalled = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        for channel in channels.values():
            channel.close()
        code = proc.process.wait(grace + 10)
        exited = time.monotonic() - signalled

    for result in results:
        assert isinstance(result, GRPCError), result
        assert result.status is Status.UNAVAILABLE
    assert code == 0
    assert exited < grace + 2.5, f"exited {exited:.1f} s after SIGTERM with a {grace:g} s grace period"
    for pid in channels:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Each worker said how many calls it abandoned, then ran its shutdown hooks.
    abandoned = _events(proc, "Abandoning")
    assert sorted(e["abandoned"] for _, e in abandoned) == [2] * workers
    stopped = _events(proc, "Server stopped")
    for index, entry in abandoned:
        pid = entry.get("worker_pid")
        assert any(i > index and e.get("worker_pid") == pid for i, e in stopped)


async def test_a_sync_model_hanging_past_the_clients_deadline() -> None:
    with serve_process(app_target("drain_app"), "--grace-period", "1") as proc:
        channel = Channel(proc.host, proc.port)
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):  # grpclib: DEADLINE_EXCEEDED on its side
                await rpc(channel, "hang_sync", DRAIN)(request("hang_sync", DRAIN, x=1), timeout=0.5)
            elapsed = time.monotonic() - started
            # The thread is still in the model; the server answers everything else.
            pid = await rpc(channel, "pid", DRAIN)(request("pid", DRAIN, text="?"), timeout=5)
            assert pid.result == proc.process.pid
        finally:
            channel.close()
        logged = wait_for_log(proc, lambda e: e.get("event") == "call" and e.get("model") == "hang_sync")
        assert proc.stop(timeout=10) == 0
    assert elapsed < 3
    assert logged["status"] == "DEADLINE_EXCEEDED"
    # The call ended for its client and for the drain, but its thread never returned.
    assert not _events(proc, "Draining")
    assert [e["abandoned"] for _, e in _events(proc, "Abandoning")] == [1]
