"""Helpers of the Open Inference Protocol tests: real V2 clients (tritonclient, kserve)
in environments of their own, called in subprocesses.

The clients pin newer grpcio and protobuf than ours, and grpcio cannot share a process
with grpclib's protos; so each gets a virtualenv, made once and kept under
``.nox/oip-clients/`` of the checkout (``BLAZERPC_OIP_CLIENTS`` moves it), named by
the requirement: a new pin makes a new one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = f"{HERE / 'apps' / 'oip_app.py'}:app"
#: ``blaze serve`` arguments every test server gets: with the metrics plugin installed
#: (the nox session installs it), a free metrics port, so servers can run side by side.
SERVE_ARGS: tuple[str, ...] = ("--metrics-port", "0") if importlib.util.find_spec("blazerpc_metrics") else ()
CLIENTS = {
    "tritonclient": "tritonclient[grpc]==2.73.0",
    "kserve": "kserve==0.21.0",
}


def client_python(name: str) -> Path:
    """The interpreter of the client environment ``name``, made (once) if missing."""
    requirement = CLIENTS[name]
    base = Path(os.environ.get("BLAZERPC_OIP_CLIENTS", ROOT / ".nox" / "oip-clients"))
    key = hashlib.sha256(requirement.encode()).hexdigest()[:10]
    directory = base / f"{name}-{key}"
    python = directory / "bin" / "python"
    done = directory / ".installed"
    if done.exists():
        return python
    shutil.rmtree(directory, ignore_errors=True)
    venv.create(directory, with_pip=True)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"could not install {requirement} into {directory}:\n{result.stderr[-4000:]}")
    done.write_text(requirement)
    return python


def run_client(name: str, script: str, *args: str) -> Any:
    """Run ``clients/<script>`` in the client environment ``name``; its JSON output."""
    result = subprocess.run(
        [str(client_python(name)), str(HERE / "clients" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"{script} failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return json.loads(result.stdout)
