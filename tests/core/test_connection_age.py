"""``blaze serve --max-connection-age``: an aged connection gets GOAWAY, its calls
finish, it closes, and clients reconnect, to another worker behind the same port."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from grpclib.const import Cardinality, Status
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated
from support import APPS, RecordingChannel, app_target, load_app_module

from blazerpc import CallError, Client
from blazerpc.testing import ServeProcess, blaze_command, run_grpcio_client, serve_process

REPLICA = app_target("replica_app")


async def test_an_aged_connection_gets_goaway_then_closes() -> None:
    schema = load_app_module(APPS / "replica_app.py").app.schema()
    method = next(m for m in schema.methods if m.model == "whoami")
    with serve_process(REPLICA, "--max-connection-age", "1") as proc:
        channel = RecordingChannel(proc.host, proc.port)
        try:
            opened = time.monotonic()
            request, reply = schema.classes[method.request], schema.classes[method.response]
            async with channel.request(method.path, Cardinality.UNARY_UNARY, request, reply) as stream:
                await stream.send_message(request(x=1), end=True)
                assert (await stream.recv_message()).result.isdigit()
                await stream.recv_trailing_metadata()
            deadline = time.monotonic() + 30
            while not channel.of_type(ConnectionTerminated) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            channel.close()
    [(at, goaway)] = channel.of_type(ConnectionTerminated)
    assert goaway.error_code == ErrorCodes.NO_ERROR
    assert goaway.last_stream_id == 1  # the one call: the server saw it, and no other
    assert at - opened >= 0.9  # the age, less its jitter of at most 10%


async def test_calls_in_flight_when_the_connection_ages_finish_and_later_calls_reconnect() -> None:
    with serve_process(REPLICA, "--max-connection-age", "0.5") as proc:
        async with Client(proc.address, timeout=30) as client:
            # Each of these outlives several ages of its connection.
            slow = [asyncio.ensure_future(client.predict("slow", seconds=1.5)) for _ in range(4)]
            quick = [await client.predict("whoami", x=i) for i in range(20)]
            assert set(await asyncio.gather(*slow)) == set(quick) == {str(proc.process.pid)}
            assert client.channel.goaways >= 1


async def test_a_busy_client_loses_no_call_to_connection_ageing() -> None:
    """Eight callers without pause on connections aged at 0.3 s: some of their streams
    race a GOAWAY (refused, sent again), none fails."""
    with serve_process(REPLICA, "--max-connection-age", "0.3") as proc:
        async with Client(proc.address, timeout=30) as client:
            failures: list[CallError] = []
            answered = 0
            end = time.monotonic() + 3

            async def caller() -> None:
                nonlocal answered
                while time.monotonic() < end:
                    try:
                        await client.predict("whoami", x=1)
                        answered += 1
                    except CallError as exc:
                        failures.append(exc)

            await asyncio.gather(*(caller() for _ in range(8)))
            goaways = client.channel.goaways
    assert failures == []
    assert answered > 0
    assert goaways >= 3


GRPCIO_SLOW_CALL = """
import sys, grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass

channel = grpc.insecure_channel(sys.argv[1])
pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
service = pool.FindServiceByName("blazerpc.InferenceService")
method = service.FindMethodByName("PredictSlow")
request, reply = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
call = channel.unary_unary(
    "/blazerpc.InferenceService/PredictSlow",
    request_serializer=request.SerializeToString,
    response_deserializer=reply.FromString,
)
print(call(request(seconds=float(sys.argv[2])), timeout=30).result)
print(call(request(seconds=0.0), timeout=30).result)
"""


def test_grpcio_finishes_a_call_across_the_goaway_of_its_connection() -> None:
    with serve_process(REPLICA, "--max-connection-age", "0.5") as proc:
        done = run_grpcio_client(GRPCIO_SLOW_CALL, proc.address, "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(proc.process.pid)] * 2


async def test_the_grace_ends_calls_that_outlive_it(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    args = ("--max-connection-age", "0.5", "--max-connection-age-grace", "0.5")
    with serve_process(REPLICA, *args, env={"BLAZERPC_TEST_CALLS": str(calls)}) as proc:
        async with Client(proc.address, timeout=30) as client:
            with pytest.raises(CallError) as caught:
                await client.predict("slow", seconds=20)
            assert caught.value.status is Status.UNAVAILABLE
            assert await client.predict("whoami", x=1) == str(proc.process.pid)
    # It reached the model: it was never sent again.
    assert calls.read_text().split("\n").count(f"{proc.process.pid} slow") == 1


async def _workers_seen(address: str, *, until: int, seconds: float) -> Counter[str]:
    """The workers (pids) that answer one client's calls, one after another, until
    ``until`` distinct ones answered or ``seconds`` passed."""
    seen: Counter[str] = Counter()
    async with Client(address, timeout=30) as client:
        end = time.monotonic() + seconds
        while len(seen) < until and time.monotonic() < end:
            seen[await client.predict("whoami", x=1)] += 1
            await asyncio.sleep(0.01)
    return seen


def _wait_for_workers(proc: ServeProcess, count: int) -> None:
    deadline = time.monotonic() + 120
    while not any(e.get("event") == f"Worker {count}/{count} serving" for e in list(proc.logs)):
        assert proc.process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)


async def test_without_an_age_one_worker_serves_a_client_connection() -> None:
    with serve_process(REPLICA, "--workers", "2") as proc:
        _wait_for_workers(proc, 2)
        seen = await _workers_seen(proc.address, until=2, seconds=3)
    assert len(seen) == 1, seen


async def test_with_an_age_both_workers_serve_one_client() -> None:
    """The kernel picks a worker per connection (SO_REUSEPORT): each reconnection after
    a GOAWAY lands on either, so both soon serve the client (all on one worker after n
    reconnections has odds 2**-n)."""
    with serve_process(REPLICA, "--workers", "2", "--max-connection-age", "1") as proc:
        _wait_for_workers(proc, 2)
        seen = await _workers_seen(proc.address, until=2, seconds=60)
    assert len(seen) == 2, seen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-connection-age-grace", "5"], "max_connection_age_grace needs max_connection_age"),
        (["--max-connection-age", "0"], "max_connection_age must be more than 0 seconds"),
    ],
)
def test_bad_connection_age_options_fail_blaze_serve_with_a_reason(args: list[str], message: str) -> None:
    done = subprocess.run(
        [*blaze_command(), "serve", REPLICA, "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert message in done.stdout + done.stderr
