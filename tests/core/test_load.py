"""Robustness of a real `blaze serve` process (issue 6) under load.

The load test sends 20,000 calls from 64 concurrent clients, unary and streaming with
1% bad requests, and checks every answer, that none is lost, and the server's memory."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from robust_support import (
    CLASSES,
    METHOD,
    NUMPY_KINDS,
    SERVICE,
    Answer,
    good_calls,
    replies_problem,
    send,
    tensor,
)

from blazerpc.server._service import BlazeCodec
from blazerpc.testing import ServeProcess
from blazerpc.wire._schema import MethodSchema

N_CLIENTS = 64
N_CALLS = 20_000
N_WARMUP = 4_000
LOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoadCall:
    method: MethodSchema | None  # None: an unknown method
    payload: bytes
    status: Status  # what it must get
    want: list[list[Any]] | str  # OK: the messages' field values; else: part of the message

    @property
    def path(self) -> str:
        return f"{SERVICE}/PredictNope" if self.method is None else self.method.path

    def problem(self, answer: Answer) -> str | None:
        if answer.status is not self.status:
            got = answer.status.name if answer.status else answer.error
            return f"{got} {answer.message!r}, expected {self.status.name}"
        if isinstance(self.want, str):
            return None if self.want in (answer.message or "") else f"{answer.message!r} lacks {self.want!r}"
        assert self.method is not None
        return replies_problem(self.method, answer.replies, self.want)


def good(model: str, want: list[list[Any]], **fields: Any) -> LoadCall:
    method = METHOD[model]
    return LoadCall(method, CLASSES[method.request](**fields).SerializeToString(), Status.OK, want)


def bad(model: str | None, status: Status, message: str, payload: bytes = b"", **fields: Any) -> LoadCall:
    method = None if model is None else METHOD[model]
    if fields:
        assert method is not None
        payload = CLASSES[method.request](**fields).SerializeToString()
    return LoadCall(method, payload, status, message)


def is_bad(i: int) -> bool:
    return i % 100 == 37  # 1% of the calls


def load_call(i: int) -> LoadCall:
    """Call number ``i``: its request and its answer, both unique to ``i``."""
    if is_bad(i):
        return bad_call(i)
    slot = i % 20
    if slot < 4:
        values = [f"t{i}", i * 1_000_003 - 2**40, i / 8, i % 3 == 0, i.to_bytes(3, "big"), f"l{i}"]
        names = ["text", "number", "ratio", "flag", "blob", "label"]
        return good("scalars", [values], **dict(zip(names, values, strict=True)))
    if slot < 7:
        return good("shout", [[f"CALL {i} OK"]], text=f"call {i} ok")
    if slot < 10:
        words = [str(i), "x" * (i % 4), "é" * (i % 3)]
        return good("lengths", [[[len(str(i)), i % 4, i % 3]]], words=words)
    if slot < 13:
        x = np.arange(4 * (1 + i % 3), dtype=np.float32).reshape(-1, 4) + i % 1000
        return good("scale", [[x * 2]], x=tensor(x, "float32"))
    if slot < 15:
        a = np.arange(6, dtype=np.float32).reshape(2, 3) + i % 1000
        b = np.full((2, 3), i % 7, dtype=np.float32)
        return good("add", [[a + b]], a=tensor(a, "float32"), b=tensor(b, "float32"))
    if slot == 15:
        ints = [i % 256 - 128, i % 30000, i % 256, i, -i, 3 * i, -i * 2**40, i * 2**44]
        floats = [float(i % 2048), i / 4, i / 3]
        small, level = [i % 100, -(i % 100)], i % 50
        names = ["i8", "i16", "u8", "u16", "i32", "u32", "i64", "u64", "f16", "f32", "f64", "b"]
        values = [*ints, *floats, i % 2 == 1]
        want = [[*values, small, [*NUMPY_KINDS, "int8", "int8", "int8"]]]
        return good("numpy_scalars", want, small=small, level=level, **dict(zip(names, values, strict=True)))
    if slot < 18:
        n = i % 6
        return good("count", [[f"w{i}-{k}"] for k in range(n)], n=n, word=f"w{i}-")
    if slot == 18:
        x = np.arange(i % 7, dtype=np.float64) + i
        want = [[x[k : k + 3]] for k in range(0, len(x), 3)]
        return good("chunks", want, x=tensor(x, "float64"), size=3)
    text = f"s{i}"
    return good("spell", [[k, ch] for k, ch in enumerate(text)], text=text)


def bad_call(i: int) -> LoadCall:
    kind = (i // 100) % 6
    if kind == 0:
        return bad(
            "scalars",
            Status.INVALID_ARGUMENT,
            "is not a valid blazerpc.ScalarsRequest",
            b"\xff" + bytes([i % 256]),
        )
    if kind == 1:
        a, b = tensor(np.zeros((2, 3)), "float32"), tensor(np.zeros((3, 3)), "float32")
        message = "dimension 'n' is 2 in field 'a' but 3 in field 'b'"
        return bad("add", Status.INVALID_ARGUMENT, message, a=a, b=b)
    if kind == 2:
        return bad("divide", Status.INTERNAL, "model 'divide' raised ZeroDivisionError", a=i, b=0)
    if kind == 3:
        return bad(None, Status.UNIMPLEMENTED, f"unknown method {SERVICE}/PredictNope", b"\n\x01x")
    if kind == 4:
        message = "field 'x': expected shape float32[batch, 4], got shape [2, 5]"
        return bad("scale", Status.INVALID_ARGUMENT, message, x=tensor(np.zeros((2, 5)), "float32"))
    n = 256 + i % 10
    return bad("count", Status.INVALID_ARGUMENT, f"field 'n': {n} is out of range for uint8", n=n, word="w")


async def run_load(server: ServeProcess, first: int, count: int) -> list[str | None]:
    """Calls ``first`` to ``first + count - 1`` from N_CLIENTS clients, each on its own
    connection; per call, "good" or "bad" when it got what it should, else the problem."""
    outcomes: list[str | None] = [None] * count
    indices = iter(range(count))  # shared: each call is taken by exactly one client

    async def client() -> None:
        channel = Channel(server.host, server.port, codec=BlazeCodec())
        try:
            for k in indices:
                call = load_call(first + k)
                answer = await send(channel, call.path, call.payload, timeout=LOAD_TIMEOUT)
                problem = call.problem(answer)
                outcomes[k] = problem or ("good" if call.status is Status.OK else "bad")
        finally:
            channel.close()

    await asyncio.gather(*(client() for _ in range(N_CLIENTS)))
    return outcomes


def check_outcomes(outcomes: list[str | None], first: int) -> None:
    lost = [first + k for k, o in enumerate(outcomes) if o is None]
    assert lost == [], f"{len(lost)} calls got no outcome"
    wrong = [f"call {first + k}: {o}" for k, o in enumerate(outcomes) if o not in ("good", "bad")]
    assert not wrong, f"{len(wrong)} wrong answers, e.g.:\n" + "\n".join(wrong[:20])
    n_bad = sum(is_bad(first + k) for k in range(len(outcomes)))
    assert Counter(outcomes) == {"good": len(outcomes) - n_bad, "bad": n_bad}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.slow
async def test_load_64_clients_20000_calls_every_answer_right_and_memory_flat(
    robust_server: ServeProcess,
) -> None:
    pid = robust_server.process.pid
    started = time.monotonic()
    check_outcomes(await run_load(robust_server, N_CALLS, N_WARMUP), N_CALLS)
    warm_rss = rss_kib(pid)
    warmed = time.monotonic()
    check_outcomes(await run_load(robust_server, 0, N_CALLS), 0)
    end_rss = rss_kib(pid)
    print(
        f"warm-up {warmed - started:.1f} s, {N_CALLS} calls {time.monotonic() - warmed:.1f} s; "
        f"RSS {warm_rss} KiB after warm-up, {end_rss} KiB at the end"
    )
    assert end_rss <= warm_rss * 1.10, f"RSS grew from {warm_rss} KiB to {end_rss} KiB"
    assert robust_server.process.poll() is None
    problems = await good_calls(robust_server)
    assert not problems, "\n".join(problems)
