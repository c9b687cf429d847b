"""Start-up and shutdown hooks: the server info they get, their order, and failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from blazerpc import BlazeApp, hookimpl
from blazerpc.server import ServerInfo
from blazerpc.testing import serve_app

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


class Lifecycle:
    def __init__(self, label: str, calls: list[tuple[str, str, Any, ServerInfo]]) -> None:
        self.label = label
        self.calls = calls

    @hookimpl
    def blazerpc_startup(self, app: BlazeApp, server: ServerInfo) -> None:
        # The server already listens when start-up hooks run.
        with socket.create_connection((server.host, server.port), timeout=5):
            pass
        self.calls.append(("startup", self.label, app, server))

    @hookimpl
    def blazerpc_shutdown(self, app: BlazeApp, server: ServerInfo) -> None:
        self.calls.append(("shutdown", self.label, app, server))


def two_model_app(*plugins: object) -> BlazeApp:
    app = BlazeApp(plugins=plugins)

    @app.model("alpha")
    def alpha(x: int) -> int:
        return x

    @app.model("beta", version="2", streaming=True)
    def beta(x: int) -> Iterator[int]:
        yield x

    return app


async def test_startup_and_shutdown_get_the_server_info() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    app = two_model_app(Lifecycle("a", calls))

    async with serve_app(app, options={"threshold": 0.5}) as server:
        during = list(calls)
        assert (await server.call("alpha", x=7)).result == 7
        port, during = server.port, during
    assert [(c[0], c[1]) for c in during] == [("startup", "a")]
    assert [(c[0], c[1]) for c in calls] == [("startup", "a"), ("shutdown", "a")]
    (_, _, started_app, info), (_, _, stopped_app, stopped_info) = calls
    assert started_app is app
    assert stopped_app is app
    assert port != 0
    assert info.port == port
    assert info.host == "127.0.0.1"
    assert info.address == f"127.0.0.1:{port}"
    assert [(m.model, m.version, m.rpc, m.streaming) for m in info.methods] == [
        ("alpha", "1", "PredictAlpha", False),
        ("beta", "2", "PredictBetaV2", True),
    ]
    assert dict(info.options) == {"threshold": 0.5}
    assert info.tls is False
    assert stopped_info == info


async def test_startup_hooks_run_latest_registered_first_and_shutdown_in_reverse() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    app = two_model_app(Lifecycle("first", calls), Lifecycle("second", calls))

    async with serve_app(app):
        pass
    # pluggy's order, as the hook specs document: the most recently registered first.
    assert [c[1] for c in calls if c[0] == "startup"] == ["second", "first"]
    assert [c[1] for c in calls if c[0] == "shutdown"] == ["first", "second"]


class FailingShutdown:
    @hookimpl
    def blazerpc_shutdown(self, app: BlazeApp, server: ServerInfo) -> None:
        raise RuntimeError("cannot release the GPU")


async def test_every_shutdown_hook_runs_even_if_one_raises() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    # The failing plugin sits between two others: one of them runs after it, whatever the order.
    app = two_model_app(Lifecycle("before", calls), FailingShutdown(), Lifecycle("after", calls))

    async with serve_app(app):
        pass
    assert sorted(c[1] for c in calls if c[0] == "shutdown") == ["after", "before"]


class FailingStartup:
    def __init__(self) -> None:
        self.port: int | None = None

    @hookimpl
    def blazerpc_startup(self, app: BlazeApp, server: ServerInfo) -> None:
        self.port = server.port
        raise RuntimeError("no GPU available")


async def test_a_failing_startup_hook_aborts_startup() -> None:
    failing = FailingStartup()
    app = two_model_app(failing)
    entered = []

    async def run() -> None:
        async with serve_app(app):
            entered.append(True)

    with pytest.raises(RuntimeError, match="no GPU available"):
        await run()
    assert entered == []
    assert failing.port
    # The listener was closed: the port can be bound (and listened on) again.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", failing.port))
        sock.listen()


async def test_a_failing_startup_hook_shuts_down_only_the_plugins_that_started() -> None:
    calls: list[tuple[str, str, Any, ServerInfo]] = []
    # Start-up runs the latest registered first: "started" runs, FailingStartup raises,
    # and "never" is not reached. Only "started" has something to release.
    app = two_model_app(Lifecycle("never", calls), FailingStartup(), Lifecycle("started", calls))

    with pytest.raises(RuntimeError, match="no GPU available"):
        async with serve_app(app):
            pass
    assert [(c[0], c[1]) for c in calls] == [("startup", "started"), ("shutdown", "started")]
