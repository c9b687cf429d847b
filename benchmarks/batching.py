"""Batching benchmark: throughput and latency, batching off vs each policy, same run.

    python benchmarks/batching.py [--rounds 3] [--seconds 5]

The server (real `blaze serve`) is pinned to CPU 0 and the load generator to CPU 1
when the machine has two. Configurations are interleaved within each round and the
medians over rounds are reported, with ratios against batching off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core" / "src"))

from blazerpc.testing import serve_process  # noqa: E402

MODES = ["off", "adaptive", "fixed"]
CONCURRENCY = [1, 64]


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def request_hex() -> str:
    # ScoreRequest{x: [1.0]}: field 1, packed doubles.
    import struct

    body = struct.pack("<d", 1.0)
    return (bytes([0x0A, len(body)]) + body).hex()


def measure(mode: str, concurrency: int, seconds: float) -> dict:
    env = {"BENCH_BATCHING": mode}
    with serve_process(f"{HERE / 'apps' / 'batching_app.py'}:app", env=env, cwd=HERE) as proc:
        if (os.cpu_count() or 1) > 1:
            subprocess.run(["taskset", "-pc", "0", str(proc.process.pid)], check=True, capture_output=True)
        out = subprocess.run(
            [
                *pin(1),
                sys.executable,
                str(HERE / "_load.py"),
                proc.host,
                str(proc.port),
                "/blazerpc.InferenceService/PredictScore",
                request_hex(),
                str(concurrency),
                str(seconds),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    results: dict[tuple[str, int], list[dict]] = {}
    for r in range(args.rounds):
        for concurrency in CONCURRENCY:
            for mode in MODES:
                result = measure(mode, concurrency, args.seconds)
                results.setdefault((mode, concurrency), []).append(result)
                print(f"round {r + 1} c={concurrency:<3} {mode:<9} {json.dumps(result)}", file=sys.stderr)

    def med(mode: str, c: int, key: str) -> float:
        return statistics.median(x[key] for x in results[(mode, c)])

    print(f"\nMedians of {args.rounds} rounds, {args.seconds:g} s each; model: 5 ms + 0.05 ms/row.\n")
    print("| clients | batching | req/s | x vs off | p50 ms | p50 vs off | p99 ms | errors |")
    print("|--------:|----------|------:|---------:|-------:|-----------:|-------:|-------:|")
    for c in CONCURRENCY:
        for mode in MODES:
            errors = sum(sum(x["errors"].values()) for x in results[(mode, c)])
            rps, p50 = med(mode, c, "rps"), med(mode, c, "p50_ms")
            print(
                f"| {c} | {mode} | {rps:.0f} | {rps / med('off', c, 'rps'):.2f} "
                f"| {p50:.2f} | {p50 / med('off', c, 'p50_ms'):.2f} "
                f"| {med(mode, c, 'p99_ms'):.2f} | {errors} |"
            )


if __name__ == "__main__":
    main()
