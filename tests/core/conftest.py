"""Shared fixtures: real `blaze serve` processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import QUICKSTART, Client, app_target, load_app_module

from blazerpc.testing import ServeProcess, serve_process


@pytest.fixture(scope="module")
def quickstart_server() -> Iterator[ServeProcess]:
    with serve_process(f"{QUICKSTART}:app") as proc:
        yield proc


@pytest.fixture(scope="module")
def streaming_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("streaming")) as proc:
        yield proc


@pytest.fixture(scope="module")
def streaming(streaming_server: ServeProcess) -> Client:
    return Client(load_app_module("streaming"), streaming_server)
