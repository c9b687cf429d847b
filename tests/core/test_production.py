"""Production serving over real `blaze serve` processes: graceful drain, workers, TLS,
limits and reload."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, ResponseReceived, StreamEnded
from support import APPS, AppCaller, RecordingChannel, app_target, certificates, load_app_module, spawned

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess, blaze_command, serve_process
from blazerpc.wire._schema import Schema

SCHEMA = load_app_module(APPS / "serving_app.py").app.schema()
DRAIN = load_app_module(APPS / "drain_app.py").app.schema()
LIMITS = load_app_module(APPS / "limits_app.py").app.schema()


def rpc(channel: Channel, model: str, schema: Schema = SCHEMA) -> UnaryUnaryMethod[Any, Any]:
    method = next(m for m in schema.methods if m.model == model)
    return UnaryUnaryMethod(
        channel, method.path, schema.classes[method.request], schema.classes[method.response]
    )


def request(model: str, schema: Schema = SCHEMA, **fields: Any) -> Any:
    method = next(m for m in schema.methods if m.model == model)
    return schema.classes[method.request](**fields)


def wait_for_log(
    proc: ServeProcess, match: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in list(proc.logs):
            if match(entry):
                return entry
        time.sleep(0.02)
    raise AssertionError(f"no such log line; got {[e.get('event') for e in proc.logs]}")


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def wait_async(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def health(channel: Channel) -> int:
    reply = await HealthStub(channel).Check(
        HealthCheckRequest(service="blazerpc.InferenceService"), timeout=5
    )
    return reply.status


# --- graceful drain ----------------------------------------------------------------------


async def test_sigterm_drains_50_calls_in_flight(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "20", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        statuses: list[tuple[float, int]] = []

        async def watch() -> None:
            with contextlib.suppress(GRPCError, StreamTerminatedError, ConnectionError):  # ends with GOAWAY
                async with HealthStub(channel).Watch.open(timeout=30) as stream:
                    await stream.send_message(
                        HealthCheckRequest(service="blazerpc.InferenceService"), end=True
                    )
                    async for reply in stream:
                        statuses.append((time.monotonic(), reply.status))

        watcher = asyncio.ensure_future(watch())
        await wait_async(lambda: statuses)
        calls = [
            asyncio.ensure_future(rpc(channel, "slow")(request("slow", x=i), timeout=30)) for i in range(50)
        ]
        await wait_async(lambda: _line_count(arrivals) == 50)  # inside the 2 s model
        proc.process.send_signal(signal.SIGTERM)
        await wait_async(lambda: len(statuses) > 1)
        with pytest.raises(GRPCError) as rejected:
            await rpc(channel, "slow")(request("slow", x=999), timeout=10)
        replies = await asyncio.gather(*calls)
        first_done = time.monotonic()
        await asyncio.wait_for(watcher, 30)
        channel.close()
        results, statuses, rejected, done_at = (
            [r.result for r in replies],
            statuses,
            rejected.value,
            first_done,
        )
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

    assert results == [2 * i for i in range(50)]
    assert [s for _, s in statuses[:2]] == [HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING]
    assert statuses[1][0] < done_at  # NOT_SERVING came before the calls finished
    assert rejected.status is Status.UNAVAILABLE
    assert "shutting down" in (rejected.message or "")
    assert code == 0
    assert elapsed < 20
    drain = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Draining"))
    assert drain["calls"] == 50


async def test_calls_still_running_when_the_grace_period_ends_get_unavailable(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "1", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        calls = [
            asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=i), timeout=60)) for i in range(3)
        ]
        await wait_async(lambda: _line_count(arrivals) == 3)
        proc.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        channel.close()
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

        # The access log (middleware) records the status the clients got, not CANCELLED.
        wait_for_log(proc, lambda e: e.get("event") == "Server stopped")
        statuses = [e["status"] for e in proc.logs if e.get("event") == "call"]

    for result in results:
        assert isinstance(result, GRPCError)
        assert result.status is Status.UNAVAILABLE
        assert "shut down before the call completed" in (result.message or "")
    assert code == 0
    assert elapsed < 10
    assert statuses == ["UNAVAILABLE"] * 3


async def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    arrivals = tmp_path / "arrivals"
    env = {"BLAZERPC_TEST_ARRIVALS": str(arrivals)}
    with serve_process(app_target("serving_app"), "--grace-period", "60", env=env) as proc:
        started = time.monotonic()
        channel = Channel(proc.host, proc.port)
        calls = [
            asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=i), timeout=60)) for i in range(2)
        ]
        await wait_async(lambda: _line_count(arrivals) == 2)
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        proc.process.send_signal(signal.SIGINT)
        results = await asyncio.gather(*calls, return_exceptions=True)
        channel.close()
        code = proc.process.wait(30)
        elapsed = time.monotonic() - started

    assert all(isinstance(r, GRPCError) and r.status is Status.UNAVAILABLE for r in results)
    assert code == 0
    assert elapsed < 15


@pytest.mark.parametrize("model", ["queued", "queued_batch"])
async def test_requests_queued_behind_a_busy_model_finish_during_a_drain(tmp_path: Path, model: str) -> None:
    """The first call holds the model at a gate; three more wait in its queue (the slot of
    an unbatched model, the batcher's queue of a batched one) when SIGTERM comes."""
    gate, entered = tmp_path / "gate", tmp_path / "gate.entered"
    batched = model == "queued_batch"

    def call(channel: Channel, x: int) -> Any:
        message = request(model, DRAIN, x=[x] if batched else x)
        return asyncio.ensure_future(rpc(channel, model, DRAIN)(message, timeout=30))

    env = {"BLAZERPC_TEST_GATE": str(gate)}
    with serve_process(app_target("drain_app"), "--grace-period", "20", env=env) as proc:
        channel = Channel(proc.host, proc.port)
        first = call(channel, 0)
        await wait_async(entered.exists)
        queued = [call(channel, x) for x in (1, 2, 3)]
        arrived = tmp_path / "gate.arrived"
        # All four on the server (the three behind the call at the gate) before SIGTERM.
        await wait_async(lambda: _line_count(arrived) == 4)
        inside = entered.read_text().splitlines()
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        gate.touch()
        replies = await asyncio.gather(first, *queued)
        channel.close()
        code = proc.process.wait(30)

    assert code == 0
    assert inside == (["[0]"] if batched else ["0"])  # only the first call was in the model
    drain = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Draining"))
    assert drain["calls"] == 4
    calls = entered.read_text().splitlines()
    if batched:
        assert [list(r.result_0) for r in replies] == [[0], [10], [20], [30]]
        # The three queued requests left the queue together, as one batch, after SIGTERM.
        assert [list(r.result_1) for r in replies] == [[1], [3], [3], [3]]
        assert len(calls) == 2
        assert sorted(json.loads(calls[1])) == [1, 2, 3]
    else:
        assert [r.result for r in replies] == [0, 10, 20, 30]
        assert sorted(map(int, calls)) == [0, 1, 2, 3]


async def test_a_drain_ends_every_connection_with_goaway(tmp_path: Path) -> None:
    """Seen by grpclib clients: the HTTP/2 GOAWAY frame (NO_ERROR) arrives on the busy
    connection after its call's answer, and on an idle one too; then both close."""
    gate, entered = tmp_path / "gate", tmp_path / "gate.entered"
    env = {"BLAZERPC_TEST_GATE": str(gate)}
    with serve_process(app_target("drain_app"), "--grace-period", "20", env=env) as proc:
        busy, idle = RecordingChannel(proc.host, proc.port), RecordingChannel(proc.host, proc.port)
        await rpc(idle, "pid", DRAIN)(request("pid", DRAIN, text="?"), timeout=5)
        call = asyncio.ensure_future(rpc(busy, "queued", DRAIN)(request("queued", DRAIN, x=7), timeout=30))
        await wait_async(entered.exists)
        proc.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_for_log, proc, lambda e: str(e.get("event", "")).startswith("Draining"))
        await asyncio.sleep(0.3)
        goaways_while_running = len(busy.of_type(ConnectionTerminated))
        gate.touch()
        reply = await call
        await wait_async(lambda: busy.lost_at is not None and idle.lost_at is not None)
        busy.close()
        idle.close()
        code = proc.process.wait(30)

    assert code == 0
    assert reply.result == 70
    assert goaways_while_running == 0  # not while a call is still running
    for channel in (busy, idle):
        [(received, goaway)] = channel.of_type(ConnectionTerminated)
        assert goaway.error_code == ErrorCodes.NO_ERROR
        assert channel.lost_at is not None
        assert channel.lost_at >= received
    # On the busy connection, the call's end came first.
    kinds = [type(event) for _, event in busy.events]
    assert kinds.index(StreamEnded) < kinds.index(ConnectionTerminated)


# --- a sync model that never returns -------------------------------------------------------


def _events(proc: ServeProcess, prefix: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e) for i, e in enumerate(list(proc.logs)) if str(e.get("event", "")).startswith(prefix)]


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_hung_sync_model_does_not_keep_the_process_past_the_grace_period(
    workers: int, tmp_path: Path
) -> None:
    grace = 1.0
    args = ("--grace-period", str(grace), "--workers", str(workers))
    entered = tmp_path / "gate.entered"  # hang_sync notes each call there
    env = {"BLAZERPC_TEST_GATE": str(tmp_path / "gate")}
    with serve_process(app_target("drain_app"), *args, env=env) as proc:
        if workers > 1:
            wait_for_log(proc, lambda e: e.get("event") == f"Worker {workers}/{workers} serving")

        channels = await _channel_per_worker(proc, workers, DRAIN)
        # Two calls stuck in time.sleep(3600) on every worker.
        calls = [
            asyncio.ensure_future(rpc(ch, "hang_sync", DRAIN)(request("hang_sync", DRAIN, x=i), timeout=60))
            for ch in channels.values()
            for i in range(2)
        ]
        # Every one inside the model, in its thread, before SIGTERM.
        await wait_async(lambda: _line_count(entered) == 2 * workers)
        signalled = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        for channel in channels.values():
            channel.close()
        code = proc.process.wait(grace + 10)
        exited = time.monotonic() - signalled

    for result in results:
        assert isinstance(result, GRPCError), result
        assert result.status is Status.UNAVAILABLE
    assert code == 0
    assert exited < grace + 2.5, f"exited {exited:.1f} s after SIGTERM with a {grace:g} s grace period"
    for pid in channels:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Each worker said how many calls it abandoned, then ran its shutdown hooks.
    abandoned = _events(proc, "Abandoning")
    assert sorted(e["abandoned"] for _, e in abandoned) == [2] * workers
    stopped = _events(proc, "Server stopped")
    for index, entry in abandoned:
        pid = entry.get("worker_pid")
        assert any(i > index and e.get("worker_pid") == pid for i, e in stopped)


async def test_a_sync_model_hanging_past_the_clients_deadline() -> None:
    with serve_process(app_target("drain_app"), "--grace-period", "1") as proc:
        channel = Channel(proc.host, proc.port)
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):  # grpclib: DEADLINE_EXCEEDED on its side
                await rpc(channel, "hang_sync", DRAIN)(request("hang_sync", DRAIN, x=1), timeout=0.5)
            elapsed = time.monotonic() - started
            # The thread is still in the model; the server answers everything else.
            pid = await rpc(channel, "pid", DRAIN)(request("pid", DRAIN, text="?"), timeout=5)
            assert pid.result == proc.process.pid
        finally:
            channel.close()
        logged = wait_for_log(proc, lambda e: e.get("event") == "call" and e.get("model") == "hang_sync")
        assert proc.stop(timeout=10) == 0
    assert elapsed < 3
    assert logged["status"] == "DEADLINE_EXCEEDED"
    # The call ended for its client and for the drain, but its thread never returned.
    assert not _events(proc, "Draining")
    assert [e["abandoned"] for _, e in _events(proc, "Abandoning")] == [1]


# --- workers -----------------------------------------------------------------------------


@pytest.fixture
def two_workers() -> Iterator[ServeProcess]:
    with serve_process(app_target("serving_app"), "--workers", "2", "--grace-period", "5") as proc:
        wait_for_log(proc, lambda e: e.get("event") == "Worker 2/2 serving")
        yield proc


async def worker_pids(proc: ServeProcess, count: int, timeout: float = 30) -> set[int]:
    """PIDs answering on new connections, until ``count`` distinct ones are seen."""

    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        channel = Channel(proc.host, proc.port)  # a new connection each time
        try:
            seen.add((await rpc(channel, "pid")(request("pid", text="?"), timeout=5)).result)
        except (GRPCError, ConnectionError, StreamTerminatedError, OSError):
            await asyncio.sleep(0.05)
        finally:
            channel.close()
    return seen


async def test_two_workers_share_the_port(two_workers: ServeProcess) -> None:
    logged = {e["pid"] for e in two_workers.logs if str(e.get("event", "")).startswith("Worker ")}
    assert len(logged) == 2
    assert await worker_pids(two_workers, 2) == logged
    assert two_workers.process.pid not in logged


async def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(two_workers: ServeProcess) -> None:
    first = wait_for_log(two_workers, lambda e: e.get("event") == "Worker 1/2 serving")
    os.kill(first["pid"], signal.SIGKILL)
    wait_for_log(two_workers, lambda e: str(e.get("event", "")).startswith("Worker 1 exited with code -9"))
    replaced = wait_for_log(
        two_workers, lambda e: e.get("event") == "Worker 1/2 serving" and e["pid"] != first["pid"]
    )
    pids = await worker_pids(two_workers, 2)
    assert replaced["pid"] in pids
    assert first["pid"] not in pids


def test_stopping_the_parent_stops_every_worker(two_workers: ServeProcess) -> None:
    pids = {e["pid"] for e in two_workers.logs if str(e.get("event", "")).startswith("Worker ")}
    assert two_workers.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _channel_per_worker(
    proc: ServeProcess, workers: int, schema: Schema = SCHEMA
) -> dict[int, Channel]:
    """One open connection to each worker: new channels until every pid has answered."""
    channels: dict[int, Channel] = {}
    deadline = time.monotonic() + 30
    while len(channels) < workers:
        assert time.monotonic() < deadline, f"reached only workers {sorted(channels)}"
        channel = Channel(proc.host, proc.port)
        pid = (await rpc(channel, "pid", schema)(request("pid", schema, text="?"), timeout=5)).result
        if pid in channels:
            channel.close()
        else:
            channels[pid] = channel
    return channels


async def test_the_log_lines_of_two_workers_never_interleave() -> None:
    """Both workers write JSON lines to the one stderr at once: each line stays whole."""
    command = [*blaze_command(), "serve", app_target("serving_app"), "--host", "127.0.0.1", "--port", "0"]
    command += ["--log-format", "json", "--workers", "2", "--grace-period", "1"]
    with spawned(command) as server:
        server.wait_for(lambda lines: any('"Worker 2/2 serving"' in line for line in lines))
        port = next(json.loads(line)["port"] for line in server.lines if '"Server listening' in line)
        proc = ServeProcess(process=server.process, port=port, host="127.0.0.1")  # type: ignore[arg-type]

        channels = await _channel_per_worker(proc, 2)
        await asyncio.gather(
            *[
                rpc(ch, "pid")(request("pid", text="?"), timeout=10)
                for ch in channels.values()
                for _ in range(200)
            ]
        )
        for channel in channels.values():
            channel.close()
        code = server.stop()
    assert code == 0
    entries = [json.loads(line) for line in server.lines]  # a torn line would not parse
    assert sum(e.get("event") == "call" for e in entries) >= 400


@pytest.mark.parametrize(
    ("slow", "sig"),
    [("all", signal.SIGTERM), ("after_first", signal.SIGTERM), ("after_first", signal.SIGINT)],
    ids=["none-serving-sigterm", "one-serving-sigterm", "one-serving-sigint"],
)
def test_a_signal_during_start_up_stops_the_workers_promptly(
    tmp_path: Path, slow: str, sig: signal.Signals
) -> None:
    """Workers take 60 s to import the app; a signal meanwhile stops the ones serving and
    the one still starting at once, instead of after its start-up."""
    pids = tmp_path / "pids"
    pids.mkdir()
    command = [*blaze_command(), "serve", app_target("slow_import_app"), "--host", "127.0.0.1", "--port", "0"]
    command += ["--log-format", "json", "--workers", "2", "--grace-period", "5"]
    env = {"BLAZERPC_TEST_PIDS": str(pids), "BLAZERPC_TEST_SLOW": slow}
    with spawned(command, env=env) as server:
        importing = 1 if slow == "all" else 2  # processes that have started importing the app
        server.wait_for(lambda _: len(list(pids.iterdir())) >= importing)
        time.sleep(0.3)  # well inside the import's 60 s sleep
        signalled = time.monotonic()
        code = server.stop(sig, timeout=20)
        stopped = time.monotonic() - signalled
    lines = server.lines
    workers = sorted(int(p.name) for p in pids.iterdir())
    assert len(workers) == importing
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert code == 0, "".join(lines)
    assert stopped < 5, f"stopped {stopped:.1f} s after the signal"
    events = [json.loads(line).get("event") for line in lines]
    assert ("Worker 1/2 serving" in events) is (slow == "after_first")
    assert "Worker 2/2 serving" not in events


# --- TLS ---------------------------------------------------------------------------------


def _client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def _pid_over(proc: ServeProcess, context: ssl.SSLContext | None) -> int:
    channel = Channel(proc.host, proc.port, ssl=context)
    try:
        return (await rpc(channel, "pid")(request("pid", text="tls"), timeout=5)).result
    finally:
        channel.close()


async def test_tls(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    args = ("--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]))
    with serve_process(app_target("serving_app"), *args) as proc:
        assert await _pid_over(proc, _client_context(certs["ca"])) == proc.process.pid
        with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError)):
            await _pid_over(proc, None)  # plaintext against a TLS port
        listening = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Server listening"))
        assert listening["transport"] == "TLS"


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    args = (
        "--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]),
        "--ssl-ca-certs", str(certs["ca"]),
    )  # fmt: skip
    with serve_process(app_target("serving_app"), *args) as proc:
        good = _client_context(certs["ca"], certs["client"], certs["client-key"])
        assert await _pid_over(proc, good) == proc.process.pid
        for refused in (
            _client_context(certs["ca"]),
            _client_context(certs["ca"], certs["rogue-client"], certs["rogue-client-key"]),
        ):
            with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError, ssl.SSLError)):
                await _pid_over(proc, refused)
        assert await _pid_over(proc, good) == proc.process.pid  # still serving


SERVE_SCRIPT = """
import sys

import structlog

structlog.configure(
    processors=[structlog.processors.JSONRenderer()],
    logger_factory=structlog.WriteLoggerFactory(sys.stdout),
)
sys.path.insert(0, sys.argv[1])
from serving_app import app

certfile, keyfile, ca_certs = sys.argv[2:5]
app.serve("127.0.0.1", 0, ssl_certfile=certfile, ssl_keyfile=keyfile, ssl_ca_certs=ca_certs, grace_period=1)
"""


async def test_mutual_tls_through_app_serve(tmp_path: Path) -> None:
    """A script that calls BlazeApp.serve(ssl_certfile=, ssl_keyfile=, ssl_ca_certs=)."""
    certs = certificates(tmp_path)
    script = tmp_path / "serve_tls.py"
    script.write_text(SERVE_SCRIPT)
    args = [str(APPS), str(certs["server"]), str(certs["server-key"]), str(certs["ca"])]
    with spawned([sys.executable, str(script), *args]) as server:
        listening = server.wait_for(lambda lines: [json.loads(x) for x in lines if '"Server listening' in x])
        process = server.process
        proc = ServeProcess(process=process, port=listening[0]["port"], host="127.0.0.1")
        good = _client_context(certs["ca"], certs["client"], certs["client-key"])
        assert await _pid_over(proc, good) == process.pid
        for refused in (None, _client_context(certs["ca"])):  # plaintext; TLS without a certificate
            with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError, ssl.SSLError)):
                await _pid_over(proc, refused)
        assert await _pid_over(proc, good) == process.pid
        code = server.stop()
    assert code == 0
    assert listening[0]["transport"] == "TLS"


def test_tls_with_a_missing_certificate_fails_at_start_up(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="cannot load the TLS certificate"),
        serve_process(app_target("serving_app"), "--ssl-certfile", str(tmp_path / "nope.pem")),
    ):
        pass


# --- limits ------------------------------------------------------------------------------


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


# --- reload ------------------------------------------------------------------------------

RELOAD_APP = """
from blazerpc import BlazeApp

app = BlazeApp()


@app.model("version")
def version(x: int) -> str:
    return "{tag}"
"""


async def test_reload_restarts_on_a_source_change(tmp_path: Path) -> None:
    source = tmp_path / "reloading.py"
    source.write_text(RELOAD_APP.format(tag="first"))
    with serve_process(f"{source}:app", "--reload", "--grace-period", "1") as proc:
        wait_for_log(proc, lambda e: e.get("event") == "Worker 1/1 serving")

        async def call() -> str:
            channel = Channel(proc.host, proc.port)
            try:
                from blazerpc import BlazeApp

                app = BlazeApp()

                @app.model("version")
                def version(x: int) -> str:
                    return ""

                schema = app.schema()
                method = schema.methods[0]
                stub = UnaryUnaryMethod(
                    channel, method.path, schema.classes[method.request], schema.classes[method.response]
                )
                return (await stub(schema.classes[method.request](x=1), timeout=5)).result
            finally:
                channel.close()

        assert await call() == "first"
        source.write_text(RELOAD_APP.format(tag="second"))
        wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Source changed (reloading.py)"))
        serving = [e for e in proc.logs if e.get("event") == "Worker 1/1 serving"]
        wait_for_log(proc, lambda e: e.get("event") == "Worker 1/1 serving" and e not in serving)
        assert await call() == "second"


# --- more bad input ------------------------------------------------------------------------


class _JsonCodec(BlazeCodec):
    __content_subtype__ = "json"


async def test_a_content_type_other_than_protobuf_is_refused_with_a_message() -> None:
    with serve_process(app_target("serving_app")) as proc:
        path = next(m.path for m in SCHEMA.methods if m.model == "pid")

        async def scenario() -> tuple[GRPCError, RecordingChannel]:
            channel = RecordingChannel(proc.host, proc.port, codec=_JsonCodec())
            try:
                async with channel.request(
                    path, Cardinality.UNARY_UNARY, RawMessage, RawMessage, timeout=5
                ) as s:
                    await s.send_message(b'{"text": "x"}', end=True)
                    await s.recv_message()
            except GRPCError as exc:
                return exc, channel
            finally:
                channel.close()
            raise AssertionError("a JSON call was accepted")

        error, channel = await scenario()
        assert await _pid_over(proc, None) == proc.process.pid
    # What the server sent: one HEADERS frame that ends the stream (a trailers-only
    # answer) with HTTP 415 Unsupported Media Type and a gRPC status and message.
    [(_, response)] = channel.of_type(ResponseReceived)
    headers = {name: value for name, value in response.headers}
    assert headers[":status"] == "415"
    assert headers["grpc-status"] == str(Status.UNKNOWN.value)
    assert headers["grpc-message"] == "Unacceptable content-type header"
    assert [e.stream_id for _, e in channel.of_type(StreamEnded)] == [response.stream_id]
    # grpclib's client reports the HTTP status (the gRPC HTTP mapping reads 415 as UNKNOWN).
    assert error.status is Status.UNKNOWN
    assert error.message == "Received :status = '415'"


def _calls_left_at_shutdown(proc: ServeProcess) -> int:
    """Stop the server; the number of calls its drain still found running."""
    assert proc.stop() == 0
    drains = [e for e in proc.logs if str(e.get("event", "")).startswith("Draining")]
    return drains[-1]["calls"] if drains else 0


async def test_a_client_that_disconnects_mid_call_leaves_nothing_behind() -> None:
    with serve_process(app_target("serving_app"), "--grace-period", "5") as proc:
        channel = Channel(proc.host, proc.port)
        call = asyncio.ensure_future(rpc(channel, "hang")(request("hang", x=1), timeout=60))
        await asyncio.sleep(0.3)
        channel.close()  # the connection goes away under the call
        with pytest.raises((StreamTerminatedError, asyncio.CancelledError, ConnectionError)):
            await call
        assert await _pid_over(proc, None) == proc.process.pid
        assert _calls_left_at_shutdown(proc) == 0


async def test_a_model_that_hangs_past_the_deadline_is_cut_off() -> None:
    with serve_process(app_target("serving_app"), "--grace-period", "5") as proc:
        channel = Channel(proc.host, proc.port)
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):  # grpclib: DEADLINE_EXCEEDED on its side
                await rpc(channel, "hang")(request("hang", x=1), timeout=0.5)
            assert time.monotonic() - started < 5
            assert (await rpc(channel, "pid")(request("pid", text="?"), timeout=5)).result == proc.process.pid
        finally:
            channel.close()
        assert _calls_left_at_shutdown(proc) == 0
