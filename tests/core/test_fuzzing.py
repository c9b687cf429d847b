"""Robustness of a real `blaze serve` process (issue 6): fuzzed request bytes.

The fuzz test builds requests for every model of tests/core/apps/robust_app.py from
hypothesis-drawn values, mutates their bytes (bit flips, truncations, insertions,
corrupted tags, huge length prefixes inside the message, duplicated fields, broken gRPC
frames, or random bytes) and sends each result to every method, so every method also
receives valid messages of the other methods' types. Every answer must be a proper gRPC
status; an OK answer must be what the model computes from the request as protobuf
parses it; INTERNAL only when the model itself raised on what it was given.
Helpers: robust_support.py (bytes, wire format, expected answers), robust_fuzz.py (cases)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from grpclib.const import Status
from hypothesis import HealthCheck, given, settings
from robust_fuzz import KINDS, Case, cases, fuzz_once
from robust_support import CLASSES, METHODS, TENSOR, WireField, good_calls, varint

from blazerpc.testing import ServeProcess


async def test_good_call_to_every_method(robust_server: ServeProcess) -> None:
    problems = await good_calls(robust_server)
    assert not problems, "\n".join(problems)


def test_random_and_mutated_request_bytes_get_a_proper_status_from_every_method(
    robust_server: ServeProcess,
) -> None:
    # Hypothesis runs a sync function per example: each example runs its own event loop.
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(case=cases())
    def run(case: Case) -> None:
        kinds[case.kind.split("-")[0]] += 1
        problems = asyncio.run(fuzz_once(robust_server, case, statuses))
        assert robust_server.process.poll() is None, f"the server died on {case!r}"
        assert not problems, "\n".join(problems)

    run()
    # The fuzzing made every kind of mutation and reached both sides: answers and refusals.
    assert statuses["OK"] > 0
    for method in METHODS:
        assert statuses[f"{method.model}: INVALID_ARGUMENT"] > 0, statuses
    assert set(kinds) == {k.split("-")[0] for k in KINDS}
    problems = asyncio.run(good_calls(robust_server))
    assert not problems, "\n".join(problems)
    assert robust_server.process.poll() is None


def _tensor_request(extra: bytes) -> bytes:
    """An AnyTensorRequest (int64[1]) whose tensor message ends with ``extra``."""
    body = CLASSES[TENSOR](shape=[1], dtype="int64", data=bytes(8)).SerializeToString()
    return WireField(1, 2, body + extra).encode()


# Cases the fuzzing above found, kept so that each runs every time.
FOUND_BY_FUZZING = [
    pytest.param(
        Case(
            "scalars", "frame-short", b"\n\x01a", b"\0\0\0\0\x04\n\x01a", Status.INVALID_ARGUMENT, b"\n\x01a"
        ),
        id="frame-header-longer-than-the-stream",
    ),
    pytest.param(
        Case("scalars", "frame-cut", b"", b"\0\0\0", Status.INVALID_ARGUMENT, b"\n\x01a"),
        id="stream-ends-inside-the-frame-header",
    ),
    pytest.param(
        Case("any_tensor", "tag", _tensor_request(b"\0\x01"), base=_tensor_request(b"")),
        id="field-number-0-inside-a-tensor",
    ),
    pytest.param(
        Case("any_tensor", "tag", _tensor_request(varint(2**29 << 3) + b"\x01"), base=_tensor_request(b"")),
        id="field-number-2**29-inside-a-tensor",
    ),
]


@pytest.mark.parametrize("case", FOUND_BY_FUZZING)
async def test_requests_found_by_fuzzing(robust_server: ServeProcess, case: Case) -> None:
    problems = await fuzz_once(robust_server, case, Counter())
    assert not problems, "\n".join(problems)
    assert robust_server.process.poll() is None
