"""The Open Inference Protocol's cost: the same ``ModelInfer`` request bytes (an FP32
[1, 1] echo) against BlazeRPC's V2 endpoint (blazerpc-oip, batching off and on) and a
hand-written grpclib servicer of V2 with the protocol's own message classes
(oip_baseline_server.py), in the same run, at 1 and 64 calls in flight.

    python benchmarks/oip.py [--rounds 5] [--seconds 5] [--loop asyncio|uvloop]

Needs ``python -m pip install ./core ./plugins/blazerpc-oip``. Method as server.py's:
servers pinned to CPU 0, the load generator to CPU 1, fresh servers each round, every
figure the median over rounds of its same-round ratio to the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator

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
from server import _free_port, _subprocess_server

from blazerpc.testing import serve_process
from blazerpc_oip import Messages

PATH = "/inference.GRPCInferenceService/ModelInfer"
SERVERS = ["baseline", "blazerpc V2, batching off", "blazerpc V2, batching on"]
CONCURRENCY = [1, 64]


def request_bytes() -> bytes:
    m = Messages()
    request = m.ModelInferRequest(model_name="echo", id="b")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    request.raw_input_contents.append(np.ones((1, 1), dtype="<f4").tobytes())
    data: bytes = request.SerializeToString()
    return data


@contextlib.contextmanager
def start(name: str, loop: str) -> Iterator[tuple[int, int]]:
    if name == "baseline":
        port = _free_port()
        with _subprocess_server(
            [sys.executable, str(HERE / "oip_baseline_server.py"), str(port), loop], port
        ) as pid:
            yield pid, port
        return
    env = {"BENCH_BATCHING": "on" if name.endswith("on") else "off", "BLAZERPC_DISABLE_PLUGIN_AUTOLOAD": "1"}
    target = f"{HERE / 'apps' / 'oip_app.py'}:app"
    with serve_process(target, "--no-access-log", "--loop", loop, env=env, cwd=HERE) as served:
        pin_server(served.process.pid)
        yield served.process.pid, served.port


def run_round(index: int, args: argparse.Namespace, payload: bytes) -> dict[tuple[str, int], dict]:
    results = {}
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(start(name, args.loop)) for name in SERVERS}
        for k, concurrency in enumerate(CONCURRENCY):
            for name in rotated(SERVERS, index + k):
                pid, port = running[name]
                target = Target("127.0.0.1", port, PATH, payload, False, timeout=60)
                result = measure(target, concurrency, args.seconds, warmup=args.warmup, server_pid=pid)
                results[name, concurrency] = result
                print(f"round {index + 1} {name:<26} {concurrency:>3} {json.dumps(result)}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    pin_load_generator()
    payload = request_bytes()
    rounds = [run_round(r, args, payload) for r in range(args.rounds)]
    print(
        f"\n{args.rounds} rounds, {args.seconds:g} s per measurement after {args.warmup:g} s of warm-up, "
        f"{args.loop} event loop; 'x baseline': the median over rounds of the same-round ratio.\n"
    )
    print(
        "| in flight | server | req/s | x baseline | p50 ms | x baseline | server CPU µs/call | x baseline "
        "| errors |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for c in CONCURRENCY:
        base = ("baseline", c)
        for name in SERVERS:
            config = (name, c)

            def x(key: str, config: tuple[str, int] = config, base: tuple[str, int] = base) -> str:
                return "" if config == base else f"{median_ratio(rounds, config, base, key):.3f}"

            errors = sum(sum(r[config]["errors"].values()) for r in rounds)
            cells = [
                str(c), name, f"{median(rounds, config, 'rps'):.0f}", x("rps"),
                f"{median(rounds, config, 'p50_ms'):.2f}", x("p50_ms"),
                f"{median(rounds, config, 'cpu_us_per_call'):.0f}", x("cpu_us_per_call"), str(errors),
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
    print("\nPer round, blazerpc V2 batching off / baseline:")
    for c in CONCURRENCY:
        ours, base = ("blazerpc V2, batching off", c), ("baseline", c)
        rps, p50 = ratios(rounds, ours, base, "rps"), ratios(rounds, ours, base, "p50_ms")
        print(f"- {c} in flight: req/s {rps}; p50 {p50}")


if __name__ == "__main__":
    main()
