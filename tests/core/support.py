"""Test support: app targets and a grpclib client that builds its messages from the app's
own schema. Importable from tests as `support` (pytest puts tests/core on sys.path)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
QUICKSTART = ROOT / "examples" / "quickstart" / "app.py"


def app_target(name: str) -> str:
    """The `blaze serve` target of tests/core/apps/<name>.py."""
    return f"{APPS / name}.py:app"


class Client:
    """Calls a served app with grpclib, using message classes from the app's own schema."""

    def __init__(self, app_module: ModuleType, proc: ServeProcess) -> None:
        self.schema = app_module.app.schema()
        self.proc = proc

    def method(self, model: str) -> Any:
        return next(m for m in self.schema.methods if m.model == model)

    def request(self, model: str, **fields: Any) -> Any:
        return self.schema.classes[self.method(model).request](**fields)

    def channel(self, **kwargs: Any) -> Channel:
        return Channel(self.proc.host, self.proc.port, **kwargs)

    async def call(self, model: str, *, timeout: float = 10, **fields: Any) -> Any:
        m = self.method(model)
        channel = self.channel()
        try:
            classes = self.schema.classes
            rpc = UnaryUnaryMethod(channel, m.path, classes[m.request], classes[m.response])
            return await rpc(self.request(model, **fields), timeout=timeout)
        finally:
            channel.close()

    async def stream(self, model: str, *, timeout: float = 10, **fields: Any) -> list[Any]:
        m = self.method(model)
        channel = self.channel()
        try:
            classes = self.schema.classes
            rpc = UnaryStreamMethod(channel, m.path, classes[m.request], classes[m.response])
            return list(await rpc(self.request(model, **fields), timeout=timeout))
        finally:
            channel.close()

    async def raw(
        self, path: str, payload: bytes, *, timeout: float = 10
    ) -> tuple[Status, str | None, list[bytes]]:
        """Send raw bytes as the request to ``path``: (status, message, raw replies)."""
        channel = self.channel(codec=BlazeCodec())
        replies: list[bytes] = []
        try:
            async with channel.request(
                path, Cardinality.UNARY_STREAM, RawMessage, RawMessage, timeout=timeout
            ) as stream:
                await stream.send_message(payload, end=True)
                async for reply in stream:
                    replies.append(reply)
            return Status.OK, None, replies
        except GRPCError as exc:
            return exc.status, exc.message, replies
        finally:
            channel.close()


def load_app_module(name: str) -> ModuleType:
    """Import tests/core/apps/<name>.py (for its schema's message classes)."""
    return importlib.import_module(f"apps.{name}")
