"""`blaze call` and `blaze bench` given several addresses (or a dns:/// target): real
`blaze serve` replicas on 127.0.0.2 and 127.0.0.3, counted from the servers' side."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import app_target

from blazerpc.testing import ServeProcess, blaze_command, serve_process

HOSTS = ("127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("calls") / "calls"


@pytest.fixture(scope="module")
def replicas(calls: Path) -> Iterator[list[ServeProcess]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                serve_process(
                    app_target("replica_app"),
                    host=host,
                    env={"BLAZERPC_TEST_REPLICA": host, "BLAZERPC_TEST_CALLS": str(calls)},
                )
            )
            for host in HOSTS
        ]


def blaze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def served(calls: Path) -> Counter[str]:
    return (
        Counter(line.split()[0] for line in calls.read_text().splitlines()) if calls.exists() else Counter()
    )


def test_call_takes_several_addresses_separated_by_commas(replicas: list[ServeProcess], calls: Path) -> None:
    before = served(calls)
    answers = set()
    for _ in range(4):
        done = blaze("call", ",".join(p.address for p in replicas), "whoami", "-d", '{"x": 1}')
        assert done.returncode == 0, done.stderr
        answers.add(json.loads(done.stdout)["result"])
    assert answers <= set(HOSTS)
    assert sum((served(calls) - before).values()) == 4


def test_call_takes_a_dns_target(replicas: list[ServeProcess]) -> None:
    # localhost resolves to 127.0.0.1 only here: a replica of its own there.
    with serve_process(app_target("replica_app"), env={"BLAZERPC_TEST_REPLICA": "local"}) as local:
        done = blaze("call", f"dns:///localhost:{local.port}", "whoami", "-d", '{"x": 1}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": "local"}


def test_bench_spreads_its_calls_over_every_address(replicas: list[ServeProcess], calls: Path) -> None:
    before = served(calls)
    done = blaze(
        "bench", ",".join(p.address for p in replicas), "whoami", "-d", '{"x": 1}', "-c", "4",
        "--duration", "1", "--warmup", "0.2", "--processes", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (level,) = json.loads(done.stdout)
    assert level["errors"] == {}
    assert level["mean_batch_size"] is None  # several servers: no one /metrics to read
    counts = served(calls) - before
    total = sum(counts.values())
    assert total >= level["calls"]
    for host in HOSTS:
        assert abs(counts[host] - total / 2) <= 0.15 * total / 2, counts


def test_bench_over_an_address_that_refuses_fails_with_the_reason(replicas: list[ServeProcess]) -> None:
    done = blaze("bench", "127.0.0.1:1,127.0.0.5:1", "whoami", "-d", '{"x": 1}', "--duration", "1")
    assert done.returncode == 1
    assert "cannot reach 127.0.0.1:1,127.0.0.5:1: " in done.stderr
