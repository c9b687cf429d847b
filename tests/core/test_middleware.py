"""Middleware around every call: rejection, context contents, order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from grpclib.client import UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import Client, app_target, load_app_module

from blazerpc import BlazeApp, CallContext, Middleware, hookimpl
from blazerpc.testing import serve_app, serve_process


@pytest.fixture(scope="module")
def auth() -> Iterator[Client]:
    with serve_process(app_target("auth_app")) as proc:
        yield Client(load_app_module("auth_app"), proc)


def _call_with_metadata(client: Client, metadata: dict[str, str] | None) -> list[float]:
    async def run() -> list[float]:
        m = client.method("sentiment")
        channel = client.channel()
        try:
            classes = client.schema.classes
            rpc = UnaryUnaryMethod(channel, m.path, classes[m.request], classes[m.response])
            reply = await rpc(client.request("sentiment", text=["a", "b"]), timeout=10, metadata=metadata)
            return list(reply.result)
        finally:
            channel.close()

    return asyncio.run(run())


def test_auth_example_rejects_a_call_without_token(auth: Client) -> None:
    with pytest.raises(GRPCError) as info:
        _call_with_metadata(auth, None)
    assert info.value.status is Status.UNAUTHENTICATED
    assert info.value.message == "Missing token"


def test_auth_example_lets_a_call_with_token_through(auth: Client) -> None:
    assert _call_with_metadata(auth, {"authorization": "Bearer abc"}) == pytest.approx([0.95, 0.95])


class Recorder(Middleware):
    def __init__(self, name: str, log: list[tuple[str, str, CallContext]]) -> None:
        self.name, self.log = name, log

    async def on_request(self, context: CallContext) -> None:
        context.state.setdefault("seen", []).append(self.name)
        self.log.append((self.name, "request", context))

    async def on_response(self, context: CallContext) -> None:
        self.log.append((self.name, "response", context))


def _app(middleware: list[Middleware], plugins: list[object] = ()) -> BlazeApp:
    app = BlazeApp(middleware=middleware, plugins=plugins)

    @app.model("double")
    def double(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return 2 * x

    @app.model("count", streaming=True)
    def count(n: int) -> Iterator[int]:
        yield from range(n)

    return app


def test_context_carries_call_details_and_outcome() -> None:
    log: list[tuple[str, str, CallContext]] = []
    app = _app([Recorder("a", log)])

    async def run() -> None:
        async with serve_app(app) as server:
            assert (await server.call("double", x=21)).result == 42
            with pytest.raises(GRPCError):
                await server.call("double", x=-1)
            assert [r.result for r in await server.stream("count", n=4)] == [0, 1, 2, 3]

    asyncio.run(run())
    responses = [ctx for name, when, ctx in log if when == "response"]
    ok, failed, streamed = responses
    assert ok.method == "/blazerpc.InferenceService/PredictDouble"
    assert (ok.model, ok.version) == ("double", "1")
    assert ok.status is Status.OK
    assert ok.messages_sent == 1
    assert ok.peer is not None
    assert ok.peer.startswith("127.0.0.1:")
    assert ok.deadline is not None
    assert 0 < ok.deadline <= 10
    assert ok.elapsed > 0
    assert failed.status is Status.INTERNAL
    assert "ValueError: negative" in (failed.message or "")
    assert streamed.status is Status.OK
    assert streamed.messages_sent == 4
    assert len({id(ctx) for ctx in responses}) == 3  # one context per call


def test_order_app_first_then_plugins_by_order_and_name_reverse_on_response() -> None:
    log: list[tuple[str, str, CallContext]] = []

    class Late(Recorder):
        order = 10

    class Early(Recorder):
        order = -10

    class Plugin:
        @hookimpl
        def blazerpc_middleware(self, app: BlazeApp) -> list[Middleware]:
            return [Late("late", log), Recorder("zero", log), Early("early", log)]

    app = _app([Recorder("app", log)], plugins=[Plugin()])

    async def run() -> None:
        async with serve_app(app) as server:
            await server.call("double", x=1)

    asyncio.run(run())
    assert [(name, when) for name, when, _ in log] == [
        ("app", "request"),
        ("early", "request"),
        ("zero", "request"),
        ("late", "request"),
        ("late", "response"),
        ("zero", "response"),
        ("early", "response"),
        ("app", "response"),
    ]


def test_rejecting_middleware_stops_later_ones_and_the_model() -> None:
    log: list[tuple[str, str, CallContext]] = []
    calls: list[int] = []

    class Reject(Middleware):
        async def on_request(self, context: CallContext) -> None:
            raise GRPCError(Status.PERMISSION_DENIED, "no")

    app = BlazeApp(middleware=[Recorder("first", log), Reject(), Recorder("never", log)])

    @app.model("double")
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    async def run() -> None:
        async with serve_app(app) as server:
            with pytest.raises(GRPCError) as info:
                await server.call("double", x=1)
            assert info.value.status is Status.PERMISSION_DENIED

    asyncio.run(run())
    assert calls == []
    assert [(name, when) for name, when, _ in log] == [("first", "request"), ("first", "response")]
    assert log[-1][2].status is Status.PERMISSION_DENIED


def test_middleware_must_be_middleware() -> None:
    from blazerpc import ConfigurationError

    with pytest.raises(ConfigurationError, match="Middleware instances"):
        BlazeApp(middleware=[object()])  # type: ignore[list-item]
