"""What every benchmark here shares: servers pinned to CPU 0, the load generator (the
closed loop of ``blaze bench``) on CPU 1, the server's CPU time over the measured
window, and figures reported as medians over rounds of same-round ratios."""

from __future__ import annotations

import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core" / "src"))

from blazerpc.bench._loop import Target  # noqa: E402
from blazerpc.bench._stats import summarize  # noqa: E402
from blazerpc.bench._workers import LoadProcesses  # noqa: E402

TWO_CPUS = (os.cpu_count() or 1) > 1
#: ScoreRequest{x: [1.0]} (packed doubles), for the apps' `score` models.
SCORE_REQUEST = bytes([0x0A, 8]) + struct.pack("<d", 1.0)

__all__ = [
    "SCORE_REQUEST",
    "TWO_CPUS",
    "Target",
    "cpu_seconds",
    "measure",
    "median",
    "median_ratio",
    "pin_load_generator",
    "pin_server",
    "ratios",
    "rotated",
]


def pin_load_generator() -> None:
    """This process (and the load processes it starts) on CPU 1."""
    if TWO_CPUS:
        os.sched_setaffinity(0, {1})


def pin_server(pid: int) -> None:
    """Every thread of the server ``pid`` on CPU 0."""
    if TWO_CPUS:
        subprocess.run(["taskset", "-apc", "0", str(pid)], check=True, capture_output=True)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (every thread, user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    target: Target, concurrency: int, seconds: float, *, warmup: float = 1.0, server_pid: int | None = None,
    megabytes_per_call: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """One closed-loop measurement: ``concurrency`` callers for ``warmup + seconds``;
    the calls that end in the last ``seconds`` are counted."""
    with LoadProcesses(target, 1) as load:
        start = time.perf_counter() + 0.2 + warmup
        end = start + seconds
        load.start_level([concurrency], start, end)
        time.sleep(max(0.0, start - time.perf_counter()))
        cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        time.sleep(max(0.0, end - time.perf_counter()))
        cpu_after = cpu_seconds(server_pid) if server_pid else 0.0
        (sample,) = load.results()
    level = summarize([sample], concurrency=concurrency, processes=1, seconds=seconds, streaming=True)
    calls = len(sample.latencies)
    nan = float("nan")
    result = {
        "calls": calls,
        "rps": level.requests_per_second,
        # blaze bench's own percentiles (nearest rank), so the figures read the same
        "p50_ms": nan if level.p50_ms is None else level.p50_ms,
        "p99_ms": nan if level.p99_ms is None else level.p99_ms,
        "messages_per_s": level.messages_per_second,
        "mb_per_s": calls * megabytes_per_call / seconds,
        "errors": level.errors,
    }
    if server_pid:
        result["cpu_us_per_call"] = (cpu_after - cpu_before) / calls * 1e6 if calls else nan
    return result


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated by the round: no configuration always runs first."""
    k = round_index % len(names)
    return [*names[k:], *names[:k]]


#: One dict per round: configuration (a name, or a (server, scenario) pair) -> its figures.
Rounds = Sequence[Mapping[Hashable, Mapping[str, Any]]]


def median(rounds: Rounds, config: Hashable, key: str) -> float:
    return statistics.median(r[config][key] for r in rounds)


def median_ratio(rounds: Rounds, config: Hashable, base: Hashable, key: str) -> float:
    """The median over rounds of ``config``'s figure over ``base``'s in the same round."""
    return statistics.median(r[config][key] / r[base][key] for r in rounds)


def ratios(rounds: Rounds, config: Hashable, base: Hashable, key: str) -> str:
    """Every round's ratio, for the record."""
    return ", ".join(f"{r[config][key] / r[base][key]:.3f}" for r in rounds)
