"""`blaze serve` listens on $PORT when no --port is given, as Knative asks of a container."""

from __future__ import annotations

import json
import os
import socket
import subprocess

from support import QUICKSTART, spawned

from blazerpc.testing import blaze_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serves(port_env: str, *args: str) -> int:
    """Start blaze serve with PORT=port_env (and args); the port it says it listens on."""
    command = [*blaze_command(), "serve", f"{QUICKSTART}:app", "--host", "127.0.0.1", "--log-format", "json"]
    with spawned([*command, *args], env={"PORT": port_env}) as proc:
        line = proc.wait_for(lambda lines: next((x for x in lines if "Server listening" in x), None))
        port = int(json.loads(line)["port"])
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        assert proc.stop() == 0
    return port


def test_port_environment_variable_is_the_default_port() -> None:
    port = _free_port()
    assert _serves(str(port)) == port


def test_port_option_wins_over_the_environment() -> None:
    port = _free_port()
    assert _serves("1", "--port", str(port)) == port


def test_a_bad_port_variable_is_named() -> None:
    done = subprocess.run(
        [*blaze_command(), "serve", f"{QUICKSTART}:app", "--host", "127.0.0.1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PORT": "http", "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Invalid value for '--port' (env var: 'PORT')" in done.stderr
