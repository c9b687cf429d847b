"""Metrics benchmark: requests/s with the blazerpc-metrics plugin loaded vs not, same run.

    python -m pip install -e core -e plugins/blazerpc-metrics
    python benchmarks/metrics.py [--rounds 5] [--seconds 5] [--concurrency 64]

The real `blaze serve` runs pinned to CPU 0 and the load generator (`_load.py`) to CPU
1, with 64 concurrent callers on a model that costs next to nothing, so the server's
per-call work is what limits throughput and any cost of the plugin shows in full.
Plugins are chosen per server with the environment: BLAZERPC_DISABLE_PLUGIN_AUTOLOAD=1
(no third-party plugin) or BLAZERPC_PLUGINS=metrics. The access log is off in both, so
the comparison is the plugin alone; a third configuration, access log on without
metrics, shows what core's default access log costs. Configurations are interleaved
within each round, in a rotating order; medians over rounds are reported, with ratios
against no metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core" / "src"))

from blazerpc.testing import serve_process  # noqa: E402

#: name -> (environment, extra `blaze serve` arguments)
CONFIGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "no metrics": ({"BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}, ["--no-access-log"]),
    "metrics": ({"BLAZERPC_PLUGINS": "metrics"}, ["--no-access-log", "--metrics-port", "0"]),
    "access log, no metrics": ({"BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}, []),
}
BASELINE = "no metrics"


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def request_hex() -> str:
    # ScoreRequest{x: [1.0]}: field 1, packed doubles.
    body = struct.pack("<d", 1.0)
    return (bytes([0x0A, len(body)]) + body).hex()


def _requests_counted(proc: object) -> float | None:
    """blazerpc_requests_total{code="OK"} from the server's /metrics, if it has one."""
    port = next((e["metrics_port"] for e in list(proc.logs) if "metrics_port" in e), None)  # type: ignore[attr-defined]
    if port is None:
        return None
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("blazerpc_requests_total{") and 'code="OK"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (every thread, user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(config: str, concurrency: int, seconds: float) -> dict:
    env, args = CONFIGS[config]
    target = f"{HERE / 'apps' / 'metrics_app.py'}:app"
    with serve_process(target, *args, env=env, cwd=HERE) as proc:
        if (os.cpu_count() or 1) > 1:
            subprocess.run(["taskset", "-pc", "0", str(proc.process.pid)], check=True, capture_output=True)
        cpu_before = cpu_seconds(proc.process.pid)
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
        result = json.loads(out.stdout)
        # Server CPU per call: its own work, whatever else shares the machine.
        result["cpu_us_per_call"] = (cpu_seconds(proc.process.pid) - cpu_before) / result["calls"] * 1e6
        # The plugin is really there (and counting) exactly when it should be.
        counted = _requests_counted(proc)
        assert (counted is not None) == (config == "metrics"), (config, counted)
        if counted is not None:
            assert counted >= result["calls"], (counted, result["calls"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    names = list(CONFIGS)
    for r in range(args.rounds):
        # Rotated each round: no configuration always runs first (or after another).
        for config in names[r % len(names) :] + names[: r % len(names)]:
            result = measure(config, args.concurrency, args.seconds)
            results.setdefault(config, []).append(result)
            print(f"round {r + 1} {config:<24} {json.dumps(result)}", file=sys.stderr)

    def med(config: str, key: str) -> float:
        return statistics.median(x[key] for x in results[config])

    base = med(BASELINE, "rps")
    print(
        f"\nMedians of {args.rounds} rounds, {args.seconds:g} s each, {args.concurrency} concurrent "
        "clients; trivial batched model.\n"
    )
    base_cpu = med(BASELINE, "cpu_us_per_call")
    print(
        "| configuration | req/s | x vs no metrics | server CPU µs/call | x vs no metrics "
        "| p50 ms | p99 ms | errors |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for config in CONFIGS:
        errors = sum(sum(x["errors"].values()) for x in results[config])
        rps, cpu = med(config, "rps"), med(config, "cpu_us_per_call")
        print(
            f"| {config} | {rps:.0f} | {rps / base:.3f} | {cpu:.0f} | {cpu / base_cpu:.3f} "
            f"| {med(config, 'p50_ms'):.2f} | {med(config, 'p99_ms'):.2f} | {errors} |"
        )
    # Per-round ratios too: each round's configurations ran back to back.
    pairs = list(zip(results["metrics"], results[BASELINE], strict=True))
    rps_ratios = ", ".join(f"{m['rps'] / b['rps']:.3f}" for m, b in pairs)
    print(f"\nreq/s, metrics / no metrics, per round: {rps_ratios}")
    cpu_ratios = ", ".join(f"{m['cpu_us_per_call'] / b['cpu_us_per_call']:.3f}" for m, b in pairs)
    print(f"server CPU per call, metrics / no metrics, per round: {cpu_ratios}")


if __name__ == "__main__":
    main()
