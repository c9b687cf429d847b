"""Helpers for the tests that run `blaze serve` against tests/core/apps/serving_app.py,
drain_app.py and limits_app.py: grpclib calls built from their schemas, waiting for a log
line or a file the app writes."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest
from support import APPS, load_app_module, wait_until

from blazerpc.testing import ServeProcess
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


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def wait_async(condition: Callable[[], Any], timeout: float = 10) -> Any:
    """Wait for a condition that reads files or logs of a server process."""
    return await wait_until(condition, timeout, interval=0.02)


async def health(channel: Channel) -> int:
    reply = await HealthStub(channel).Check(
        HealthCheckRequest(service="blazerpc.InferenceService"), timeout=5
    )
    return reply.status


async def channel_per_worker(proc: ServeProcess, workers: int, schema: Schema = SCHEMA) -> dict[int, Channel]:
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


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def pid_over(proc: ServeProcess, context: ssl.SSLContext | None) -> int:
    channel = Channel(proc.host, proc.port, ssl=context)
    try:
        return (await rpc(channel, "pid")(request("pid", text="tls"), timeout=5)).result
    finally:
        channel.close()
