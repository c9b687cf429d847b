"""`blaze serve` end to end with a grpclib client: unary, streaming, health."""

from __future__ import annotations

import ast
import asyncio

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from support import QUICKSTART, ROOT, AppCaller, load_app_module

from blazerpc.testing import ServeProcess


def test_the_example_is_the_readme_quick_start() -> None:
    """What the README's fresh-machine command serves is the code the README shows."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("`app.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    example = QUICKSTART.read_text()
    assert example.endswith(shown)
    docstring = example[: len(example) - len(shown)]
    assert isinstance(ast.literal_eval(docstring.strip()), str), docstring  # and nothing else
    assert "return [0.95] * len(text)" in shown


async def test_quickstart_unary(quickstart_server: ServeProcess) -> None:
    client = AppCaller(load_app_module(QUICKSTART), quickstart_server)
    reply = await client.call("sentiment", text=["good", "bad", "meh"])
    assert list(reply.result) == pytest.approx([0.95, 0.95, 0.95])  # one score per text


def test_startup_log_names_models_and_address(quickstart_server: ServeProcess) -> None:
    events = [entry["event"] for entry in quickstart_server.logs]
    assert "Loaded model: sentiment v1" in events
    assert f"Server listening on 127.0.0.1:{quickstart_server.port}" in events


async def test_async_generator_streams_each_yield(streaming: AppCaller) -> None:
    replies = await streaming.stream("generate", prompt="the quick brown fox")
    assert [r.result for r in replies] == ["the", "quick", "brown", "fox"]


async def test_sync_generator_streams_from_a_worker_thread(streaming: AppCaller) -> None:
    replies = await streaming.stream("count", n=5)
    assert [r.result for r in replies] == [0, 1, 2, 3, 4]


async def test_empty_stream(streaming: AppCaller) -> None:
    assert await streaming.stream("count", n=0) == []


async def test_error_after_some_messages_ends_the_stream_with_internal(streaming: AppCaller) -> None:
    async def run() -> tuple[list[int], GRPCError]:
        from grpclib.client import UnaryStreamMethod

        m = streaming.method("fail_midway")
        channel = streaming.channel()
        got: list[int] = []
        try:
            classes = streaming.schema.classes
            rpc = UnaryStreamMethod(channel, m.path, classes[m.request], classes[m.response])
            try:
                async with rpc.open(timeout=10) as stream:
                    await stream.send_message(streaming.request("fail_midway", n=3), end=True)
                    async for reply in stream:
                        got.append(reply.result)
            except GRPCError as exc:
                return got, exc
        finally:
            channel.close()
        raise AssertionError("the stream ended without an error")

    got, error = await run()
    assert got == [0, 1, 2]
    assert error.status is Status.INTERNAL
    assert "RuntimeError: stopped after 3" in (error.message or "")


async def test_concurrent_streams_do_not_mix(streaming: AppCaller) -> None:
    calls = [streaming.stream("count", n=n) for n in (3, 7, 11, 5)]
    got = [[r.result for r in replies] for replies in await asyncio.gather(*calls)]
    assert got == [list(range(n)) for n in (3, 7, 11, 5)]


@pytest.mark.parametrize("service", ["", "blazerpc.InferenceService"])
async def test_health_check_serving(quickstart_server: ServeProcess, service: str) -> None:
    channel = Channel(quickstart_server.host, quickstart_server.port)
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service=service), timeout=5)
        got = reply.status
    finally:
        channel.close()
    assert got == HealthCheckResponse.SERVING


async def test_health_check_unknown_service_is_not_found(quickstart_server: ServeProcess) -> None:
    async def check() -> None:
        channel = Channel(quickstart_server.host, quickstart_server.port)
        try:
            await HealthStub(channel).Check(HealthCheckRequest(service="nope.Service"), timeout=5)
        finally:
            channel.close()

    with pytest.raises(GRPCError) as info:
        await check()
    assert info.value.status is Status.NOT_FOUND


async def test_health_watch_reports_serving(quickstart_server: ServeProcess) -> None:
    channel = Channel(quickstart_server.host, quickstart_server.port)
    try:
        async with HealthStub(channel).Watch.open(timeout=5) as stream:
            await stream.send_message(HealthCheckRequest(service="blazerpc.InferenceService"), end=True)
            first = await stream.recv_message()
            assert first is not None
            await stream.cancel()
            got = first.status
    finally:
        channel.close()
    assert got == HealthCheckResponse.SERVING


def test_sigterm_stops_the_server_cleanly(tmp_path) -> None:
    from blazerpc.testing import serve_process

    with serve_process(f"{QUICKSTART}:app") as proc:
        code = proc.stop()
    assert code == 0
    assert any(entry["event"] == "Server stopped" for entry in proc.logs)
