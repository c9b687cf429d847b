"""The plugin's ``blazerpc_worker_exit(supervisor, pid)`` under the real `blaze serve
--workers 2`: when a worker exits, its live gauges leave the multiprocess directory at
once (prometheus-client's ``mark_process_dead``), before any scrape would notice."""

from __future__ import annotations

import glob
import os
import signal
import time
from pathlib import Path

from metrics_support import app_target

from blazerpc.testing import ServeProcess, serve_process


def _events(proc: ServeProcess, prefix: str) -> list[dict[str, object]]:
    return [e for e in list(proc.logs) if str(e.get("event", "")).startswith(prefix)]


def _wait_for(
    proc: ServeProcess, prefix: str, count: int = 1, timeout: float = 120
) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while len(found := _events(proc, prefix)) < count:
        assert proc.process.poll() is None, "blaze serve exited"
        assert time.monotonic() < deadline, f"no log line {prefix!r}"
        time.sleep(0.05)
    return found


def _live_files(path: Path, pid: int) -> list[str]:
    return glob.glob(os.path.join(path, f"gauge_live*_{pid}.db"))


def test_a_worker_that_exits_leaves_no_live_gauges_behind(tmp_path: Path) -> None:
    # The operator's directory is kept at exit: what the hooks left in it can be read.
    directory = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    args = ("--workers", "2", "--metrics-port", "0", "--no-access-log")
    with serve_process(app_target("shop"), *args, env=env) as proc:
        second = int(str(_wait_for(proc, "Worker 2/2 serving")[0]["pid"]))
        first = int(str(_wait_for(proc, "Worker 1/2 serving")[0]["pid"]))
        # Every series exists from start-up: each worker has its live-gauge files.
        assert _live_files(directory, first)
        assert _live_files(directory, second)

        os.kill(first, signal.SIGKILL)
        # The supervisor logs this after the worker-exit hooks ran.
        _wait_for(proc, "Worker 1 exited with code -9")
        assert _live_files(directory, first) == []
        assert _live_files(directory, second)
        replacement = int(str(_wait_for(proc, "Worker 1/2 serving", count=2)[-1]["pid"]))
        assert replacement not in (first, second)

        assert proc.stop(signal.SIGTERM) == 0
    for pid in (first, second, replacement):
        assert _live_files(directory, pid) == []
    assert glob.glob(os.path.join(directory, "counter_*.db")), "counters stay (totals never go down)"
    assert [e for e in proc.logs if "hook failed" in str(e.get("event", ""))] == []
