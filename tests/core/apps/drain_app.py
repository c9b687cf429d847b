"""Models for the shutdown tests: sync code that never returns in time."""

from __future__ import annotations

import os
import time

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("hang_sync", max_concurrency=100)
def hang_sync(x: int) -> int:
    """A sync model stuck in its thread: nothing can interrupt it."""
    time.sleep(3600)
    return x


@app.model("pid")
def pid(text: str) -> int:
    return os.getpid()
