"""Batching benchmark: throughput and latency, batching off vs each policy, same run.

    python benchmarks/batching.py [--rounds 5] [--seconds 5]

The model (apps/batching_app.py) costs 5 ms per call plus 0.05 ms per row, spent off
the GIL like a GPU forward pass. The real `blaze serve` is pinned to CPU 0 and the load
generator (blaze bench's closed loop) to CPU 1 when the machine has two. Within each
round every configuration runs, in an order rotated from round to round; each ratio
is the median over rounds of the same-round ratio to batching off.
"""

from __future__ import annotations

import argparse
import json
import sys

from _harness import (
    HERE,
    SCORE_REQUEST,
    Target,
    measure,
    median,
    median_ratio,
    pin_load_generator,
    pin_server,
    ratios,
    rotated,
)

from blazerpc.testing import serve_process

MODES = ["off", "adaptive", "fixed"]
CONCURRENCY = [1, 64]


def run(mode: str, seconds: float) -> dict[int, dict]:
    """Serve with batching `mode`; measure at each concurrency."""
    target = f"{HERE / 'apps' / 'batching_app.py'}:app"
    env = {"BENCH_BATCHING": mode, "BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with serve_process(target, "--no-access-log", env=env, cwd=HERE) as proc:
        pin_server(proc.process.pid)
        load = Target(
            proc.host, proc.port, "/blazerpc.InferenceService/PredictScore", SCORE_REQUEST, False, 60
        )
        return {c: measure(load, c, seconds, server_pid=proc.process.pid) for c in CONCURRENCY}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    pin_load_generator()
    rounds: list[dict[tuple[str, int], dict]] = []
    for r in range(args.rounds):
        this_round = {}
        for mode in rotated(MODES, r):
            for c, result in run(mode, args.seconds).items():
                this_round[mode, c] = result
                print(f"round {r + 1} c={c:<3} {mode:<9} {json.dumps(result)}", file=sys.stderr)
        rounds.append(this_round)

    print(f"\n{args.rounds} rounds, {args.seconds:g} s each; model: 5 ms + 0.05 ms per row.\n")
    print("| clients | batching | req/s | x vs off | p50 ms | p50 vs off | p99 ms | errors |")
    print("|--------:|----------|------:|---------:|-------:|-----------:|-------:|-------:|")
    for c in CONCURRENCY:
        for mode in MODES:
            config, off = (mode, c), ("off", c)
            errors = sum(sum(r[config]["errors"].values()) for r in rounds)
            cells = [
                str(c),
                mode,
                f"{median(rounds, config, 'rps'):.0f}",
                f"{median_ratio(rounds, config, off, 'rps'):.2f}",
                f"{median(rounds, config, 'p50_ms'):.2f}",
                f"{median_ratio(rounds, config, off, 'p50_ms'):.2f}",
                f"{median(rounds, config, 'p99_ms'):.2f}",
                str(errors),
            ]
            print("| " + " | ".join(cells) + " |")
    print(
        "\nPer round, adaptive / off: req/s at 64 clients",
        ratios(rounds, ("adaptive", 64), ("off", 64), "rps"),
    )
    print("Per round, adaptive / off: p50 at 1 client", ratios(rounds, ("adaptive", 1), ("off", 1), "p50_ms"))


if __name__ == "__main__":
    main()
