"""Test helpers for BlazeRPC apps and plugins; a pytest plugin loaded automatically.

Fixtures:
    ``blazerpc_plugin_manager``: a fresh plugin manager (installed plugins and built-ins).
    ``blazerpc_register_plugin``: ``blazerpc_register_plugin(plugin)`` registers a plugin
    for the current test only.

Servers:
    ``async with serve_app(app) as server:`` serves an app in this process, through the
    same start-up code as ``blaze serve``, on a free loopback port; ``server.call(...)``
    and ``server.stream(...)`` call its models with a grpclib client (and return the
    protobuf messages), ``server.client()`` gives a :class:`blazerpc.Client` for it.

    ``with serve_process("app.py:app") as proc:`` runs the real ``blaze serve`` command in
    a subprocess on a free port and stops it (SIGTERM) afterwards; ``proc.client()`` gives
    a :class:`blazerpc.SyncClient` for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
import pytest
from google.protobuf.message import Message
from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod

from .app import BlazeApp
from .client import Client, SyncClient
from .plugins import new_plugin_manager, register, unregister
from .server import BlazeServer, ServerInfo
from .server._server import format_address
from .wire import MethodSchema, Schema

__all__ = [
    "RunningServer",
    "ServeProcess",
    "blaze_command",
    "run_grpcio_client",
    "serve_app",
    "serve_process",
]


# --- in-process ------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A server started by :func:`serve_app`, with a grpclib channel to it."""

    info: ServerInfo
    schema: Schema
    channel: Channel

    @property
    def port(self) -> int:
        return self.info.port

    def client(self, **options: Any) -> Client:
        """A :class:`blazerpc.Client` for this server (``async with server.client() as c``),
        which returns Python values and arrays instead of messages; ``options`` are the
        client's (``timeout``, ``metadata``...)."""
        return Client(self.info.address, **options)

    def method(self, model: str, version: str | None = None) -> MethodSchema:
        for method in self.schema.methods:
            if method.model == model and (version is None or method.version == version):
                return method
        raise KeyError(f"no model {model!r}" + (f" version {version!r}" if version else ""))

    def request(self, model: str, **fields: Any) -> Message:
        """A request message for ``model`` built from field values."""
        return self.schema.classes[self.method(model).request](**fields)

    async def call(self, model: str, *, timeout: float | None = 10, **fields: Any) -> Message:
        """Call a unary model; returns the response message."""
        method = self.method(model)
        rpc = UnaryUnaryMethod(
            self.channel,
            method.path,
            self.schema.classes[method.request],
            self.schema.classes[method.response],
        )
        return await rpc(self.request(model, **fields), timeout=timeout)

    async def stream(self, model: str, *, timeout: float | None = 10, **fields: Any) -> list[Message]:
        """Call a streaming model; returns every message it sent."""
        method = self.method(model)
        rpc = UnaryStreamMethod(
            self.channel,
            method.path,
            self.schema.classes[method.request],
            self.schema.classes[method.response],
        )
        return list(await rpc(self.request(model, **fields), timeout=timeout))


@contextlib.asynccontextmanager
async def serve_app(
    app: BlazeApp, *, host: str = "127.0.0.1", port: int = 0, options: Mapping[str, Any] | None = None
) -> AsyncIterator[RunningServer]:
    """Serve ``app`` in this event loop on a free port; stop it on exit."""
    server = BlazeServer(app, options=options)
    info = await server.start(host, port)
    channel = Channel(host, info.port)
    try:
        yield RunningServer(info=info, schema=server.schema, channel=channel)
    finally:
        channel.close()
        await server.stop()


# --- subprocess ------------------------------------------------------------------------


def blaze_command() -> list[str]:
    """The ``blaze`` console script of this environment."""
    script = shutil.which("blaze", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "blazerpc"]


@dataclass
class ServeProcess:
    """A ``blaze serve`` subprocess started by :func:`serve_process`."""

    process: subprocess.Popen[str]
    port: int
    host: str
    logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """``host:port`` (``[host]:port`` for an IPv6 host), for a client."""
        return format_address(self.host, self.port)

    def client(self, **options: Any) -> SyncClient:
        """A :class:`blazerpc.SyncClient` for this server (``with proc.client() as c``);
        ``options`` are the client's (``timeout``, ``metadata``...)."""
        return SyncClient(self.address, **options)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _drain(stream: Any, logs: list[dict[str, Any]], raw: list[str]) -> None:
    for line in stream:
        raw.append(line)
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                logs.append(entry)


@contextlib.contextmanager
def serve_process(
    target: str,
    *args: str,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60,
) -> Iterator[ServeProcess]:
    """Run ``blaze serve target --host HOST --port 0 --log-format json *args``.

    Waits until the server logs where it listens; raises with its output if it exits
    or does not start in time. Stops it with SIGTERM on exit.
    """
    command = [
        *blaze_command(),
        "serve",
        target,
        "--host",
        host,
        "--port",
        "0",
        "--log-format",
        "json",
        *args,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    logs: list[dict[str, Any]] = []
    raw: list[str] = []
    threading.Thread(target=_drain, args=(process.stderr, logs, raw), daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    port = None
    while port is None:
        port = next(
            (e["port"] for e in list(logs) if str(e.get("event", "")).startswith("Server listening")), None
        )
        if port is not None:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            time.sleep(0.1)
            raise RuntimeError(f"blaze serve did not start ({' '.join(command)}):\n{''.join(raw)}")
        time.sleep(0.02)
    running = ServeProcess(process=process, port=int(port), host=host, logs=logs)
    try:
        yield running
    finally:
        running.stop()


# --- pytest fixtures -------------------------------------------------------------------


@pytest.fixture
def blazerpc_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the installed plugins and core's built-ins."""
    return new_plugin_manager()


@pytest.fixture
def blazerpc_register_plugin() -> Iterator[Callable[[object], None]]:
    """Register plugins for the current test only: ``blazerpc_register_plugin(plugin)``."""
    added: list[object] = []

    def add(plugin: object) -> None:
        register(plugin)
        added.append(plugin)

    yield add
    for plugin in added:
        unregister(plugin)


def run_grpcio_client(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Python script that uses grpcio in a fresh interpreter.

    grpcio's health and reflection modules register the same proto names as grpclib's;
    importing both in one process fails, so grpcio clients always run on their own.
    """
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
