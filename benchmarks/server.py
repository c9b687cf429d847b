"""The server's own cost: BlazeRPC against a hand-written grpclib servicer doing the same
work (baseline_server.py), in the same run.

    python benchmarks/server.py [--rounds 5] [--seconds 5] [--loop asyncio|uvloop]

Scenarios: small unary calls at 1 and 64 in flight (BlazeRPC with batching off and on),
a 4 MiB float32 tensor echo, and a streaming model (100 messages per call). Each
server runs pinned to CPU 0 and the load generator (blazerpc.bench's closed loop, one
process) to CPU 1 when the machine has two. Per round, every server is started (fresh
processes each round) and each scenario loads them one after the other, in an order
rotated by round and scenario; each figure is reported as the median over rounds of
its same-round ratio to the baseline. Besides requests per
second, the server's CPU time per call (user + system, every thread, over the
measured window) is reported: the load generator is one Python process and can be the
bottleneck, while CPU per call measures the server's own work whatever limits the
throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _harness import (
    HERE,
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

MiB = 1024 * 1024


def _score_request() -> bytes:  # ScoreRequest{x: [1.0, 2.0, 3.0, 4.0]}: packed doubles
    body = struct.pack("<4d", 1.0, 2.0, 3.0, 4.0)
    return bytes([0x0A, len(body)]) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _echo_request() -> bytes:  # EchoRequest{x: TensorProto{shape: [1M], dtype: float32, data: 4 MiB}}
    data = np.arange(MiB, dtype=np.float32).tobytes()
    shape = _varint(MiB)
    tensor = b"\x0a" + _varint(len(shape)) + shape + b"\x12\x07float32" + b"\x1a" + _varint(len(data)) + data
    return b"\x0a" + _varint(len(tensor)) + tensor


@dataclass(frozen=True)
class Scenario:
    name: str
    rpc: str
    payload: bytes
    concurrency: int
    streaming: bool = False
    #: Request bytes, for the MB/s figure of the tensor echo.
    megabytes: float = 0.0


SCENARIOS = [
    Scenario("unary, 1 in flight", "PredictScore", _score_request(), 1),
    Scenario("unary, 64 in flight", "PredictScore", _score_request(), 64),
    Scenario("4 MiB tensor echo, 2 in flight", "PredictEcho", _echo_request(), 2, megabytes=4.0),
    Scenario("stream of 100, 4 in flight", "PredictCount", b"\x08\x64", 4, streaming=True),
]

#: BlazeRPC with batching on, or serving a sync model, serves the unary scenarios only.
#: "baseline, again" is a second process of the baseline: the control, whose ratio to the
#: baseline shows how far two runs of the same code differ on this machine.
CONTROL = "baseline, again"
SERVERS = ["baseline", CONTROL, "blazerpc", "blazerpc, batching on", "blazerpc, sync model"]
UNARY_ONLY = {"blazerpc, batching on", "blazerpc, sync model"}
#: With --before DIR: BlazeRPC as an earlier checkout in DIR serves it (DIR/.venv/bin/blaze).
BEFORE = "blazerpc, before"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _subprocess_server(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server process listening on ``port`` once it accepts connections; yields its pid."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start") from None
                time.sleep(0.05)
        pin_server(proc.pid)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def start_server(name: str, loop: str, before: Path | None) -> Iterator[tuple[int, int]]:
    """Start server ``name``; yields (pid, port)."""
    port = _free_port()
    if name in ("baseline", CONTROL):
        with _subprocess_server(
            [sys.executable, str(HERE / "baseline_server.py"), str(port), loop], port
        ) as pid:
            yield pid, port
        return
    if name == BEFORE:
        assert before is not None
        command = [
            str(before / ".venv" / "bin" / "blaze"), "serve", f"{HERE / 'apps' / 'server_app.py'}:app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--loop", loop,
            "--log-level", "warning",
        ]  # fmt: skip
        with _subprocess_server(command, port, {"BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}) as pid:
            yield pid, port
        return
    env = {
        "BENCH_BATCHING": "on" if name == "blazerpc, batching on" else "off",
        "BENCH_SYNC": "1" if name == "blazerpc, sync model" else "0",
        "BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    target = f"{HERE / 'apps' / 'server_app.py'}:app"
    with serve_process(target, "--no-access-log", "--loop", loop, env=env, cwd=HERE) as served:
        pin_server(served.process.pid)
        yield served.process.pid, served.port


def run_round(servers: list[str], round_index: int, args: argparse.Namespace) -> dict[tuple[str, str], dict]:
    """Every server up at once (idle but for the one being loaded); each scenario measures
    them back to back, in an order rotated by round and scenario, so that what else the
    machine does drifts as little as possible between the figures a ratio compares."""
    results = {}
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(start_server(name, args.loop, args.before)) for name in servers}
        for k, scenario in enumerate(args.scenarios):
            for name in rotated(servers, round_index + k):
                if name in UNARY_ONLY and scenario.rpc != "PredictScore":
                    continue
                pid, port = running[name]
                target = Target(
                    "127.0.0.1", port, f"/blazerpc.InferenceService/{scenario.rpc}", scenario.payload,
                    scenario.streaming, timeout=60,
                )  # fmt: skip
                result = measure(
                    target, scenario.concurrency, args.seconds, warmup=args.warmup, server_pid=pid,
                    megabytes_per_call=scenario.megabytes,
                )  # fmt: skip
                results[name, scenario.name] = result
                line = f"round {round_index + 1} {name:<22} {scenario.name:<32} {json.dumps(result)}"
                print(line, file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--servers", nargs="+", default=SERVERS, choices=[*SERVERS, BEFORE])
    parser.add_argument(
        "--scenarios", nargs="+", default=[s.name for s in SCENARIOS], choices=[s.name for s in SCENARIOS],
        help="scenarios to run (all by default)",
    )  # fmt: skip
    parser.add_argument(
        "--before", type=Path, help="also serve with the BlazeRPC of this earlier checkout (DIR/.venv)"
    )
    args = parser.parse_args()
    args.scenarios = [s for s in SCENARIOS if s.name in args.scenarios]
    if args.before is not None and BEFORE not in args.servers:
        args.servers = [*args.servers, BEFORE]
    pin_load_generator()
    rounds = [run_round(args.servers, r, args) for r in range(args.rounds)]
    report(rounds, args)


def report(rounds: list[dict[tuple[str, str], dict]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rounds} rounds, {args.seconds:g} s per measurement after {args.warmup:g} s of warm-up, "
        f"{args.loop} event loop in both servers. 'x baseline': the median over rounds of the "
        "same-round ratio to the baseline.\n"
    )
    print(
        "| scenario | server | req/s | x baseline | p50 ms | x baseline | server CPU µs/call | x baseline "
        "| throughput | x baseline | errors |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for scenario in args.scenarios:
        s = scenario.name
        key = "mb_per_s" if scenario.megabytes else "messages_per_s" if scenario.streaming else "rps"
        unit = "MB/s" if scenario.megabytes else "msg/s" if scenario.streaming else "req/s"
        base = ("baseline", s)
        for name in args.servers:
            config = (name, s)
            if config not in rounds[0]:
                continue

            def x(key: str, config: tuple[str, str] = config, base: tuple[str, str] = base) -> str:
                return "" if config == base else f"{median_ratio(rounds, config, base, key):.3f}"

            errors = sum(sum(r[config]["errors"].values()) for r in rounds)
            cells = [
                s,
                name,
                f"{median(rounds, config, 'rps'):.0f}",
                x("rps"),
                f"{median(rounds, config, 'p50_ms'):.2f}",
                x("p50_ms"),
                f"{median(rounds, config, 'cpu_us_per_call'):.0f}",
                x("cpu_us_per_call"),
                f"{median(rounds, config, key):.0f} {unit}",
                x(key),
                str(errors),
            ]
            print("| " + " | ".join(cells) + " |")
    if BEFORE in args.servers:
        print(f"\n'{BEFORE}': the same server from {args.before}.")
    print("\nPer round, BlazeRPC (batching off) / baseline:")
    for scenario in args.scenarios:
        key = "mb_per_s" if scenario.megabytes else "messages_per_s" if scenario.streaming else "rps"
        ours, base = ("blazerpc", scenario.name), ("baseline", scenario.name)
        print(
            f"- {scenario.name}: throughput {ratios(rounds, ours, base, key)}; "
            f"p50 {ratios(rounds, ours, base, 'p50_ms')}; "
            f"CPU/call {ratios(rounds, ours, base, 'cpu_us_per_call')}"
        )
    if CONTROL in args.servers:
        print(f"\nPer round, the control ({CONTROL}) / baseline:")
        for scenario in args.scenarios:
            key = "mb_per_s" if scenario.megabytes else "messages_per_s" if scenario.streaming else "rps"
            control, base = (CONTROL, scenario.name), ("baseline", scenario.name)
            print(
                f"- {scenario.name}: throughput {ratios(rounds, control, base, key)}; "
                f"p50 {ratios(rounds, control, base, 'p50_ms')}"
            )


if __name__ == "__main__":
    main()
