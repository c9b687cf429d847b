"""Helpers every test folder shares (tests/core and the plugins' folders): waiting for a
condition another thread or task sets, a gate that holds a model, importing an app file.

Importable as ``common``: tests/conftest.py puts this folder on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


async def wait_until(condition: Callable[[], Any], timeout: float = 10, interval: float = 0.002) -> Any:
    """Poll a condition set by another thread, task or process (no fixed sleeps); returns
    its first true value, fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(interval)
    return result


class Gate:
    """Blocks the model's first call until released, so that other requests queue.

    Call it from the model (``gate()``); ``entered`` is set once a call waits at it,
    ``release.set()`` lets it and every later call through.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *_: Any) -> None:
        if not self.release.is_set():
            self.entered.set()
            assert self.release.wait(30), "the gate was never released"


def load_app_module(path: Path) -> ModuleType:
    """Import an app file (for its schema, or the objects it built), once: later calls
    with the same path return the same module."""
    path = Path(path).resolve()
    name = f"_test_app_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
