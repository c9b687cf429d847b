"""Metrics benchmark: requests/s with the blazerpc-metrics plugin loaded vs not, same run.

    python -m pip install -e core -e plugins/blazerpc-metrics
    python benchmarks/metrics.py [--rounds 7] [--seconds 5] [--concurrency 64]

The real `blaze serve` runs pinned to CPU 0 and the load generator (blaze bench's
closed loop) to CPU 1, with 64 concurrent callers on a model that costs next to
nothing, so the server's per-call work is what limits throughput and any cost of the
plugin shows in full. Plugins are chosen per server with the environment:
BLAZERPC_DISABLE_PLUGIN_AUTOLOAD=1 (no third-party plugin) or BLAZERPC_PLUGINS=metrics.
The access log is off in both, so the comparison is the plugin alone; a third
configuration, access log on without metrics, shows what core's default access log
costs. Configurations run in an order rotated from round to round; each ratio is the
median over rounds of the same-round ratio to no metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

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

from blazerpc.testing import ServeProcess, serve_process

#: name -> (environment, extra `blaze serve` arguments)
CONFIGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "no metrics": ({"BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}, ["--no-access-log"]),
    "metrics": ({"BLAZERPC_PLUGINS": "metrics"}, ["--no-access-log", "--metrics-port", "0"]),
    "access log, no metrics": ({"BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}, []),
}
BASELINE = "no metrics"


def _requests_counted(proc: ServeProcess) -> float | None:
    """blazerpc_requests_total{code="OK"} from the server's /metrics, if it has one."""
    port = next((e["metrics_port"] for e in list(proc.logs) if "metrics_port" in e), None)
    if port is None:
        return None
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("blazerpc_requests_total{") and 'code="OK"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run(config: str, concurrency: int, seconds: float) -> dict:
    env, args = CONFIGS[config]
    target = f"{HERE / 'apps' / 'metrics_app.py'}:app"
    with serve_process(target, *args, env=env, cwd=HERE) as proc:
        pin_server(proc.process.pid)
        load = Target(
            proc.host, proc.port, "/blazerpc.InferenceService/PredictScore", SCORE_REQUEST, False, 60
        )
        result = measure(load, concurrency, seconds, server_pid=proc.process.pid)
        # The plugin is really there (and counting) exactly when it should be.
        counted = _requests_counted(proc)
        assert (counted is not None) == (config == "metrics"), (config, counted)
        if counted is not None:
            assert counted >= result["calls"], (counted, result["calls"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    pin_load_generator()
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        this_round = {}
        for config in rotated(list(CONFIGS), r):
            this_round[config] = run(config, args.concurrency, args.seconds)
            print(f"round {r + 1} {config:<24} {json.dumps(this_round[config])}", file=sys.stderr)
        rounds.append(this_round)

    print(
        f"\n{args.rounds} rounds, {args.seconds:g} s each, {args.concurrency} concurrent clients; "
        "trivial batched model.\n"
    )
    print(
        "| configuration | req/s | x vs no metrics | server CPU µs/call | x vs no metrics "
        "| p50 ms | p99 ms | errors |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for config in CONFIGS:
        errors = sum(sum(r[config]["errors"].values()) for r in rounds)
        cells = [
            config,
            f"{median(rounds, config, 'rps'):.0f}",
            f"{median_ratio(rounds, config, BASELINE, 'rps'):.3f}",
            f"{median(rounds, config, 'cpu_us_per_call'):.0f}",
            f"{median_ratio(rounds, config, BASELINE, 'cpu_us_per_call'):.3f}",
            f"{median(rounds, config, 'p50_ms'):.2f}",
            f"{median(rounds, config, 'p99_ms'):.2f}",
            str(errors),
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"\nreq/s, metrics / no metrics, per round: {ratios(rounds, 'metrics', BASELINE, 'rps')}")
    cpu = ratios(rounds, "metrics", BASELINE, "cpu_us_per_call")
    print(f"server CPU per call, metrics / no metrics, per round: {cpu}")


if __name__ == "__main__":
    main()
