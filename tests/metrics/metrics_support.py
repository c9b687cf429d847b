"""Scraping /metrics and calling the test apps (importable as `metrics_support`)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod
from prometheus_client.parser import text_string_to_metric_families

from blazerpc.testing import ServeProcess
from common import load_app_module

APPS = Path(__file__).resolve().parent / "metrics_apps"
TOKEN = {"authorization": "Bearer test"}


def app_target(name: str) -> str:
    return f"{APPS / name}.py:app"


def load_app(name: str) -> ModuleType:
    """Import metrics_apps/<name>.py once (tests/common.py's loader)."""
    return load_app_module(APPS / f"{name}.py")


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """A scrape: ``samples["blazerpc_requests_total", {"model": "score", ...}]``."""

    def get_value(self, name: str, **labels: str) -> float | None:
        return self.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        found = self.get_value(name, **labels)
        assert found is not None, f"no sample {name}{labels}; have: {sorted(k[0] for k in self)[:50]}"
        return found

    def matching(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        want = set(labels.items())
        return {k[1]: v for k, v in self.items() if k[0] == name and want <= set(k[1])}


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """GET /metrics and parse it with prometheus_client's own parser."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def metrics_port(proc: ServeProcess) -> int:
    """The /metrics port a `blaze serve` logged."""
    return int(next(e["metrics_port"] for e in list(proc.logs) if "metrics_port" in e))


class Caller:
    """Calls the models of an app module over one grpclib channel."""

    def __init__(self, module: ModuleType, host: str, port: int) -> None:
        self.schema = module.app.schema()
        self.channel = Channel(host, port)

    def _method(self, model: str) -> Any:
        return next(m for m in self.schema.methods if m.model == model)

    async def call(self, model: str, metadata: Mapping[str, str] | None = TOKEN, **fields: Any) -> Any:
        m = self._method(model)
        classes = self.schema.classes
        rpc = UnaryUnaryMethod(self.channel, m.path, classes[m.request], classes[m.response])
        return await rpc(classes[m.request](**fields), timeout=30, metadata=metadata)

    async def stream(
        self, model: str, metadata: Mapping[str, str] | None = TOKEN, **fields: Any
    ) -> list[Any]:
        m = self._method(model)
        classes = self.schema.classes
        rpc = UnaryStreamMethod(self.channel, m.path, classes[m.request], classes[m.response])
        return list(await rpc(classes[m.request](**fields), timeout=30, metadata=metadata))

    def close(self) -> None:
        self.channel.close()
