"""The built-in middleware: the access log (LoggingMiddleware) seen in a real
`blaze serve --log-format json`, ExceptionMiddleware mappings, outer ordering, the
batch-of-one events of unbatched models, and the lazy MetricsMiddleware import."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import APPS, app_target, load_app_module

from blazerpc import (
    BlazeApp,
    CallContext,
    ExceptionMiddleware,
    InvalidInputError,
    LoggingMiddleware,
    Middleware,
    hookimpl,
)
from blazerpc.batching import BatchEvent, BatchListener
from blazerpc.testing import blaze_command, serve_app

# --- the access log, from a real `blaze serve` -------------------------------------------


@contextlib.contextmanager
def _blaze_serve(target: str, *args: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """`blaze serve` with JSON logs; yields (port, log entries). The entries are
    complete once the block exits: stderr is read to its end after SIGTERM."""
    command = [*blaze_command(), "serve", target, "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen([*command, "--log-format", "json", *args], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    entries: list[dict[str, Any]] = []
    port = None
    try:
        for line in process.stderr:  # blocks until the server says where it listens
            entries.append(json.loads(line))
            if str(entries[-1].get("event", "")).startswith("Server listening"):
                port = int(entries[-1]["port"])
                break
        assert port is not None, f"blaze serve did not start: {entries}"
        yield port, entries
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
        entries.extend(json.loads(line) for line in rest.splitlines() if line.startswith("{"))


async def _calls(port: int) -> None:
    schema = load_app_module(APPS / "access_log_app.py").app.schema()
    methods = {m.model: m for m in schema.methods}

    def rpc(channel: Channel, model: str) -> UnaryUnaryMethod[Any, Any]:
        m = methods[model]
        return UnaryUnaryMethod(channel, m.path, schema.classes[m.request], schema.classes[m.response])

    async def run() -> None:
        channel = Channel("127.0.0.1", port)
        try:
            echo_request = schema.classes[methods["echo"].request](text=["a", "b"])
            assert list((await rpc(channel, "echo")(echo_request, timeout=10)).result) == ["a", "b"]
            with pytest.raises(GRPCError) as failed:
                await rpc(channel, "fail")(schema.classes[methods["fail"].request](message="boom"))
            assert failed.value.status is Status.INTERNAL
            with pytest.raises(GRPCError) as rejected:
                await rpc(channel, "echo")(echo_request, metadata={"reject": "1"})
            assert rejected.value.status is Status.PERMISSION_DENIED
            m = methods["count"]
            from grpclib.client import UnaryStreamMethod

            stream = UnaryStreamMethod(channel, m.path, schema.classes[m.request], schema.classes[m.response])
            assert [r.result for r in await stream(schema.classes[m.request](n=3))] == [0, 1, 2]
        finally:
            channel.close()

    await run()


async def test_access_log_has_one_line_per_call_with_its_outcome() -> None:
    with _blaze_serve(app_target("access_log_app")) as (port, logs):
        await _calls(port)
    lines = [e for e in logs if e.get("event") == "call"]
    assert [(e["model"], e["status"]) for e in lines] == [
        ("echo", "OK"),
        ("fail", "INTERNAL"),
        ("echo", "PERMISSION_DENIED"),  # rejected by the app's middleware: still logged
        ("count", "OK"),
    ]
    ok, failed, rejected, streamed = lines
    assert ok["method"] == "/blazerpc.InferenceService/PredictEcho"
    assert ok["version"] == "1"
    assert ok["peer"].startswith("127.0.0.1:")
    assert ok["level"] == "info"
    assert 0 < ok["duration_ms"] < 10_000
    assert "messages_sent" not in ok
    assert "message" not in ok
    assert failed["message"] == "model 'fail' raised ValueError: boom"
    assert rejected["message"] == "rejected by the app"
    assert streamed["messages_sent"] == 3


async def test_no_access_log_turns_it_off() -> None:
    with _blaze_serve(app_target("access_log_app"), "--no-access-log") as (port, logs):
        await _calls(port)
    assert not [e for e in logs if e.get("event") == "call"]
    assert any(e.get("event") == "Server stopped" for e in logs)  # the log was read to its end


async def test_access_log_is_core_builtin_and_off_through_options(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[CallContext] = []

    class Spy(Middleware):
        async def on_response(self, context: CallContext) -> None:
            seen.append(context)

    app = BlazeApp(middleware=[Spy()])

    @app.model("double")
    def double(x: int) -> int:
        return 2 * x

    async def run(options: dict[str, Any]) -> None:
        async with serve_app(app, options=options) as server:
            assert (await server.call("double", x=2)).result == 4

    method = "method=/blazerpc.InferenceService/PredictDouble"
    capsys.readouterr()
    await run({"access_log": False})
    assert method not in capsys.readouterr().out  # off: no line (and not in the chain)
    await run({})  # the default: on
    lines = [line for line in capsys.readouterr().out.splitlines() if method in line]
    assert len(lines) == 1
    assert "] call " in lines[0]
    assert "status=OK" in lines[0]
    assert len(seen) == 2


class _ListLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


async def test_logging_middleware_given_to_an_app_logs_through_its_logger() -> None:
    logger = _ListLogger()
    app = BlazeApp(middleware=[LoggingMiddleware(logger, event="rpc")])

    @app.model("count", streaming=True)
    def count(n: int) -> Iterator[int]:
        yield from range(n)

    async with serve_app(app, options={"access_log": False}) as server:
        assert len(await server.stream("count", n=5)) == 5
    [(event, fields)] = logger.lines
    assert event == "rpc"
    assert fields["messages_sent"] == 5
    assert fields["status"] == "OK"


# --- order: outer middleware wrap the app's -----------------------------------------------


async def test_outer_middleware_run_first_and_see_calls_the_app_rejects() -> None:
    log: list[tuple[str, str, Status | None]] = []

    class Named(Middleware):
        name = ""

        async def on_request(self, context: CallContext) -> None:
            log.append((self.name, "request", None))

        async def on_response(self, context: CallContext) -> None:
            log.append((self.name, "response", context.status))

    class Reject(Named):
        name = "app-reject"

        async def on_request(self, context: CallContext) -> None:
            await super().on_request(context)
            raise GRPCError(Status.UNAUTHENTICATED, "no")

    class OuterB(Named):
        name, outer = "outer-b", True

    class OuterA(Named):
        name, outer, order = "outer-a", True, 5

    class Inner(Named):
        name = "plugin"

    class Plugin:
        @hookimpl
        def blazerpc_middleware(self, app: BlazeApp) -> list[Middleware]:
            return [OuterA(), Inner(), OuterB()]

    app = BlazeApp(middleware=[Reject()], plugins=[Plugin()])

    @app.model("double")
    def double(x: int) -> int:
        return 2 * x

    async with serve_app(app, options={"access_log": False}) as server:
        with pytest.raises(GRPCError) as info:
            await server.call("double", x=1)
        assert info.value.status is Status.UNAUTHENTICATED
    unauth = Status.UNAUTHENTICATED
    assert log == [
        ("outer-b", "request", None),  # order 0 before order 5
        ("outer-a", "request", None),
        ("app-reject", "request", None),
        ("app-reject", "response", unauth),
        ("outer-a", "response", unauth),
        ("outer-b", "response", unauth),
    ]


# --- ExceptionMiddleware --------------------------------------------------------------------


class ItemNotFound(LookupError):
    pass


class ShopErrors(ExceptionMiddleware):
    exception_map: ClassVar[Mapping[type[BaseException], Status]] = {
        ItemNotFound: Status.NOT_FOUND,
        LookupError: Status.FAILED_PRECONDITION,
    }


def _shop(middleware: Sequence[Middleware], plugins: Sequence[object] = ()) -> BlazeApp:
    app = BlazeApp(middleware=middleware, plugins=plugins)

    @app.model("item")
    def item(name: str, kind: str = "") -> str:
        if kind == "missing":
            raise ItemNotFound(f"no item {name!r}")
        if kind == "lookup":
            raise KeyError(name)
        if kind == "value":
            raise ValueError(name)
        if kind == "grpc":
            raise GRPCError(Status.ABORTED, "explicit")
        if kind == "invalid":
            raise InvalidInputError(f"bad name {name!r}")
        return name.upper()

    @app.model("items", streaming=True)
    def items(n: int) -> Iterator[int]:
        yield from range(n)
        raise ItemNotFound(f"nothing after {n}")

    @app.model("batched")
    def batched(names: list[str]) -> list[str]:
        raise ItemNotFound(",".join(names))

    return app


async def _statuses(app: BlazeApp, calls: list[dict[str, Any]]) -> list[tuple[Status, str | None]]:
    out: list[tuple[Status, str | None]] = []

    async with serve_app(app, options={"access_log": False}) as server:
        for fields in calls:
            model = fields.pop("model", "item")
            try:
                if model == "items":
                    await server.stream(model, **fields)
                else:
                    await server.call(model, **fields)
            except GRPCError as exc:
                out.append((exc.status, exc.message))
            else:
                out.append((Status.OK, None))
    return out


async def test_a_user_mapping_turns_a_custom_exception_into_not_found() -> None:
    app = _shop([ShopErrors()])
    assert await _statuses(
        app,
        [
            {"name": "x", "kind": "missing"},
            {"name": "y", "kind": "lookup"},  # KeyError: its base LookupError's entry
            {"model": "items", "n": 2},  # streaming model, after two messages
            {"model": "batched", "names": ["a", "b"]},  # batched model
            {"name": "ok"},
        ],
    ) == [
        (Status.NOT_FOUND, "no item 'x'"),
        (Status.FAILED_PRECONDITION, "'y'"),
        (Status.NOT_FOUND, "nothing after 2"),
        (Status.NOT_FOUND, "a,b"),
        (Status.OK, None),
    ]


async def test_what_no_mapping_covers_gets_cores_mapping() -> None:
    app = _shop([ShopErrors()])
    assert await _statuses(
        app,
        [
            {"name": "v", "kind": "value"},
            {"name": "g", "kind": "grpc"},
            {"name": "i", "kind": "invalid"},
        ],
    ) == [
        (Status.INTERNAL, "model 'item' raised ValueError: v"),
        (Status.ABORTED, "explicit"),
        (Status.INVALID_ARGUMENT, "bad name 'i'"),
    ]


async def test_without_exception_middleware_core_maps_as_before() -> None:
    app = _shop([])
    assert await _statuses(app, [{"name": "x", "kind": "missing"}]) == [
        (Status.INTERNAL, "model 'item' raised ItemNotFound: no item 'x'")
    ]


async def test_innermost_mapping_wins_then_outer_then_plugins_and_broken_ones_are_skipped() -> None:
    class Broken(ExceptionMiddleware):
        def map_exception(self, exc: Exception, context: CallContext) -> GRPCError | None:
            raise RuntimeError("bug in a mapper")

    class ValueToOutOfRange(ExceptionMiddleware):
        exception_map: ClassVar[Mapping[type[BaseException], Status]] = {ValueError: Status.OUT_OF_RANGE}

        def message_for(self, exc: BaseException, context: CallContext) -> str:
            return f"{context.model}: {exc} is out of range"

    class LookupToUnavailable(ExceptionMiddleware):
        exception_map: ClassVar[Mapping[type[BaseException], Status]] = {LookupError: Status.UNAVAILABLE}

    class Plugin:
        @hookimpl
        def blazerpc_middleware(self, app: BlazeApp) -> list[Middleware]:
            return [Broken(), LookupToUnavailable()]  # after the app's: innermost

    app = _shop([ShopErrors(), ValueToOutOfRange()], plugins=[Plugin()])
    assert await _statuses(app, [{"name": "x", "kind": "missing"}, {"name": "7", "kind": "value"}]) == [
        (Status.UNAVAILABLE, "no item 'x'"),
        (Status.OUT_OF_RANGE, "item: 7 is out of range"),
    ]


# --- unbatched models report each call as a batch of one --------------------------------


class _Listener(BatchListener):
    def __init__(self) -> None:
        self.events: list[BatchEvent] = []
        self.depths: list[int] = []

    def on_batch(self, event: BatchEvent) -> None:
        self.events.append(event)

    def on_queue_depth(self, model: str, version: str, rows: int) -> None:
        self.depths.append(rows)


async def test_unbatched_calls_reach_batch_listeners_as_batches_of_one() -> None:
    listener = _Listener()

    class Plugin:
        @hookimpl
        def blazerpc_batch_listeners(self, app: BlazeApp) -> list[BatchListener]:
            return [listener]

    app = BlazeApp(plugins=[Plugin()], max_concurrency=1)
    release = asyncio.Event()

    @app.model("slow")
    async def slow(x: int) -> int:
        if x == 0:
            await release.wait()
        if x < 0:
            raise ValueError("negative")
        return x

    async with serve_app(app, options={"access_log": False}) as server:
        first = asyncio.ensure_future(server.call("slow", x=0))
        while not listener.depths or max(listener.depths) < 1:  # the first call started
            await asyncio.sleep(0)
        others = [asyncio.ensure_future(server.call("slow", x=i)) for i in (1, 2, -3)]
        while max(listener.depths) < 3:  # three calls wait behind the first
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)  # so they wait measurably longer than the first did
        release.set()
        results = await asyncio.gather(first, *others, return_exceptions=True)
        assert [getattr(r, "result", None) for r in results[:3]] == [0, 1, 2]
        assert isinstance(results[3], GRPCError)
    assert len(listener.events) == 4
    assert {(e.model, e.rows, e.requests) for e in listener.events} == {("slow", 1, 1)}
    assert [e.failed for e in listener.events] == [False, False, False, True]
    assert listener.depths[-1] == 0
    assert max(listener.depths) == 3
    assert all(len(e.queue_waits) == 1 and e.queue_waits[0] >= 0 for e in listener.events)
    # The first call's model ran until release; the others waited for it, so for longer.
    assert min(e.queue_waits[0] for e in listener.events[1:]) > listener.events[0].queue_waits[0]


# --- MetricsMiddleware lives in the metrics plugin ---------------------------------------


def test_metrics_middleware_import_names_the_plugin_to_install() -> None:
    if importlib.util.find_spec("blazerpc_metrics") is not None:
        pytest.skip("blazerpc-metrics is installed here")
    with pytest.raises(
        ImportError, match=r"not installed: pip install \./plugins/blazerpc-metrics \(from the root"
    ):
        from blazerpc.server.middleware import MetricsMiddleware  # noqa: F401
    import blazerpc.server.middleware as middleware

    assert {"Middleware", "LoggingMiddleware", "ExceptionMiddleware"} <= set(middleware.__all__)
    with pytest.raises(AttributeError):
        middleware.NoSuchThing  # noqa: B018
