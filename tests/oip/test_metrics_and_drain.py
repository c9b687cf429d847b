"""The metrics plugin counts V2 calls as it counts native ones, per model; ServerReady
and ModelReady turn false while the server drains."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request

import numpy as np
import pytest
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from oip_support import APP
from v2_client import M, call, channel, infer, request

from blazerpc import BlazeApp, TensorInput, TensorOutput
from blazerpc.server import BlazeServer
from blazerpc.testing import ServeProcess, serve_process


def counted(port: int) -> dict[tuple[str, str, str], float]:
    parser = pytest.importorskip("prometheus_client.parser", reason="the metrics plugin is not installed")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "blazerpc_requests_total":
                found[(s.labels["model"], s.labels["method"], s.labels["code"])] = s.value
    return found


async def test_metrics_count_v2_calls_per_model() -> None:
    pytest.importorskip("blazerpc_metrics", reason="the metrics plugin is not installed")
    with serve_process(APP, "--metrics-port", "0") as proc:
        port = int(next(e["metrics_port"] for e in list(proc.logs) if "metrics_port" in e))
        await _calls(proc)
        samples = counted(port)
    assert samples[("half", "ModelInfer", "OK")] == 2
    assert samples[("rows", "ModelInfer", "OK")] == 1
    assert samples[("half", "ModelInfer", "INVALID_ARGUMENT")] == 1
    assert samples[("half", "PredictHalf", "OK")] == 1
    assert samples[("rows", "ModelInfer", "DEADLINE_EXCEEDED")] == 1


async def _calls(proc: ServeProcess) -> None:
    ch = channel(proc.address)
    h = np.ones(2, dtype=np.float16).tobytes()
    await infer(ch, request("half", [("x", "FP16", [2], h)]))
    await infer(ch, request("half", [("x", "FP16", [2], h)]))
    await infer(ch, request("rows", [("x", "FP32", [1, 1], b"\0\0\0\0")]))
    with contextlib.suppress(GRPCError):
        await infer(ch, request("half", [("x", "FP16", [3], h)]))
    with contextlib.suppress(GRPCError):  # the timeout parameter passes: DEADLINE_EXCEEDED
        timeout = {"timeout": {"int64_param": 1}}
        await infer(ch, request("rows", [("x", "FP32", [1, 1], b"\0\0\0\0")], parameters=timeout))
    ch.close()
    with proc.client() as client:
        client.predict("half", x=np.ones(2, dtype=np.float16))


def slow_app() -> BlazeApp:
    app = BlazeApp()

    @app.model("slow", batching=False)
    async def slow(x: TensorInput[np.float32, "n"]) -> TensorOutput[np.float32, "n"]:
        await asyncio.sleep(0.5)
        return x

    return app


async def test_not_ready_while_draining() -> None:
    server = BlazeServer(slow_app())
    info = await server.start("127.0.0.1", 0)
    ch = channel(info.address)
    assert (await call(ch, "ServerReady", M.ServerReadyRequest())).ready is True
    assert (await call(ch, "ModelReady", M.ModelReadyRequest(name="slow"))).ready is True
    running = asyncio.ensure_future(infer(ch, request("slow", [("x", "FP32", [1], b"\0\0\x80?")])))
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(server.stop(grace=5))
    await asyncio.sleep(0.05)
    assert (await call(ch, "ServerReady", M.ServerReadyRequest())).ready is False
    assert (await call(ch, "ModelReady", M.ModelReadyRequest(name="slow"))).ready is False
    assert (await call(ch, "ServerLive", M.ServerLiveRequest())).live is True
    with pytest.raises(GRPCError) as refused:
        await infer(ch, request("slow", [("x", "FP32", [1], b"\0\0\x80?")]))
    assert refused.value.status == Status.UNAVAILABLE
    assert refused.value.message == "the server is shutting down; retry on another instance"
    response = await running
    assert response.raw_output_contents[0] == b"\0\0\x80?"  # the call in flight finished
    await stopping
    ch.close()


async def test_an_idle_stream_ends_when_the_server_drains() -> None:
    server = BlazeServer(slow_app())
    info = await server.start("127.0.0.1", 0)
    ch = channel(info.address)
    path = "/inference.GRPCInferenceService/ModelStreamInfer"
    async with ch.request(
        path, Cardinality.STREAM_STREAM, M.ModelInferRequest, M.ModelStreamInferResponse
    ) as s:
        await s.send_message(request("slow", [("x", "FP32", [1], b"\0\0\x80?")], id="before"))
        first = await s.recv_message()
        assert first is not None
        assert first.infer_response.id == "before"
        stopping = asyncio.ensure_future(server.stop(grace=60))
        # The server ends the stream between requests, so the drain does not wait out its
        # 60 s grace (nor cancel the stream at its end).
        assert await s.recv_message() is None
        await asyncio.wait_for(stopping, 30)
    assert server.abandoned == 0
    ch.close()
