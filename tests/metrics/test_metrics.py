"""blazerpc-metrics on a real server: `blaze serve` with the plugin installed (no code
change), scraped over HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from metrics_support import Caller, Samples, app_target, load_app, metrics_port, scrape

from blazerpc import BlazeApp, CallContext, Middleware
from blazerpc.testing import ServeProcess, blaze_command, serve_app, serve_process

CLIENTS = 8


def _workload() -> list[tuple[str, dict[str, Any], bool]]:
    """(model, request fields, with token) for every call; see EXPECTED."""
    calls: list[tuple[str, dict[str, Any], bool]] = []
    calls += [("score", {"x": [float(i)] * (1 + i % 4)}, True) for i in range(60)]  # OK
    calls += [("score", {"x": [1.0, -1.0]}, True) for _ in range(9)]  # INTERNAL
    calls += [("score", {"x": [1.0]}, False) for _ in range(5)]  # UNAUTHENTICATED
    calls += [("lookup", {"key": i}, True) for i in range(30)]  # OK
    calls += [("lookup", {"key": -1 - i}, True) for i in range(7)]  # INTERNAL
    calls += [("tokens", {"n": 2}, True) for _ in range(10)]  # OK, 2 messages each
    calls += [("tokens", {"n": 3}, True) for _ in range(4)]  # INTERNAL after 3 messages
    return calls


def _rows_into_score() -> int:
    return sum(len(fields["x"]) for model, fields, token in _workload() if model == "score" and token)


async def _run_workload(host: str, port: int) -> dict[tuple[str, Status], int]:
    """Every call of the workload, spread over CLIENTS channels, all at once."""
    module = load_app("shop")
    callers = [Caller(module, host, port) for _ in range(CLIENTS)]
    outcomes: dict[tuple[str, Status], int] = {}

    async def one(i: int, model: str, fields: dict[str, Any], token: bool) -> None:
        caller = callers[i % CLIENTS]
        metadata = None if not token else {"authorization": "Bearer t"}
        try:
            if model == "tokens":
                await caller.stream(model, metadata=metadata, **fields)
            else:
                await caller.call(model, metadata=metadata, **fields)
            status = Status.OK
        except GRPCError as exc:
            status = exc.status
        outcomes[(model, status)] = outcomes.get((model, status), 0) + 1

    try:
        await asyncio.gather(*(one(i, *call) for i, call in enumerate(_workload())))
    finally:
        for caller in callers:
            caller.close()
    return outcomes


EXPECTED_OUTCOMES = {
    ("score", Status.OK): 60,
    ("score", Status.INTERNAL): 9,
    ("score", Status.UNAUTHENTICATED): 5,
    ("lookup", Status.OK): 30,
    ("lookup", Status.INTERNAL): 7,
    ("tokens", Status.OK): 10,
    ("tokens", Status.INTERNAL): 4,
}
METHODS = {"score": "PredictScore", "lookup": "PredictLookup", "tokens": "PredictTokens"}


def score_calls(log: Path) -> list[int]:
    """The row count of every call of the shop's ``score`` model (``SHOP_SCORE_CALLS``)."""
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def check_workload_metrics(samples: Samples, calls_log: Path, times: int = 1) -> None:
    """The scrape after ``times`` runs of the workload (each against some server);
    ``calls_log`` is the servers' ``SHOP_SCORE_CALLS`` file."""
    for (model, status), n in EXPECTED_OUTCOMES.items():
        method = METHODS[model]
        got = samples.value("blazerpc_requests_total", model=model, method=method, code=status.name)
        assert got == n * times, (model, status, got)
    for model, method in METHODS.items():
        calls = sum(n for (m, _), n in EXPECTED_OUTCOMES.items() if m == model) * times
        # One observation per call; the +Inf bucket holds them all.
        assert samples.value("blazerpc_request_duration_seconds_count", model=model, method=method) == calls
        inf = samples.value("blazerpc_request_duration_seconds_bucket", model=model, method=method, le="+Inf")
        assert inf == calls
        assert samples.value("blazerpc_request_duration_seconds_sum", model=model, method=method) > 0
        assert samples.value("blazerpc_requests_in_flight", model=model) == 0
        assert samples.value("blazerpc_queue_depth", model=model) == 0
    # Batched: one observation per model call, as the model saw it. Every row sent by an
    # authenticated call went through one batch; rows of a batch that failed were also
    # re-run alone, each re-run a model call of its own.
    calls = score_calls(calls_log)
    assert sum(calls) >= _rows_into_score() * times
    assert samples.value("blazerpc_batch_size_count", model="score") == len(calls)
    assert samples.value("blazerpc_batch_size_sum", model="score") == sum(calls)
    assert samples.value("blazerpc_inference_duration_seconds_count", model="score") == len(calls)
    assert samples.value("blazerpc_queue_wait_seconds_count", model="score") == 69 * times
    # Unbatched: each call is a model call of one row.
    assert samples.value("blazerpc_batch_size_count", model="lookup") == 37 * times
    assert samples.value("blazerpc_batch_size_sum", model="lookup") == 37 * times
    assert samples.value("blazerpc_inference_duration_seconds_count", model="lookup") == 37 * times
    assert samples.value("blazerpc_queue_wait_seconds_count", model="lookup") == 37 * times
    # Streams: 2 messages in each of 10 streams, 3 in each of 4 that failed.
    assert samples.value("blazerpc_stream_messages_total", model="tokens") == 32 * times
    assert samples.get_value("blazerpc_stream_messages_total", model="score") is None


@pytest.fixture(scope="module")
def shop_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``SHOP_SCORE_CALLS`` file of the module's shop server."""
    return tmp_path_factory.mktemp("shop") / "score-calls"


@pytest.fixture(scope="module")
def shop(shop_calls: Path) -> Iterator[ServeProcess]:
    with serve_process(
        app_target("shop"), "--metrics-port", "0", env={"SHOP_SCORE_CALLS": str(shop_calls)}
    ) as proc:
        yield proc


async def test_counts_are_exact_after_concurrent_successes_and_failures(
    shop: ServeProcess, shop_calls: Path
) -> None:
    before = scrape(metrics_port(shop))
    assert not before.matching("blazerpc_requests_total", code="INTERNAL")  # a fresh server
    assert before.value("blazerpc_requests_total", model="score", method="PredictScore", code="OK") == 0
    outcomes = await _run_workload(shop.host, shop.port)
    assert outcomes == EXPECTED_OUTCOMES
    check_workload_metrics(scrape(metrics_port(shop)), shop_calls)


async def test_calls_the_server_refuses_or_cuts_off_are_counted_with_their_clients_status() -> None:
    from grpclib.client import Channel, UnaryUnaryMethod

    module = load_app("limits")
    [method] = module.app.schema().methods
    classes = module.app.schema().classes

    with serve_process(
        app_target("limits"), "--metrics-port", "0", "--max-concurrent-calls", "2", "--default-timeout", "0.5"
    ) as proc:
        port = metrics_port(proc)

        channel = Channel(proc.host, proc.port)
        rpc = UnaryUnaryMethod(channel, method.path, classes[method.request], classes[method.response])

        async def call(seconds: float, timeout: float | None = 30) -> Status:
            try:
                await rpc(classes[method.request](seconds=seconds), timeout=timeout)
            except GRPCError as exc:
                return exc.status
            return Status.OK

        loop = asyncio.get_running_loop()
        try:
            # Two calls hold both slots for 2 s: long enough to be seen and refused
            # beside, however slow the machine.
            running = [asyncio.ensure_future(call(2.0)) for _ in range(2)]
            give_up = time.monotonic() + 20
            while True:  # until both run (scraped off the loop)
                now = await loop.run_in_executor(None, scrape, port)
                if now.value("blazerpc_requests_in_flight", model="slow") == 2:
                    break
                assert time.monotonic() < give_up, "the two calls never showed as in flight"
                assert not any(r.done() for r in running), "the held calls ended before both ran"
            refused = await asyncio.gather(call(0), call(0))
            statuses = [*await asyncio.gather(*running), *refused]
            cut_off = await call(10, timeout=None)  # no client deadline: the server's 0.5 s
        finally:
            channel.close()
        samples = scrape(port)
    assert statuses == [Status.OK, Status.OK, Status.RESOURCE_EXHAUSTED, Status.RESOURCE_EXHAUSTED]
    assert cut_off is Status.DEADLINE_EXCEEDED
    counts = {
        labels["code"]: value
        for labels, value in (
            (dict(k), v) for k, v in samples.matching("blazerpc_requests_total", model="slow").items()
        )
        if value
    }
    assert counts == {"OK": 2, "RESOURCE_EXHAUSTED": 2, "DEADLINE_EXCEEDED": 1}
    assert samples.value("blazerpc_request_duration_seconds_count", model="slow", method="PredictSlow") == 5
    assert samples.value("blazerpc_requests_in_flight", model="slow") == 0


def test_process_metrics_and_only_the_metrics_path(shop: ServeProcess) -> None:
    samples = scrape(metrics_port(shop))
    assert samples.value("process_resident_memory_bytes") > 0
    assert samples.value("process_cpu_seconds_total") > 0
    assert samples.value("process_open_fds") > 0
    assert samples.matching("python_info")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(shop)}/other", timeout=10)
    assert info.value.code == 404


def test_metrics_listen_on_the_servers_host_by_default(shop: ServeProcess) -> None:
    [line] = [e for e in shop.logs if "metrics_port" in e]
    assert line["metrics_host"] == "127.0.0.1"
    assert line["event"] == f"Metrics at http://127.0.0.1:{line['metrics_port']}/metrics"


def test_a_taken_metrics_port_fails_start_up_saying_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [*blaze_command(), "serve", app_target("shop"), "--host", "127.0.0.1", "--port", "0"]
        result = subprocess.run(
            [*command, "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "pass --metrics-port PORT (0 picks a free one)" in result.stderr


def test_metrics_host_option(tmp_path: Any) -> None:
    with serve_process(
        app_target("shop"), "--metrics-port", "0", "--metrics-host", "localhost", "--no-access-log"
    ) as proc:
        [line] = [e for e in proc.logs if "metrics_port" in e]
        assert line["metrics_host"] == "localhost"
        assert (
            scrape(metrics_port(proc), host="localhost").value("blazerpc_requests_in_flight", model="score")
            == 0
        )


# --- in-process ---------------------------------------------------------------------------


def _app(name: str) -> BlazeApp:
    app = BlazeApp()

    @app.model(name)
    def echo(x: list[int]) -> list[int]:
        return x

    return app


async def test_two_apps_in_one_process_have_their_own_registries() -> None:
    from blazerpc_metrics import endpoint_for, metrics_for

    first, second = _app("first"), _app("second")
    assert metrics_for(first).registry is not metrics_for(second).registry

    options = {"metrics_port": 0, "access_log": False}
    async with serve_app(first, options=options) as a, serve_app(second, options=options) as b:
        await asyncio.gather(*(a.call("first", x=[1, 2]) for _ in range(3)), b.call("second", x=[1]))
        ea, eb = endpoint_for(first), endpoint_for(second)
        assert ea is not None
        assert eb is not None
        a, b = scrape(ea.port), scrape(eb.port)
    assert a.value("blazerpc_requests_total", model="first", method="PredictFirst", code="OK") == 3
    assert a.value("blazerpc_batch_size_sum", model="first") == 6
    assert not a.matching("blazerpc_requests_total", model="second")
    assert b.value("blazerpc_requests_total", model="second", method="PredictSecond", code="OK") == 1
    assert not b.matching("blazerpc_requests_total", model="first")
    assert endpoint_for(first) is None  # closed with its server


async def test_in_flight_and_queue_depth_while_calls_wait() -> None:
    from blazerpc_metrics import endpoint_for

    app = BlazeApp(max_concurrency=1)
    release = asyncio.Event()
    started = asyncio.Event()

    @app.model("slow")
    async def slow(x: int) -> int:
        started.set()
        await release.wait()
        return x

    async with serve_app(app, options={"metrics_port": 0, "access_log": False}) as server:
        endpoint = endpoint_for(app)
        assert endpoint is not None
        calls = [asyncio.ensure_future(server.call("slow", x=i)) for i in range(4)]
        await started.wait()
        loop = asyncio.get_running_loop()
        for _ in range(10_000):  # until three calls wait behind the first (scraped off the loop)
            during = await loop.run_in_executor(None, scrape, endpoint.port)
            if during.value("blazerpc_queue_depth", model="slow") == 3:
                break
        else:
            raise AssertionError("three calls never queued")
        release.set()
        await asyncio.gather(*calls)
        after = await loop.run_in_executor(None, scrape, endpoint.port)
    assert during.value("blazerpc_requests_in_flight", model="slow") == 4  # one runs, three wait
    assert after.value("blazerpc_requests_in_flight", model="slow") == 0
    assert after.value("blazerpc_queue_depth", model="slow") == 0
    assert after.value("blazerpc_requests_total", model="slow", method="PredictSlow", code="OK") == 4


async def test_a_failed_batch_and_its_re_runs_count_as_separate_model_calls() -> None:
    from blazerpc_metrics import endpoint_for

    app = BlazeApp()
    calls: list[list[float]] = []
    release = asyncio.Event()

    @app.model("checked")
    async def checked(x: list[float]) -> list[float]:
        calls.append(list(x))
        if len(calls) == 1:
            await release.wait()
        if any(v < 0 for v in x):
            raise ValueError("negative")
        return x

    async with serve_app(app, options={"metrics_port": 0, "access_log": False}) as server:
        endpoint = endpoint_for(app)
        assert endpoint is not None
        first = asyncio.ensure_future(server.call("checked", x=[0.0]))
        while not calls:
            await asyncio.sleep(0.005)
        rest = [asyncio.ensure_future(server.call("checked", x=x)) for x in ([1.0], [2.0, 2.0], [-3.0])]
        loop = asyncio.get_running_loop()
        give_up = time.monotonic() + 20
        # Until the three queue behind the blocked call (4 rows): then they make one batch.
        while (await loop.run_in_executor(None, scrape, endpoint.port)).get_value(
            "blazerpc_queue_depth", model="checked"
        ) != 4:
            assert time.monotonic() < give_up, "the three requests never queued"
        release.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        assert [isinstance(o, GRPCError) for o in outcomes] == [False, False, False, True]
        samples = await asyncio.get_running_loop().run_in_executor(None, scrape, endpoint.port)
    # Model calls: [0], the batch [1, 2, 2, -3] that failed, then its three requests alone.
    assert calls == [[0.0], [1.0, 2.0, 2.0, -3.0], [1.0], [2.0, 2.0], [-3.0]]
    assert samples.value("blazerpc_batch_size_count", model="checked") == 5
    assert samples.value("blazerpc_batch_size_sum", model="checked") == 1 + 4 + 1 + 2 + 1
    assert samples.value("blazerpc_inference_duration_seconds_count", model="checked") == 5
    assert samples.value("blazerpc_queue_wait_seconds_count", model="checked") == 4  # once per request
    assert samples.value("blazerpc_requests_total", model="checked", method="PredictChecked", code="OK") == 3


def test_metrics_middleware_is_outer_and_importable_from_the_seed_path() -> None:
    from blazerpc.server.middleware import MetricsMiddleware
    from blazerpc_metrics import MetricsMiddleware as FromPlugin

    assert MetricsMiddleware is FromPlugin
    assert issubclass(MetricsMiddleware, Middleware)
    assert MetricsMiddleware.outer is True

    seen: list[CallContext] = []

    class Spy(Middleware):
        async def on_request(self, context: CallContext) -> None:
            seen.append(context)

    app = BlazeApp(middleware=[Spy()])

    @app.model("one")
    def one(x: int) -> int:
        return x

    from blazerpc.app import build_runtime

    ordered = build_runtime(app).middleware  # in the chain's order
    assert [type(m).__name__ for m in ordered] == ["LoggingMiddleware", "MetricsMiddleware", "Spy"]


def test_plugin_is_found_through_its_entry_point() -> None:
    out = subprocess.run(
        [*blaze_command(), "plugins", "list", "--json"], capture_output=True, text=True, check=True
    )
    import json

    [record] = [r for r in json.loads(out.stdout) if r["name"] == "metrics"]
    assert record["distribution"] == "blazerpc-metrics"
    assert record["loaded"] is True
    assert "blazerpc_middleware" in record["hooks"]
    help_text = subprocess.run(
        [*blaze_command(), "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "--metrics-port" in help_text
    assert "--metrics-host" in help_text
