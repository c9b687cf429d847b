"""`blaze serve --reload` survives an app that cannot start: it logs the error, keeps
watching, and serves again once the file is fixed (as uvicorn's reloader does)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blazerpc import SyncClient
from blazerpc.testing import blaze_command

GOOD = """
from blazerpc import BlazeApp

app = BlazeApp()


@app.model("tag")
def tag(x: int) -> str:
    return "{tag}"
"""
BROKEN = GOOD.replace("return", "return (")  # a SyntaxError


class Reloading:
    """A `blaze serve --reload` subprocess and its JSON log."""

    def __init__(self, target: str) -> None:
        command = [*blaze_command(), "serve", target, "--reload", "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--log-format", "json", "--grace-period", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.logs: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("{"):
                self.logs.append(json.loads(line))

    def wait_for(self, match: Callable[[dict[str, Any]], bool], after: int = 0) -> dict[str, Any]:
        """The first log entry from index ``after`` on that matches; the process must stay up."""
        deadline = time.monotonic() + 60
        while True:
            found = next((e for e in self.logs[after:] if match(e)), None)
            if found is not None:
                return found
            assert self.process.poll() is None, f"blaze serve --reload exited: {self.logs}"
            assert time.monotonic() < deadline, f"no such log line in {self.logs}"
            time.sleep(0.05)


def _event(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: str(e.get("event", "")).startswith(prefix)


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    return tmp_path / "tagged.py"


@pytest.fixture
def reloading(app_file: Path) -> Iterator[Reloading]:
    app_file.write_text(BROKEN)
    proc = Reloading(f"{app_file}:app")
    try:
        yield proc
    finally:
        proc.process.send_signal(signal.SIGTERM)
        proc.process.wait(30)


def _fix(proc: Reloading, app_file: Path, tag: str) -> str:
    """Write a working app; returns what the server it reloads into answers."""
    mark = len(proc.logs)
    app_file.write_text(GOOD.format(tag=tag))
    proc.wait_for(_event("Worker 1/1 serving"), after=mark)
    port = proc.wait_for(_event("Starting a worker"))["port"]
    with SyncClient(f"127.0.0.1:{port}", timeout=10) as client:
        return str(client.predict("tag", x=1))


def _break(proc: Reloading, app_file: Path) -> None:
    mark = len(proc.logs)
    app_file.write_text(BROKEN)
    error = proc.wait_for(_event("cannot import"), after=mark)
    assert "SyntaxError" in error["event"]
    assert "tagged.py" in error["event"]
    proc.wait_for(_event("worker 1 did not start (exit code 1); waiting for a change"), after=mark)


def test_an_app_broken_at_start_serves_once_fixed(reloading: Reloading, app_file: Path) -> None:
    error = reloading.wait_for(_event("cannot import"))
    assert "SyntaxError" in error["event"]
    reloading.wait_for(_event("worker 1 did not start (exit code 1); waiting for a change to start again"))
    assert reloading.process.poll() is None
    assert _fix(reloading, app_file, "first") == "first"


def test_breaking_and_fixing_again_and_again(reloading: Reloading, app_file: Path) -> None:
    reloading.wait_for(_event("worker 1 did not start"))
    assert _fix(reloading, app_file, "first") == "first"
    _break(reloading, app_file)
    assert reloading.process.poll() is None
    assert _fix(reloading, app_file, "second") == "second"
    reloading.process.send_signal(signal.SIGTERM)
    assert reloading.process.wait(30) == 0
