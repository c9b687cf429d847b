"""`blaze bench` reads the server's batch sizes from the metrics plugin."""

from __future__ import annotations

import json
import subprocess

from metrics_support import TOKEN, app_target, metrics_port, scrape

from blazerpc.testing import blaze_command, serve_process


def test_bench_reports_the_servers_mean_batch_size() -> None:
    with serve_process(app_target("shop"), "--metrics-port", "0", "--no-access-log") as proc:
        url = f"http://127.0.0.1:{metrics_port(proc)}/metrics"
        before = scrape(metrics_port(proc))
        done = subprocess.run(
            [
                *blaze_command(), "bench", proc.address, "score", "-d", '{"x": [1.0]}', "-c", "16",
                "--duration", "2", "--warmup", "0.5", "--json", "--metrics-url", url,
                "-H", f"authorization: {TOKEN['authorization']}",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        after = scrape(metrics_port(proc))
    assert done.returncode == 0, done.stderr
    (level,) = json.loads(done.stdout)
    assert level["errors"] == {}
    # 16 calls in flight on a batched model (max_batch_size=16): batches form.
    assert 1.0 < level["mean_batch_size"] <= 16.0
    # The bench's window is part of what the server counted over the whole run.
    rows = after.value("blazerpc_batch_size_sum", model="score") - before.value(
        "blazerpc_batch_size_sum", model="score"
    )
    assert rows >= level["requests_per_second"] * 2 * 0.99


def test_bench_with_an_unreachable_metrics_url_leaves_the_batch_size_out_and_says_so() -> None:
    with serve_process(app_target("shop"), "--metrics-port", "0", "--no-access-log") as proc:
        done = subprocess.run(
            [
                *blaze_command(), "bench", proc.address, "score", "-d", '{"x": [1.0]}', "-c", "2",
                "--duration", "1", "--warmup", "0", "--metrics-url", "http://127.0.0.1:1/metrics",
                "-H", f"authorization: {TOKEN['authorization']}",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[2].split()
    assert "batch" not in header
    assert header[-1] == "errors"
    assert done.stderr == (
        "Note: no batch sizes of model 'score' from --metrics-url http://127.0.0.1:1/metrics "
        "(not reachable, not the metrics plugin's /metrics, or no model calls counted)\n"
    )
