"""Several worker processes, one scrape: the sum over all of them.

`blaze serve --workers N` runs N `blaze serve` processes under a supervising parent,
which calls the plugin's supervisor hooks (blazerpc_supervisor_start before the first
worker, blazerpc_worker_exit for each worker that exits, blazerpc_supervisor_stop at
the end). In the first tests this test process is that parent: it calls the start and
stop hooks and runs two real `blaze serve` processes, which inherit the environment the
hooks set up. The last runs the real `blaze serve --workers 2`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from metrics_support import Caller, app_target, load_app, scrape
from test_metrics import EXPECTED_OUTCOMES, _run_workload, check_workload_metrics

from blazerpc.testing import ServeProcess, serve_process


@pytest.fixture
def supervisor() -> Iterator[SimpleNamespace]:
    from blazerpc_metrics import hooks

    info = SimpleNamespace(host="127.0.0.1", port=0, workers=2, options={"metrics_port": 0})
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    hooks.blazerpc_supervisor_start(supervisor=info)
    supervision = hooks._supervision
    assert supervision is not None
    info.path = supervision.path
    info.port = supervision.server.port
    try:
        yield info
    finally:
        hooks.blazerpc_supervisor_stop(supervisor=info)
    # The directory the plugin made is gone, and the environment is as it was.
    assert not os.path.exists(info.path)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert "BLAZERPC_METRICS_SUPERVISOR" not in os.environ


async def _hang(proc: ServeProcess) -> asyncio.Task[object]:
    caller = Caller(load_app("shop"), proc.host, proc.port)
    task = asyncio.ensure_future(caller.call("wait", x=1))
    task.add_done_callback(lambda _: caller.close())
    return task


async def test_one_scrape_sums_every_worker(supervisor: SimpleNamespace, tmp_path: Path) -> None:
    calls_log = tmp_path / "score-calls"
    env = {"SHOP_SCORE_CALLS": str(calls_log)}
    with (
        serve_process(app_target("shop"), "--metrics-port", "0", env=env) as one,
        serve_process(app_target("shop"), "--metrics-port", "0", env=env) as two,
    ):
        # Workers leave /metrics to the parent: neither opened its own.
        assert not [e for e in one.logs + two.logs if "metrics_port" in e]
        assert await _run_workload(one.host, one.port) == EXPECTED_OUTCOMES
        assert await _run_workload(two.host, two.port) == EXPECTED_OUTCOMES
        samples = scrape(supervisor.port)
        check_workload_metrics(samples, calls_log, times=2)
        assert samples.value("blazerpc_workers") == 2
        assert samples.value("process_resident_memory_bytes") > 0
        assert os.listdir(supervisor.path)  # the workers write their values there

        call = await _hang(one)
        loop = asyncio.get_running_loop()
        for _ in range(10_000):
            now = await loop.run_in_executor(None, scrape, supervisor.port)
            if now.value("blazerpc_requests_in_flight", model="wait") == 1:
                break
        else:
            raise AssertionError("the call never showed as in flight")
        one.stop(signal.SIGKILL)
        await asyncio.gather(call, return_exceptions=True)
        # No worker-exit hook here (test_worker_exit.py has the real supervisor's): the
        # scrape finds the worker gone.
        after = scrape(supervisor.port)
        # The dead worker's gauges left the sum; its counters stayed in it.
        assert after.value("blazerpc_requests_in_flight", model="wait") == 0
        assert after.value("blazerpc_workers") == 1
        check_workload_metrics(after, calls_log, times=2)


async def test_a_worker_that_died_unannounced_leaves_the_gauges_at_the_next_scrape(
    supervisor: SimpleNamespace,
) -> None:
    with serve_process(app_target("shop"), "--metrics-port", "0", "--no-access-log") as one:
        call = await _hang(one)
        loop = asyncio.get_running_loop()
        for _ in range(10_000):
            now = await loop.run_in_executor(None, scrape, supervisor.port)
            if now.value("blazerpc_requests_in_flight", model="wait") == 1:
                break
        else:
            raise AssertionError("the call never showed as in flight")
        one.stop(signal.SIGKILL)  # reaped, but no blazerpc_worker_exit
        await asyncio.gather(call, return_exceptions=True)
        after = scrape(supervisor.port)
        # Its only process is gone, and the gauge with it (not stuck at 1).
        assert after.get_value("blazerpc_requests_in_flight", model="wait") is None
        assert after.value("blazerpc_requests_total", model="wait", method="PredictWait", code="OK") == 0
        assert after.value("blazerpc_workers") == 0


def test_an_operators_directory_is_emptied_and_kept(tmp_path: os.PathLike[str]) -> None:
    from blazerpc_metrics import hooks

    path = os.path.join(tmp_path, "prom")
    os.makedirs(path)
    stale = os.path.join(path, "counter_1.db")
    open(stale, "wb").close()
    info = SimpleNamespace(host="127.0.0.1", port=0, workers=2, options={"metrics_port": 0})
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        hooks.blazerpc_supervisor_start(supervisor=info)
        assert not os.path.exists(stale)  # a previous run's values would be summed in
        hooks.blazerpc_supervisor_stop(supervisor=info)
        assert os.path.isdir(path)
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


# --- the real `blaze serve --workers 2` ---------------------------------------------------


async def test_blaze_serve_workers_one_scrape_sums_both(tmp_path: Path) -> None:
    from metrics_support import metrics_port

    calls_log = tmp_path / "score-calls"
    with serve_process(
        app_target("shop"), "--workers", "2", "--metrics-port", "0", env={"SHOP_SCORE_CALLS": str(calls_log)}
    ) as proc:
        deadline = time.monotonic() + 120
        # The supervisor starts workers one after the other: wait for its line saying
        # the second serves (the log is read by serve_process's thread).
        while not any(str(e.get("event", "")).startswith("Worker 2/2 serving") for e in list(proc.logs)):
            assert proc.process.poll() is None, "blaze serve exited"
            assert time.monotonic() < deadline, "the second worker never started"
            time.sleep(0.05)
        port = metrics_port(proc)

        seen: set[int] = set()
        calls = 0
        for _ in range(200):  # new connections until both workers answered one
            caller = Caller(load_app("shop"), proc.host, proc.port)
            try:
                seen.add((await caller.call("pid", x=0)).result)
                calls += 1
            finally:
                caller.close()
            if len(seen) == 2:
                break
        served_by, pid_calls_made = seen, calls
        assert len(served_by) == 2, "the kernel sent every connection to one worker"
        assert await _run_workload(proc.host, proc.port) == EXPECTED_OUTCOMES
        samples = scrape(port)
        check_workload_metrics(samples, calls_log)
        assert samples.value("blazerpc_workers") == 2
        # Both workers answered pid calls: only the sum over both counts every one.
        pid_calls = samples.value("blazerpc_requests_total", model="pid", method="PredictPid", code="OK")
        assert pid_calls == pid_calls_made
