"""Limits of a served app over real `blaze serve` processes: message size, concurrent
calls, default timeout, queue size, and compressed messages."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from serving_support import LIMITS, SCHEMA, request, rpc, wait_for_log
from support import APPS, AppCaller, app_target, load_app_module

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import serve_process


async def test_an_oversized_request_is_refused_before_it_is_read() -> None:
    with serve_process(app_target("serving_app"), "--max-message-size", "1000") as proc:
        client = AppCaller(load_app_module(APPS / "serving_app.py"), proc)
        assert (await client.call("pid", text="x" * 900)).result == proc.process.pid
        with pytest.raises(GRPCError) as info:
            await client.call("pid", text="x" * 5000)
        assert info.value.status is Status.RESOURCE_EXHAUSTED
        assert "over this server's limit of 1000 bytes (max_message_size)" in (info.value.message or "")
        assert (await client.call("pid", text="ok")).result == proc.process.pid


async def test_max_concurrent_calls() -> None:
    with serve_process(
        app_target("serving_app"), "--max-concurrent-calls", "2", "--grace-period", "0"
    ) as proc:

        async def scenario() -> GRPCError:
            channel = Channel(proc.host, proc.port)
            try:
                async with contextlib.AsyncExitStack() as calls:
                    for i in range(2):  # both requests are on the wire before the probe is sent
                        stream = await calls.enter_async_context(rpc(channel, "hang").open(timeout=30))
                        calls.push_async_callback(stream.cancel)  # runs before the stream's exit
                        await stream.send_message(request("hang", x=i), end=True)
                    try:
                        await rpc(channel, "pid")(request("pid", text="?"), timeout=5)
                    except GRPCError as exc:
                        return exc
                    raise AssertionError("a third concurrent call was accepted")
            finally:
                channel.close()

        error = await scenario()
        refused = wait_for_log(proc, lambda e: e.get("event") == "call" and e.get("model") == "pid")
    assert error.status is Status.RESOURCE_EXHAUSTED
    assert "limit of 2 concurrent calls (max_concurrent_calls)" in (error.message or "")
    # The refused call reached the access log (an outer middleware) with its status.
    assert refused["status"] == "RESOURCE_EXHAUSTED"
    assert "max_concurrent_calls" in refused["message"]


async def test_default_timeout_applies_when_the_client_sends_no_deadline() -> None:
    with serve_process(app_target("serving_app"), "--default-timeout", "0.5") as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        try:
            with pytest.raises(GRPCError) as info:
                await rpc(channel, "hang")(request("hang", x=1))  # no deadline
            assert (await rpc(channel, "pid")(request("pid", text="?"))).result == proc.process.pid
            error = info.value
        finally:
            channel.close()
        assert time.monotonic() - started < 10
        cut = wait_for_log(proc, lambda e: e.get("event") == "call" and e.get("model") == "hang")
    assert error.status is Status.DEADLINE_EXCEEDED
    assert "default timeout of 0.5 s" in (error.message or "")
    assert cut["status"] == "DEADLINE_EXCEEDED"  # as the client got it, not CANCELLED
    assert 400 < cut["duration_ms"] < 5000


@pytest.mark.parametrize("workers", [1, 2])
async def test_limits_set_on_the_app_apply_through_blaze_serve(workers: int) -> None:
    """limits_app: BlazeApp(max_message_size=1000, max_concurrent_calls=2,
    default_timeout=0.5); no limit flag is given."""
    with serve_process(app_target("limits_app"), "--workers", str(workers), "--grace-period", "0") as proc:
        if workers > 1:
            wait_for_log(proc, lambda e: e.get("event") == f"Worker {workers}/{workers} serving")

        channel = Channel(proc.host, proc.port)
        try:
            ok = await rpc(channel, "pid", LIMITS)(request("pid", LIMITS, text="x" * 900), timeout=5)
            with pytest.raises(GRPCError) as oversized:
                await rpc(channel, "pid", LIMITS)(request("pid", LIMITS, text="x" * 5000), timeout=5)
            with pytest.raises(GRPCError) as timed_out:
                await rpc(channel, "hang", LIMITS)(request("hang", LIMITS, x=1))  # no deadline
            async with contextlib.AsyncExitStack() as calls:
                for i in range(2):  # on one connection, so on one worker
                    stream = await calls.enter_async_context(rpc(channel, "hang", LIMITS).open(timeout=30))
                    calls.push_async_callback(stream.cancel)
                    await stream.send_message(request("hang", LIMITS, x=i), end=True)
                with pytest.raises(GRPCError) as crowded:
                    await rpc(channel, "pid", LIMITS)(request("pid", LIMITS, text="?"), timeout=5)
            ok, oversized, timed_out, crowded = ok, oversized.value, timed_out.value, crowded.value
        finally:
            channel.close()

    assert ok.result != proc.process.pid if workers > 1 else ok.result == proc.process.pid
    assert oversized.status is Status.RESOURCE_EXHAUSTED
    assert "over this server's limit of 1000 bytes (max_message_size)" in (oversized.message or "")
    assert timed_out.status is Status.DEADLINE_EXCEEDED
    assert "default timeout of 0.5 s" in (timed_out.message or "")
    assert crowded.status is Status.RESOURCE_EXHAUSTED
    assert "limit of 2 concurrent calls (max_concurrent_calls)" in (crowded.message or "")


async def test_max_queue_size_from_the_command_line() -> None:
    with serve_process(app_target("serving_app"), "--max-queue-size", "1", "--grace-period", "0") as proc:
        # Three calls of a model that runs one at a time and sleeps for 2 minutes,
        # in whatever order they arrive: one runs, one waits (max_queue_size=1),
        # and the third is refused at once.
        channel = Channel(proc.host, proc.port)
        calls = [
            asyncio.ensure_future(rpc(channel, "single")(request("single", x=x), timeout=30))
            for x in (1, 2, 3)
        ]
        done, pending = await asyncio.wait(calls, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        for call in pending:
            call.cancel()
        channel.close()
        assert (len(done), len(pending)) == (1, 2), "exactly one call should have been answered"
        (refused,) = done
        error = refused.exception()
        assert isinstance(error, GRPCError), refused
    assert error.status is Status.RESOURCE_EXHAUSTED
    assert "max_queue_size=1" in (error.message or "")


async def test_a_compressed_message_is_unimplemented_with_a_message() -> None:
    with serve_process(app_target("serving_app")) as proc:
        path = next(m.path for m in SCHEMA.methods if m.model == "pid")
        payload = request("pid", text="zip").SerializeToString()

        async def scenario() -> GRPCError:
            channel = Channel(proc.host, proc.port, codec=BlazeCodec())
            try:
                async with channel.request(
                    path, Cardinality.UNARY_UNARY, RawMessage, RawMessage, timeout=5
                ) as stream:
                    await stream.send_request()
                    # The gRPC prefix with the compressed flag set (grpclib never sets it).
                    frame = b"\x01" + len(payload).to_bytes(4, "big") + payload
                    await stream._stream.send_data(frame, end_stream=True)
                    await stream.recv_message()
            except GRPCError as exc:
                return exc
            finally:
                channel.close()

            raise AssertionError("the call succeeded")

        error = await scenario()
    assert error.status is Status.UNIMPLEMENTED
    assert "compressed messages are not supported" in (error.message or "")
