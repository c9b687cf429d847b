"""The client over several replicas: three ``blaze serve`` processes on distinct loopback
addresses (127.0.0.2-4 are all loopback), started the way users start them.

Which replica served a call is counted from the servers' side: each answer is the
identity of the replica that computed it (``BLAZERPC_TEST_REPLICA``).

A server "added mid-run" is made resolvable through a resolver function the test
controls: the client re-resolves a resolver on the same schedule as a ``dns:///``
name, and no name can gain an address here without editing /etc/hosts for the whole
machine (HOSTALIASES maps a name to one other name, not to addresses). The
``dns:///`` path itself is tested against real names resolved by ``getaddrinfo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from support import Spawned, app_target, spawned

from blazerpc import CallError, Client, SyncClient
from blazerpc.client._balancer import parse_targets
from blazerpc.testing import blaze_command

REPLICA = app_target("replica_app")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def _listening_port(lines: list[str]) -> int | None:
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            entry = json.loads(line)
            if str(entry.get("event", "")).startswith("Server listening"):
                return int(entry["port"])
    return None


@contextlib.contextmanager
def replica(host: str, name: str, port: int = 0, calls: Path | None = None) -> Iterator[tuple[Spawned, int]]:
    """``blaze serve replica_app --host HOST --port PORT``, as a user starts it; yields
    the process and its port once it listens."""
    command = [
        *blaze_command(),
        "serve",
        REPLICA,
        "--host",
        host,
        "--port",
        str(port),
        "--log-format",
        "json",
    ]
    env = {"BLAZERPC_TEST_REPLICA": name, **({"BLAZERPC_TEST_CALLS": str(calls)} if calls else {})}
    with spawned(command, env=env) as proc:
        yield proc, proc.wait_for(_listening_port)


async def wait_serving(host: str, port: int, timeout: float = 60) -> None:
    """Until the server's health service answers SERVING (what a readiness probe asks)."""
    deadline = time.monotonic() + timeout
    while True:
        channel = Channel(host, port)
        try:
            reply = await HealthStub(channel).Check(HealthCheckRequest(service=""), timeout=2)
            if reply.status == HealthCheckResponse.SERVING:
                return
        except (TimeoutError, OSError, CallError, Exception):  # noqa: BLE001 - not up yet
            pass
        finally:
            channel.close()
        assert time.monotonic() < deadline, f"{host}:{port} did not become ready"
        await asyncio.sleep(0.1)


@pytest.fixture
def three() -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(replica(host, host))[1] for host in HOSTS]
        yield [f"{host}:{port}" for host, port in zip(HOSTS, ports, strict=True)]


class Callers:
    """``count`` tasks calling ``whoami`` without pause until stopped: every answer (its
    replica and when it came) and every failure."""

    def __init__(self, client: Client, count: int = 8) -> None:
        self.client = client
        self.answers: list[tuple[float, str]] = []
        self.failures: list[CallError] = []
        self._stop = False
        self._tasks = [asyncio.ensure_future(self._call()) for _ in range(count)]

    async def _call(self) -> None:
        while not self._stop:
            try:
                who = await self.client.predict("whoami", x=1)
            except CallError as exc:
                self.failures.append(exc)
            else:
                self.answers.append((time.monotonic(), who))

    async def until(self, done: object, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            assert time.monotonic() < deadline, (
                f"not done in {timeout:g} s: {Counter(w for _, w in self.answers)}"
            )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    def served_by(self, name: str) -> int:
        return sum(1 for _, who in self.answers if who == name)


async def test_calls_spread_evenly_over_three_replicas(three: list[str]) -> None:
    async with Client(three, timeout=30) as client:
        assert client.addresses == three
        served: Counter[str] = Counter()

        async def caller(n: int) -> None:
            for _ in range(n):
                served[await client.predict("whoami", x=1)] += 1

        await asyncio.gather(*(caller(200) for _ in range(15)))
    assert sum(served.values()) == 3000
    for host in HOSTS:
        assert abs(served[host] - 1000) <= 150, served


async def test_a_comma_separated_address_is_the_same_list(three: list[str]) -> None:
    async with Client(",".join(three), timeout=30) as client:
        seen = {await client.predict("whoami", x=1) for _ in range(6)}
    assert seen == set(HOSTS)


async def test_a_rolling_restart_fails_no_call() -> None:
    """SIGTERM one replica, start its replacement on the same address, wait until it is
    ready, next; eight callers call without pause all along."""
    with contextlib.ExitStack() as stack:
        running = {host: stack.enter_context(replica(host, host)) for host in HOSTS}
        addresses = [f"{host}:{port}" for host, (_, port) in running.items()]
        async with Client(addresses, timeout=30) as client:
            callers = Callers(client)
            await callers.until(lambda: all(callers.served_by(h) for h in HOSTS))
            for host in HOSTS:
                old, port = running[host]
                old.process.send_signal(signal.SIGTERM)
                old.wait_for(lambda lines: any("Shutting down" in line for line in lines))
                name = f"{host}-new"
                stack.enter_context(replica(host, name, port))
                await wait_serving(host, port)
                await callers.until(lambda name=name: callers.served_by(name) > 0)
                assert old.process.wait(30) == 0, old.text()
            await callers.stop()
    assert callers.failures == []
    assert {who for _, who in callers.answers} == {*HOSTS, *(f"{h}-new" for h in HOSTS)}


async def test_a_replica_added_mid_run_gets_calls_within_a_second_of_being_resolvable() -> None:
    with contextlib.ExitStack() as stack:
        first = [f"{h}:{stack.enter_context(replica(h, h))[1]}" for h in HOSTS[:2]]
        resolvable = list(first)

        async def resolve() -> list[str]:
            return list(resolvable)

        async with Client(resolve, timeout=30, resolve_interval=0.25) as client:
            callers = Callers(client)
            await callers.until(lambda: all(callers.served_by(h) for h in HOSTS[:2]))
            host = HOSTS[2]
            _, port = stack.enter_context(replica(host, host))
            await wait_serving(host, port)
            resolvable.append(f"{host}:{port}")
            since = time.monotonic()
            await callers.until(lambda: callers.served_by(host) > 0)
            await callers.stop()
    first_answer = min(at for at, who in callers.answers if who == host)
    assert first_answer - since < 1.0
    assert callers.failures == []


async def test_a_dns_target_resolves_with_getaddrinfo() -> None:
    with replica("127.0.0.1", "local") as (_, port):
        async with Client(f"dns:///localhost:{port}", timeout=30) as client:
            assert await client.predict("whoami", x=1) == "local"
            assert client.addresses == [f"127.0.0.1:{port}"]
            assert client.address == f"dns:///localhost:{port}"


def test_a_name_that_does_not_resolve_is_unavailable_with_the_reason() -> None:
    client = SyncClient("dns:///no-such-host.invalid:50051", timeout=10)
    with client, pytest.raises(CallError) as caught:
        client.models()
    assert caught.value.status is Status.UNAVAILABLE
    assert "cannot resolve 'no-such-host.invalid'" in caught.value.message


async def test_a_call_that_reached_a_model_is_never_sent_again(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    with contextlib.ExitStack() as stack:
        procs = {h: stack.enter_context(replica(h, h, calls=calls)) for h in HOSTS[:2]}
        async with Client([f"{h}:{port}" for h, (_, port) in procs.items()], timeout=60) as client:
            call = asyncio.ensure_future(client.predict("slow", seconds=30))
            while not calls.exists() or "slow" not in calls.read_text():
                await asyncio.sleep(0.05)
            [host] = [line.split()[0] for line in calls.read_text().splitlines()]
            procs[host][0].process.send_signal(signal.SIGKILL)  # the connection breaks mid-call
            with pytest.raises(CallError) as caught:
                await call
    assert caught.value.status is Status.UNAVAILABLE
    assert calls.read_text().split() == [host, "slow"]  # no other replica ran it


async def test_when_no_replica_answers_the_retries_end_with_every_reason() -> None:
    ports = []
    for host in HOSTS[:2]:
        with socket.socket() as s:
            s.bind((host, 0))
            ports.append(s.getsockname()[1])  # nothing listens there once closed
    addresses = [f"{h}:{p}" for h, p in zip(HOSTS[:2], ports, strict=True)]
    client = Client(addresses, timeout=30)
    with pytest.raises(CallError) as caught:
        await client.models()
    client.close()
    assert caught.value.status is Status.UNAVAILABLE
    message = caught.value.message
    assert message.startswith(f"cannot reach {','.join(addresses)}: ")
    assert "(5 attempts in " in message
    assert all(a in message for a in addresses)


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("dns://localhost:1", "a DNS target is dns:///host:port (three slashes)"),
        ("", "no address in"),
        ([], "no address in"),
        ("localhost:notaport", "bad port in address"),
        ("127.0.0.1:0", "bad port in address"),
    ],
)
def test_bad_targets_are_refused_with_a_reason(address: str | list[str], error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace(")", r"\)")):
        parse_targets(address)
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        Client(address)


async def test_a_call_a_draining_replica_refuses_goes_to_another(tmp_path: Path) -> None:
    """A replica draining (SIGTERM, a call still running) answers new calls UNAVAILABLE
    before any model runs: the client sends each to the other replica, and the call
    still running there finishes."""
    calls = tmp_path / "calls"
    with contextlib.ExitStack() as stack:
        procs = {h: stack.enter_context(replica(h, h, calls=calls)) for h in HOSTS[:2]}
        async with Client([f"{h}:{port}" for h, (_, port) in procs.items()], timeout=60) as client:
            running = asyncio.ensure_future(client.predict("slow", seconds=3))
            while not calls.exists() or "slow" not in calls.read_text():
                await asyncio.sleep(0.05)
            [draining] = [line.split()[0] for line in calls.read_text().splitlines()]
            [other] = [h for h in HOSTS[:2] if h != draining]
            proc = procs[draining][0]
            proc.process.send_signal(signal.SIGTERM)
            proc.wait_for(lambda lines: any("Draining 1 calls" in line for line in lines))
            answers = [await client.predict("whoami", x=i) for i in range(6)]
            assert await running == draining
    assert answers == [other] * 6
    logged = [json.loads(line) for line in proc.lines if line.startswith("{")]
    refused = [e for e in logged if e.get("event") == "call" and e.get("status") == "UNAVAILABLE"]
    assert refused, proc.text()  # the draining replica was asked, and refused


def test_the_sync_client_spreads_its_calls_too(three: list[str]) -> None:
    async def resolve() -> list[str]:  # runs on the client's own event loop
        return three

    for address in (three, resolve):
        with SyncClient(address, timeout=30) as client:
            served = Counter(client.predict("whoami", x=1) for _ in range(30))
            assert client.addresses == three
        assert served == dict.fromkeys(HOSTS, 10)
