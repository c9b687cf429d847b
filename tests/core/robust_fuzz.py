"""Fuzz cases for test_fuzzing.py (hypothesis strategies: random and mutated request
bytes and frames) and the check of one answer."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from grpclib.client import Channel
from grpclib.const import Status
from hypothesis import strategies as st
from robust_support import (
    CLASSES,
    MAX_MESSAGE,
    METHOD,
    METHODS,
    PYTHON_SCALARS,
    TENSOR,
    Answer,
    WireField,
    element_type,
    encode_fields,
    expected,
    parse_fields,
    replies_problem,
    send,
    varint,
)

from blazerpc.server._service import BlazeCodec
from blazerpc.testing import ServeProcess
from blazerpc.types import TENSOR_DTYPES, TensorSpec
from blazerpc.wire._schema import FieldSchema, MethodSchema

# --- fuzz cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    source: str  # the model whose request the payload was built from
    kind: str  # the mutation
    payload: bytes  # the request message, as the server will read it
    frame: bytes | None = None  # a hand-made gRPC frame carrying the payload, if any
    frame_status: Status | None = None  # what that frame must get, if it is certain
    base: bytes = b""  # the request before the mutation: sent as well, to the source only

    def __repr__(self) -> str:
        frame = "" if self.frame is None else f", frame header {self.frame[:5]!r}"
        return f"Case({self.source} request {self.base!r}, {self.kind}: {self.payload!r}{frame})"


PROTO_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
}
DTYPES = list(TENSOR_DTYPES)
ODD_DIMS = [-1, -(2**63), 2**31, 2**40, 2**62, 2**63 - 1]
HUGE = [2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, 2**100]
KINDS = [
    "none",
    "random",
    "flip",
    "truncate",
    "insert",
    "delete",
    "tag",
    "length",
    "append_huge",
    "duplicate",
    "frame",
]


def scalar_values(field: FieldSchema, *, wild: bool) -> st.SearchStrategy[Any]:
    """A value that fits the declared type; if ``wild``, often any value of the protobuf type."""
    name, proto = element_type(field), field.wire.proto_type
    if proto in PROTO_INTS:
        full = st.integers(*PROTO_INTS[proto])
        if name in PYTHON_SCALARS:
            return full
        info = np.iinfo(name)
        fits = st.integers(int(info.min), int(info.max))
        return st.one_of(fits, full) if wild else fits
    if proto == F.TYPE_FLOAT:
        single = st.floats(width=32)
        if name != "float16":
            return single
        half = st.floats(-65504, 65504, width=32)
        return st.one_of(half, single) if wild else half
    return {
        F.TYPE_DOUBLE: st.floats(),
        F.TYPE_BOOL: st.booleans(),
        F.TYPE_STRING: st.text(max_size=12),
        F.TYPE_BYTES: st.binary(max_size=12),
    }[proto]


@st.composite
def tensor_fields(draw: st.DrawFn, spec: TensorSpec, sizes: dict[str, int], *, wild: bool) -> dict[str, Any]:
    """A tensor that fits ``spec`` (and the named dims in ``sizes``); if ``wild``, maybe anything."""
    if wild and draw(st.booleans()):
        return {
            "shape": draw(st.lists(st.one_of(st.integers(-2, 5), st.sampled_from(ODD_DIMS)), max_size=4)),
            "dtype": draw(st.one_of(st.sampled_from(DTYPES), st.text(max_size=8))),
            "data": draw(st.binary(max_size=64)),
        }
    dtype = spec.dtype or draw(st.sampled_from(DTYPES))
    if spec.dims is None:
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
    else:
        shape = []
        for dim in spec.dims:
            if isinstance(dim, str) and dim not in sizes:
                sizes[dim] = draw(st.integers(0, 4))
            shape.append(dim if isinstance(dim, int) else sizes[dim])
    size = math.prod(shape) * TENSOR_DTYPES[dtype].itemsize
    if dtype == "bool":  # a bool's byte is 0 or 1; any other is bad input
        data = bytes(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    else:
        data = draw(st.binary(min_size=size, max_size=size))
    return {"shape": shape, "dtype": dtype, "data": data}


@st.composite
def requests(draw: st.DrawFn, method: MethodSchema) -> bytes:
    """A request for ``method`` with drawn values (absent optional fields included): one
    in four may have values that do not fit the declared types."""
    msg = CLASSES[method.request]()
    sizes: dict[str, int] = {}
    wild = draw(st.integers(0, 3)) == 0
    for f in method.inputs:
        if f.wire.optional and draw(st.booleans()):
            continue
        if f.wire.message == TENSOR:
            values = draw(tensor_fields(f.wire.tensor, sizes, wild=wild))
            getattr(msg, f.name).CopyFrom(CLASSES[TENSOR](**values))
        elif f.wire.repeated:
            getattr(msg, f.name).extend(draw(st.lists(scalar_values(f, wild=wild), max_size=5)))
        else:
            setattr(msg, f.name, draw(scalar_values(f, wild=wild)))
    return msg.SerializeToString()


def nested_paths(fields: list[WireField], *, lengths_only: bool) -> list[tuple[int, int | None]]:
    """(top-level index, index inside it or None) of every field, one level deep."""
    paths: list[tuple[int, int | None]] = []
    for i, f in enumerate(fields):
        if not lengths_only or f.wire_type == 2:
            paths.append((i, None))
        inner = parse_fields(f.value) if f.wire_type == 2 else None
        for j, g in enumerate(inner or []):
            if not lengths_only or g.wire_type == 2:
                paths.append((i, j))
    return paths


def replace_at(fields: list[WireField], path: tuple[int, int | None], **changes: Any) -> bytes:
    i, j = path
    fields = list(fields)
    if j is None:
        fields[i] = dataclasses.replace(fields[i], **changes)
    else:
        inner = parse_fields(fields[i].value)
        assert inner is not None
        inner[j] = dataclasses.replace(inner[j], **changes)
        fields[i] = dataclasses.replace(fields[i], value=encode_fields(inner))
    return encode_fields(fields)


def mutate(draw: st.DrawFn, kind: str, base: bytes) -> bytes | None:
    """``base`` changed by ``kind``; None where that mutation does not apply."""
    n = len(base)
    fields = parse_fields(base) or []
    if kind == "none":
        return base
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "insert":
        at = draw(st.integers(0, n))
        return base[:at] + draw(st.binary(min_size=1, max_size=16)) + base[at:]
    if kind == "append_huge":
        junk = varint(draw(st.integers(1, 20)) << 3 | 2) + varint(draw(st.sampled_from(HUGE)))
        junk += draw(st.binary(max_size=8))
        return base + junk if draw(st.booleans()) else junk + base
    if not n:
        return None
    if kind == "flip":
        buf = bytearray(base)
        for pos, bit in draw(
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=8)
        ):
            buf[pos] ^= 1 << bit
        return bytes(buf)
    if kind == "truncate":
        return base[: draw(st.integers(0, n - 1))]
    if kind == "delete":
        start = draw(st.integers(0, n - 1))
        return base[:start] + base[draw(st.integers(start + 1, n)) :]
    if kind == "duplicate" and fields:
        copy = fields[draw(st.integers(0, len(fields) - 1))]
        at = draw(st.integers(0, len(fields)))
        return encode_fields([*fields[:at], copy, *fields[at:]])
    if kind == "tag" and fields:
        path = draw(st.sampled_from(nested_paths(fields, lengths_only=False)))
        number = draw(st.one_of(st.integers(0, 20), st.sampled_from([2**29 - 1, 2**29, 2**32, 2**61])))
        return replace_at(fields, path, tag=varint(number << 3 | draw(st.integers(0, 7))))
    if kind == "length":
        paths = nested_paths(fields, lengths_only=True)
        if not paths:
            return None
        length = draw(st.one_of(st.sampled_from(HUGE), st.integers(0, 2**64), st.integers(0, 300)))
        return replace_at(fields, draw(st.sampled_from(paths)), length=length)
    return None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    source = draw(st.sampled_from(METHODS))
    base = draw(requests(source))
    kind = draw(st.sampled_from(KINDS))
    if kind == "frame":
        return draw(frames(source, base))
    payload = mutate(draw, kind, base)
    if payload is None:
        kind, payload = "random", draw(st.binary(max_size=200))
    return Case(source.model, kind, payload, base=base)


@st.composite
def frames(draw: st.DrawFn, source: MethodSchema, body: bytes) -> Case:
    """A gRPC frame whose 5-byte header lies about the message, or is cut short."""
    anomaly = draw(st.sampled_from(["compressed", "oversized", "short", "long", "cut"]))
    flag, length, status, payload = 0, len(body), None, body
    if anomaly == "cut":  # the stream ends inside the 5-byte header
        frame = (bytes([0]) + length.to_bytes(4, "big"))[: draw(st.integers(1, 4))]
        return Case(source.model, "frame-cut", b"", frame, Status.INVALID_ARGUMENT, body)
    if anomaly == "compressed":
        flag, status = draw(st.integers(1, 255)), Status.UNIMPLEMENTED
    elif anomaly == "oversized":
        length, status = draw(st.integers(MAX_MESSAGE + 1, 2**32 - 1)), Status.RESOURCE_EXHAUSTED
    elif anomaly == "long" and body:  # the header says less than was sent: the rest is left over
        length = draw(st.integers(0, len(body) - 1))
        payload = body[:length]
    else:
        anomaly = "short"
        length, status = len(body) + draw(st.integers(1, 1000)), Status.INVALID_ARGUMENT
    frame = bytes([flag]) + length.to_bytes(4, "big") + body
    return Case(source.model, f"frame-{anomaly}", payload, frame, status, body)


# --- checking one answer --------------------------------------------------------------------


async def answer_problems(
    method: MethodSchema, case: Case, answer: Answer, *, must_answer: bool
) -> list[str]:
    """What is wrong with ``answer``; ``must_answer``: the request is valid as sent."""
    where = f"{method.model} got {case!r}"
    status, message = answer.status, answer.message or ""
    if status is None:
        return [f"{where}: no gRPC status: {answer.error}"]
    problems = []
    if status is not Status.OK and not message:
        problems.append(f"{where}: {status.name} without a message")
    if case.frame_status is not None and status is not case.frame_status:
        problems.append(f"{where}: {status.name} {message!r}, expected {case.frame_status.name}")
    outcome = await expected(method, case.payload)
    if must_answer and outcome.undecodable is None:
        want = Status.OK if outcome.raised is None else Status.INTERNAL
        if status is not want:
            problems.append(f"{where}: a valid request got {status.name} {message!r}, expected {want.name}")
    if status is Status.OK:
        if outcome.replies is None:
            why = outcome.undecodable or f"the model raises {outcome.raised!r} on it"
            problems.append(f"{where}: answered OK, but {why}")
        else:
            problem = replies_problem(method, answer.replies, outcome.replies)
            if problem:
                problems.append(f"{where}: wrong answer: {problem}")
    elif status is Status.INTERNAL:
        prefix = f"model {method.model!r} raised "
        if not message.startswith(prefix):
            problems.append(f"{where}: INTERNAL that is not the model raising: {message!r}")
        elif outcome.raised is None:
            problems.append(f"{where}: {message!r}, but the model does not raise on it ({outcome})")
        elif message != f"{prefix}{type(outcome.raised).__name__}: {outcome.raised}":
            problems.append(f"{where}: {message!r}, but the model raises {outcome.raised!r}")
    else:
        if answer.replies:
            problems.append(f"{where}: {status.name} after {len(answer.replies)} messages")
        if case.frame_status is None and status is not Status.INVALID_ARGUMENT:
            problems.append(f"{where}: unexpected {status.name} {message!r}")
    return problems


async def fuzz_once(server: ServeProcess, case: Case, statuses: Counter[str]) -> list[str]:
    """Send ``case`` to every method, and its unmutated request to its source, all at
    once; the problems with the answers."""
    source = METHOD[case.source]
    unmutated = Case(case.source, "none", case.base, base=case.base)
    channel = Channel(server.host, server.port, codec=BlazeCodec())
    try:
        answers = await asyncio.gather(
            send(channel, source.path, unmutated.payload),
            *(send(channel, m.path, case.payload, frame=case.frame) for m in METHODS),
        )
    finally:
        channel.close()
    problems = []
    for method, sent, answer in zip(
        (source, *METHODS), (unmutated, *[case] * len(METHODS)), answers, strict=True
    ):
        status = answer.status.name if answer.status else "no status"
        statuses[status] += 1
        statuses[f"{method.model}: {status}"] += 1
        must = sent.kind == "none" and method is source
        problems += await answer_problems(method, sent, answer, must_answer=must)
    return problems
