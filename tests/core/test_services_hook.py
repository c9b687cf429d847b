"""``blazerpc_services``: a small test plugin adds a protocol of its own (JSON over one
gRPC method) on the app's pipelines: middleware, the shared batcher, limits, drain,
health and reflection cover it as they cover ``blazerpc.InferenceService``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.server import Stream

from blazerpc import BlazeApp, CallContext, ConfigurationError, InvalidInputError, Middleware, hookimpl
from blazerpc.server import BlazeServer, Pipeline, RawMessage, ServiceHost
from blazerpc.testing import serve_app

PATH = "/jsontest.Json/Call"


class JsonCodec:
    """This protocol's decode and encode: ``{"args": [...]}`` in, ``{"result": [...]}`` out."""

    def decode(self, data: bytes) -> list[Any]:
        try:
            return [np.asarray(a, dtype=np.float32) for a in json.loads(data)["args"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"not a JSON call: {exc}") from None

    def encode(self, result: Any) -> bytes:
        return json.dumps({"result": np.asarray(result).tolist()}).encode()

    def encode_fields(self, values: list[Any]) -> bytes:
        return self.encode(values[0])


class JsonService:
    """One method for every model: the request names the model."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        codec = JsonCodec()
        self.pipelines: dict[str, Pipeline] = {m.model.name: m.pipeline(PATH, codec) for m in host.models}

    def __mapping__(self) -> dict[str, Handler]:
        return {
            PATH: Handler(self.call, Cardinality.UNARY_UNARY, RawMessage, RawMessage),
            "/jsontest.Json/Ready": Handler(self.ready, Cardinality.UNARY_UNARY, RawMessage, RawMessage),
        }

    async def call(self, stream: Stream[Any, Any]) -> None:
        data = await self.host.read_request(stream)
        model = stream.metadata.get("model", "") if stream.metadata else ""
        pipeline = self.pipelines.get(str(model))
        if pipeline is None:
            raise GRPCError(Status.NOT_FOUND, f"no model {model!r}")
        await pipeline.handle(stream, data)

    async def ready(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(b"yes" if self.host.ready else b"no")


class JsonPlugin:
    def __init__(self, path: str = PATH) -> None:
        self.path = path

    @hookimpl
    def blazerpc_services(self, host: ServiceHost) -> Sequence[Any]:
        if not host.options.get("json", True):
            return []
        return [JsonService(host)]


class Recorder(Middleware):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    async def on_response(self, context: CallContext) -> None:
        self.seen.append((context.method, context.model, context.status))


class Bytes(ProtoCodec):
    def encode(self, message: Any, message_type: Any) -> bytes:
        return message if isinstance(message, bytes) else super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data if message_type is bytes else super().decode(data, message_type)


CALLS: list[int] = []


def make_app(recorder: Recorder, **kwargs: Any) -> BlazeApp:
    app = BlazeApp(plugins=[JsonPlugin()], middleware=[recorder], batch_timeout_ms=50, **kwargs)

    @app.model("double")
    async def double(x: list[float]) -> list[float]:
        CALLS.append(len(x))
        await asyncio.sleep(0.01)
        return [2 * v for v in x]

    @app.model("slow", batching=False)
    async def slow(x: list[float]) -> list[float]:
        await asyncio.sleep(0.5)
        return x

    return app


async def json_call(channel: Channel, model: str, args: list[Any], timeout: float = 10) -> Any:
    rpc = UnaryUnaryMethod(channel, PATH, bytes, bytes)
    reply = await rpc(json.dumps({"args": args}).encode(), timeout=timeout, metadata={"model": model})
    return json.loads(reply)


async def test_a_plugin_protocol_runs_on_the_apps_pipeline() -> None:
    recorder = Recorder()
    CALLS.clear()
    async with serve_app(make_app(recorder)) as server:
        channel = Channel("127.0.0.1", server.port, codec=Bytes())
        mine = [json_call(channel, "double", [[float(i)]]) for i in range(8)]
        native = [server.call("double", x=[100.0 + i]) for i in range(8)]
        answers = await asyncio.gather(*mine, *native)
        bad = json_call(channel, "double", ["oops"])
        with pytest.raises(GRPCError) as caught:
            await bad
        reply = await HealthStub(Channel("127.0.0.1", server.port)).Check(
            HealthCheckRequest(service="jsontest.Json"), timeout=5
        )
        channel.close()
    assert [a["result"] for a in answers[:8]] == [[2.0 * i] for i in range(8)]
    assert [list(a.result) for a in answers[8:]] == [[2 * (100.0 + i)] for i in range(8)]
    assert sum(CALLS) == 16
    assert len(CALLS) < 16  # the two protocols' calls joined the same batches
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert caught.value.message == "not a JSON call: could not convert string to float: 'oops'"
    assert (PATH, "double", Status.OK) in recorder.seen  # middleware saw the plugin's calls
    assert (PATH, "double", Status.INVALID_ARGUMENT) in recorder.seen
    assert reply.status == HealthCheckResponse.SERVING


async def test_limits_and_drain_cover_the_plugin_protocol() -> None:
    recorder = Recorder()
    server = BlazeServer(make_app(recorder, max_message_size=100))
    info = await server.start("127.0.0.1", 0)
    channel = Channel("127.0.0.1", info.port, codec=Bytes())
    with pytest.raises(GRPCError) as big:
        await json_call(channel, "slow", [[0.0] * 50])
    assert big.value.status == Status.RESOURCE_EXHAUSTED
    ready = UnaryUnaryMethod(channel, "/jsontest.Json/Ready", bytes, bytes)
    assert await ready(b"") == b"yes"
    running = asyncio.ensure_future(json_call(channel, "slow", [[1.0]]))
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(server.stop(grace=5))
    await asyncio.sleep(0.05)
    assert await ready(b"") == b"no"  # draining: not ready
    with pytest.raises(GRPCError) as refused:
        await json_call(channel, "slow", [[1.0]])
    assert refused.value.status == Status.UNAVAILABLE
    assert (await running)["result"] == [1.0]  # the call in flight finished
    await stopping
    channel.close()


async def test_two_plugins_serving_one_path_fail_start_up() -> None:
    app = make_app(Recorder())
    app.register_plugin(JsonPlugin())
    with pytest.raises(ConfigurationError, match=r"serves /jsontest\.Json/"):
        BlazeServer(app)


async def test_the_plugin_service_is_off_with_its_option() -> None:
    async with serve_app(make_app(Recorder()), options={"json": False}) as server:
        channel = Channel("127.0.0.1", server.port, codec=Bytes())
        with pytest.raises(GRPCError) as caught:
            await json_call(channel, "double", [[1.0]])
        channel.close()
    assert caught.value.status == Status.UNIMPLEMENTED
