"""Middleware around every call: rejection, context contents, order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from grpclib.client import UnaryStreamMethod, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import APPS, AppCaller, app_target, load_app_module

from blazerpc import BlazeApp, CallContext, Middleware, hookimpl
from blazerpc.testing import RunningServer, serve_app, serve_process


@pytest.fixture(scope="module")
def auth() -> Iterator[AppCaller]:
    with serve_process(app_target("auth_app")) as proc:
        yield AppCaller(load_app_module(APPS / "auth_app.py"), proc)


async def _call_with_metadata(client: AppCaller, metadata: dict[str, str] | None) -> list[float]:
    m = client.method("sentiment")
    channel = client.channel()
    try:
        classes = client.schema.classes
        rpc = UnaryUnaryMethod(channel, m.path, classes[m.request], classes[m.response])
        reply = await rpc(client.request("sentiment", text=["a", "b"]), timeout=10, metadata=metadata)
        got = list(reply.result)
    finally:
        channel.close()
    return got


async def test_auth_example_rejects_a_call_without_token(auth: AppCaller) -> None:
    with pytest.raises(GRPCError) as info:
        await _call_with_metadata(auth, None)
    assert info.value.status is Status.UNAUTHENTICATED
    assert info.value.message == "Missing token"


async def test_auth_example_lets_a_call_with_token_through(auth: AppCaller) -> None:
    assert await _call_with_metadata(auth, {"authorization": "Bearer abc"}) == pytest.approx([0.95, 0.95])


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


async def test_context_carries_call_details_and_outcome() -> None:
    log: list[tuple[str, str, CallContext]] = []
    app = _app([Recorder("a", log)])

    async with serve_app(app) as server:
        assert (await server.call("double", x=21)).result == 42
        with pytest.raises(GRPCError):
            await server.call("double", x=-1)
        assert [r.result for r in await server.stream("count", n=4)] == [0, 1, 2, 3]
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


async def test_order_app_first_then_plugins_by_order_and_name_reverse_on_response() -> None:
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

    async with serve_app(app) as server:
        await server.call("double", x=1)
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


async def test_rejecting_middleware_stops_later_ones_and_the_model() -> None:
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

    async with serve_app(app) as server:
        with pytest.raises(GRPCError) as info:
            await server.call("double", x=1)
        assert info.value.status is Status.PERMISSION_DENIED
    assert calls == []
    assert [(name, when) for name, when, _ in log] == [("first", "request"), ("first", "response")]
    assert log[-1][2].status is Status.PERMISSION_DENIED


def test_middleware_must_be_middleware() -> None:
    from blazerpc import ConfigurationError

    with pytest.raises(ConfigurationError, match="Middleware instances"):
        BlazeApp(middleware=[object()])  # type: ignore[list-item]


# --- response metadata ----------------------------------------------------------------


class Tagging(Middleware):
    """Initial metadata from on_request; trailing metadata from both, with the status."""

    def __init__(self, outer: bool = False) -> None:
        self.late: list[Exception] = []
        self.outer = outer  # type: ignore[misc]

    async def on_request(self, context: CallContext) -> None:
        context.add_initial_metadata("x-request-id", f"id-{context.model}")
        context.add_trailing_metadata("x-seen-bin", b"\x00\xffraw")

    async def on_response(self, context: CallContext) -> None:
        assert context.status is not None
        context.add_trailing_metadata("x-status", context.status.name)
        context.add_trailing_metadata("x-sent", str(context.messages_sent))
        try:
            context.add_initial_metadata("x-too-late", "1")
        except RuntimeError as exc:
            self.late.append(exc)


class RejectOdd(Middleware):
    async def on_request(self, context: CallContext) -> None:
        if "odd" in dict(context.metadata):
            raise GRPCError(Status.PERMISSION_DENIED, "odd calls are refused")


def _metadata_app(middleware: list[Middleware], held: list[int] | None = None, **settings: Any) -> BlazeApp:
    """``double(99)`` holds its call for 30 s, noted in ``held`` when it starts."""
    app = BlazeApp(middleware=middleware, **settings)

    @app.model("double")
    async def double(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        if x == 99:
            if held is not None:
                held.append(x)
            await asyncio.sleep(30)  # holds the server's one call slot
        return 2 * x

    @app.model("count", streaming=True)
    def count(n: int) -> Iterator[int]:
        yield from range(min(n, 2))
        if n > 2:
            raise ValueError("at most 2")

    return app


async def _call_reading_metadata(
    server: RunningServer, model: str, metadata: dict[str, str] | None = None, **fields: Any
) -> tuple[dict[str, Any], dict[str, Any], Status, list[Any]]:
    """(initial metadata, trailing metadata, status, replies) as a grpclib client sees them."""
    method = server.method(model)
    kind = UnaryStreamMethod if method.streaming else UnaryUnaryMethod
    classes = server.schema.classes
    rpc = kind(server.channel, method.path, classes[method.request], classes[method.response])
    replies: list[Any] = []
    status = Status.OK
    async with rpc.open(timeout=10, metadata=metadata) as stream:
        await stream.send_message(server.request(model, **fields), end=True)
        try:
            await stream.recv_initial_metadata()
            async for reply in stream:
                replies.append(reply)
            await stream.recv_trailing_metadata()
        except GRPCError as exc:
            status = exc.status
        return dict(stream.initial_metadata or {}), dict(stream.trailing_metadata or {}), status, replies


async def test_middleware_adds_initial_and_trailing_metadata_for_ok_and_errors_unary_and_streaming() -> None:
    tagging = Tagging()
    app = _metadata_app([tagging, RejectOdd()])

    async with serve_app(app, options={"access_log": False}) as server:
        ok, failed, rejected, streamed, stream_failed = [
            await _call_reading_metadata(server, "double", x=21),
            await _call_reading_metadata(server, "double", x=-1),
            await _call_reading_metadata(server, "double", {"odd": "1"}, x=1),
            await _call_reading_metadata(server, "count", n=2),
            await _call_reading_metadata(server, "count", n=5),
        ]
    assert ok[2] is Status.OK
    assert [r.result for r in ok[3]] == [42]
    assert ok[0] == {"x-request-id": "id-double"}
    assert ok[1] == {"x-seen-bin": b"\x00\xffraw", "x-status": "OK", "x-sent": "1"}
    assert failed[2] is Status.INTERNAL
    assert failed[0] == {"x-request-id": "id-double"}
    assert failed[1] == {"x-seen-bin": b"\x00\xffraw", "x-status": "INTERNAL", "x-sent": "0"}
    # Rejected by a later middleware's on_request: the earlier one's metadata still goes out.
    assert rejected[2] is Status.PERMISSION_DENIED
    assert rejected[0] == {"x-request-id": "id-double"}
    assert rejected[1]["x-status"] == "PERMISSION_DENIED"
    assert streamed[2] is Status.OK
    assert [r.result for r in streamed[3]] == [0, 1]
    assert streamed[0] == {"x-request-id": "id-count"}
    assert streamed[1] == {"x-seen-bin": b"\x00\xffraw", "x-status": "OK", "x-sent": "2"}
    assert stream_failed[2] is Status.INTERNAL
    assert [r.result for r in stream_failed[3]] == [0, 1]
    assert stream_failed[0] == {"x-request-id": "id-count"}
    assert stream_failed[1] == {"x-seen-bin": b"\x00\xffraw", "x-status": "INTERNAL", "x-sent": "2"}
    # Initial metadata after the headers went out is refused, saying what to do instead.
    assert len(tagging.late) == 5
    assert "add it in on_request, or use add_trailing_metadata" in str(tagging.late[0])


async def test_an_outer_middleware_adds_metadata_to_a_call_the_server_refuses() -> None:
    held: list[int] = []
    app = _metadata_app([Tagging(outer=True)], held, max_concurrent_calls=1)

    async with serve_app(app, options={"access_log": False}) as server:
        holding = asyncio.ensure_future(server.call("double", x=99))
        async with asyncio.timeout(10):  # the server runs in this loop: the model notes its call
            while not held:
                await asyncio.sleep(0.005)
        try:
            initial, trailing, status, replies = await _call_reading_metadata(server, "double", x=1)
        finally:
            holding.cancel()
    assert status is Status.RESOURCE_EXHAUSTED
    assert replies == []
    assert initial == {"x-request-id": "id-double"}
    assert trailing == {"x-seen-bin": b"\x00\xffraw", "x-status": "RESOURCE_EXHAUSTED", "x-sent": "0"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("X-Upper", "v", "a key is lowercase ASCII"),
        ("grpc-status", "0", "not 'grpc-...'"),
        ("x-bin", "text", "bytes when the key ends in '-bin'"),
        ("x-text", b"raw", "printable ASCII text"),
        ("x-text", "line\nbreak", "printable ASCII text"),
    ],
)
async def test_invalid_response_metadata_is_refused_where_it_is_added(
    key: str, value: Any, message: str
) -> None:
    errors: list[Exception] = []

    class Bad(Middleware):
        async def on_request(self, context: CallContext) -> None:
            try:
                context.add_trailing_metadata(key, value)
            except ValueError as exc:
                errors.append(exc)

    app = _metadata_app([Bad()])

    async with serve_app(app, options={"access_log": False}) as server:
        assert (await server.call("double", x=1)).result == 2  # the call goes on
    [error] = errors
    assert f"invalid response metadata {key!r}" in str(error)
    assert message in str(error)
