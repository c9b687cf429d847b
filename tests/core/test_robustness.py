"""Robustness of a real `blaze serve` process (issue 6): fuzzed request bytes and load.

The fuzz test builds requests for every model of tests/core/apps/robust_app.py from
hypothesis-drawn values, mutates their bytes (bit flips, truncations, insertions,
corrupted tags, huge length prefixes inside the message, duplicated fields, broken gRPC
frames, or random bytes) and sends each result to every method, so every method also
receives valid messages of the other methods' types. Every answer must be a proper gRPC
status; an OK answer must be what the model computes from the request as protobuf
parses it; INTERNAL only when the model itself raised on what it was given.

The load test sends 20,000 calls from 64 concurrent clients, unary and streaming with
1% bad requests, and checks every answer, that none is lost, and the server's memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from google.protobuf.message import DecodeError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import APPS, app_target, load_app_module

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess, serve_process
from blazerpc.types import TENSOR_DTYPES, TensorSpec
from blazerpc.wire._codec import split_result
from blazerpc.wire._schema import FieldSchema, MethodSchema

APP = load_app_module(APPS / "robust_app.py")
SCHEMA = APP.app.schema()
METHODS: tuple[MethodSchema, ...] = SCHEMA.methods
METHOD = {m.model: m for m in METHODS}
CLASSES = SCHEMA.classes
TENSOR = "TensorProto"
SERVICE = "/blazerpc.InferenceService"
CALL_TIMEOUT = 10.0
MAX_MESSAGE = 64 * 1024 * 1024  # the server's default max_message_size


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with serve_process(app_target("robust_app")) as proc:
        yield proc


# --- sending raw bytes ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one call got: a gRPC status, or ``error`` when there was no status at all."""

    status: Status | None
    message: str | None
    replies: list[bytes]
    error: str | None = None


async def send(
    channel: Channel, path: str, payload: bytes, *, frame: bytes | None = None, timeout: float = CALL_TIMEOUT
) -> Answer:
    """Send ``payload`` as the request message (or ``frame`` as the raw gRPC frame)."""
    replies: list[bytes] = []
    try:
        async with asyncio.timeout(timeout + 5):  # even if the deadline machinery fails
            async with channel.request(
                path, Cardinality.UNARY_STREAM, RawMessage, RawMessage, timeout=timeout
            ) as stream:
                if frame is None:
                    await stream.send_message(payload, end=True)
                else:
                    await stream.send_request()
                    await stream._stream.send_data(frame, end_stream=True)
                    stream._send_message_done = stream._end_done = True
                async for reply in stream:
                    replies.append(reply)
        return Answer(Status.OK, None, replies)
    except GRPCError as exc:
        return Answer(exc.status, exc.message, replies)
    except TimeoutError:
        return Answer(None, None, replies, f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - anything but a status is what the test reports
        return Answer(None, None, replies, f"{type(exc).__name__}: {exc}")


# --- protobuf wire format, by hand --------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


@dataclass(frozen=True)
class WireField:
    """One field as it is on the wire; ``tag`` and ``length`` override the true ones."""

    number: int
    wire_type: int
    value: bytes  # varint or fixed bytes; the body of a length-delimited field
    tag: bytes | None = None
    length: int | None = None

    def encode(self) -> bytes:
        tag = varint(self.number << 3 | self.wire_type) if self.tag is None else self.tag
        if self.wire_type != 2:
            return tag + self.value
        return tag + varint(len(self.value) if self.length is None else self.length) + self.value


def parse_fields(buf: bytes) -> list[WireField] | None:
    """The fields of a message, or None if ``buf`` is not a plain protobuf message."""
    fields = []
    pos = 0
    try:
        while pos < len(buf):
            tag, pos = read_varint(buf, pos)
            wire_type = tag & 7
            if wire_type == 0:
                end = read_varint(buf, pos)[1]
            elif wire_type in (1, 5):
                end = pos + (8 if wire_type == 1 else 4)
            elif wire_type == 2:
                length, pos = read_varint(buf, pos)
                end = pos + length
            else:
                return None
            if end > len(buf):
                return None
            fields.append(WireField(tag >> 3, wire_type, buf[pos:end]))
            pos = end
    except ValueError:
        return None
    return fields


def encode_fields(fields: list[WireField]) -> bytes:
    return b"".join(f.encode() for f in fields)


# --- what the server should answer --------------------------------------------------------


class Undecodable(Exception):
    """The request is not one the model can be called with."""


PYTHON_SCALARS = ("str", "int", "float", "bool", "bytes")


def element_type(field: FieldSchema) -> str:
    """``int8`` for ``list[int8]`` or ``int8 | None``."""
    return field.wire.describe.removeprefix("list[").removesuffix(" | None").removesuffix("]")


def convert(name: str, value: Any) -> Any:
    if name in PYTHON_SCALARS:
        return value
    kind = np.dtype(name).type
    if name == "float16":
        with np.errstate(over="ignore"):
            if np.isinf(np.float16(value)) and not math.isinf(value):
                raise Undecodable(f"{value} does not fit float16")
    elif issubclass(kind, np.integer):
        info = np.iinfo(kind)
        if not info.min <= value <= info.max:
            raise Undecodable(f"{value} does not fit {name}")
    return kind(value)


def to_array(field: FieldSchema, tensor: Any, sizes: dict[str, int]) -> np.ndarray:
    spec = field.wire.tensor
    assert isinstance(spec, TensorSpec)
    if tensor.dtype not in TENSOR_DTYPES or (spec.dtype and tensor.dtype != spec.dtype):
        raise Undecodable(f"dtype {tensor.dtype!r}")
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise Undecodable(f"negative dimension in {shape}")
    if spec.dims is not None:
        if len(shape) != len(spec.dims):
            raise Undecodable(f"rank of {shape}")
        for got, want in zip(shape, spec.dims, strict=True):
            if got != (want if isinstance(want, int) else sizes.setdefault(want, got)):
                raise Undecodable(f"shape {shape} against {spec.dims}")
    try:
        return np.frombuffer(tensor.data, dtype=TENSOR_DTYPES[tensor.dtype]).reshape(shape)
    except ValueError as exc:
        raise Undecodable(str(exc)) from None


def decode_args(method: MethodSchema, payload: bytes) -> list[Any]:
    """The model's arguments, from the request as protobuf itself parses it."""
    try:
        msg = CLASSES[method.request].FromString(payload)
    except DecodeError as exc:
        raise Undecodable(f"protobuf cannot parse it ({exc})") from None
    sizes: dict[str, int] = {}
    args = []
    for f in method.inputs:
        absent = f.default if f.has_default else None
        if f.wire.message == TENSOR:
            if msg.HasField(f.name):
                args.append(to_array(f, getattr(msg, f.name), sizes))
            elif f.wire.optional:
                args.append(absent)
            else:
                raise Undecodable(f"no {f.name}")
        elif f.wire.repeated:
            args.append([convert(element_type(f), v) for v in getattr(msg, f.name)])
        elif f.wire.optional and not msg.HasField(f.name):
            args.append(absent)
        else:
            args.append(convert(element_type(f), getattr(msg, f.name)))
    return args


@dataclass
class Outcome:
    """What the model does with a request: its messages' field values, or what it raised,
    or why it cannot be called at all."""

    replies: list[list[Any]] | None = None
    raised: Exception | None = None
    undecodable: str | None = None


async def expected(method: MethodSchema, payload: bytes) -> Outcome:
    """Run the app's own model function on ``payload`` as protobuf parses it."""
    try:
        args = decode_args(method, payload)
    except Undecodable as exc:
        return Outcome(undecodable=str(exc))
    func = getattr(APP, method.model)
    try:
        with np.errstate(all="ignore"):
            if method.streaming:
                stream = func(*args)
                items = [x async for x in stream] if inspect.isasyncgen(stream) else list(stream)
            else:
                result = func(*args)
                items = [await result if inspect.isawaitable(result) else result]
    except Exception as exc:  # noqa: BLE001 - what the model raises is the expected answer
        return Outcome(raised=exc)
    return Outcome(replies=[split_result(method, item) for item in items])


def plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def same(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float) and isinstance(got, float):
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    return bool(got == want) and type(got) is type(want)


def field_problem(field: FieldSchema, reply: Any, value: Any) -> str | None:
    if value is None:
        if field.wire.optional and not reply.HasField(field.name):
            return None
        return f"expected no value, got {getattr(reply, field.name)!r}"
    if field.wire.message == TENSOR:
        if not reply.HasField(field.name):
            return "the tensor is missing"
        spec = field.wire.tensor
        assert isinstance(spec, TensorSpec)
        array = np.asarray(value)
        dtype = spec.dtype or array.dtype.name
        array = array.astype(TENSOR_DTYPES[dtype])
        t = getattr(reply, field.name)
        got, want = (list(t.shape), t.dtype, t.data), (list(array.shape), dtype, array.tobytes())
        return None if got == want else f"got {got!r}, expected {want!r}"
    got = getattr(reply, field.name)
    if field.wire.repeated:
        got, want = list(got), [plain(v) for v in value]
    else:
        want = plain(value)
    return None if same(got, want) else f"got {got!r}, expected {want!r}"


def replies_problem(method: MethodSchema, replies: list[bytes], want: list[list[Any]]) -> str | None:
    if len(replies) != len(want):
        return f"{len(replies)} messages, expected {len(want)}"
    for k, (data, values) in enumerate(zip(replies, want, strict=True)):
        try:
            reply = CLASSES[method.response].FromString(data)
        except DecodeError as exc:
            return f"message {k} is not a valid {method.response}: {exc}"
        for f, value in zip(method.outputs, values, strict=True):
            problem = field_problem(f, reply, value)
            if problem:
                return f"message {k}, field {f.name!r}: {problem}"
    return None


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


# --- good requests ----------------------------------------------------------------------------


def tensor(values: Any, dtype: str) -> Any:
    array = np.asarray(values, dtype=TENSOR_DTYPES[dtype])
    return CLASSES[TENSOR](shape=list(array.shape), dtype=dtype, data=array.tobytes())


GOOD: dict[str, dict[str, Any]] = {
    "scalars": {"text": "héllo", "number": -(2**63), "ratio": -0.5, "flag": True, "blob": b"\0\xff"},
    "shout": {"text": "quiet please"},
    "lists": {
        "tag": "t",
        "words": ["a", "bc"],
        "counts": [1, -2, 2**62],
        "weights": [0.25, -1e300],
        "flags": [True, False, False],
        "blobs": [b"x", b""],
    },
    "lengths": {"words": ["", "abc", "héllo"]},
    "optional": {"number": 0, "ratio": 1.5, "blob": b""},
    "divide": {"a": 7, "b": -2},
    "numpy_scalars": {
        "i8": -128,
        "i16": 32767,
        "u8": 255,
        "u16": 65535,
        "i32": -(2**31),
        "u32": 2**32 - 1,
        "i64": 2**63 - 1,
        "u64": 2**64 - 1,
        "f16": 65504.0,
        "f32": -2.5,
        "f64": 1e-300,
        "b": True,
        "small": [-1, 127],
        "level": 9,
    },
    "fixed": {"x": tensor([[1, 2, 3], [4, 5, 6]], "int32")},
    "add": {"a": tensor([[1, 2], [3, 4]], "float32"), "b": tensor([[0.5, 0], [-3, 1e6]], "float32")},
    "scale": {"x": tensor(np.arange(12).reshape(3, 4), "float32")},
    "any_tensor": {"x": tensor([1 + 2j, -3j], "complex64")},
    "maybe_tensor": {"x": tensor([2**62, -1, 0], "int64")},
    "count": {"n": 3, "word": "w"},
    "chunks": {"x": tensor([1.5, 2.5, 3.5, 4.5, 5.5], "float64"), "size": 2},
    "spell": {"text": "abc"},
}

NUMPY_KINDS = ["int8", "int16", "uint8", "uint16", "int32", "uint32", "int64", "uint64"]
NUMPY_KINDS += ["float16", "float32", "float64", "bool"]

# What each good request must get: the messages' field values, written out by hand.
GOOD_ANSWERS: dict[str, list[list[Any]]] = {
    "scalars": [["héllo", -(2**63), -0.5, True, b"\0\xff", "none"]],
    "shout": [["QUIET PLEASE"]],
    "lists": [["t", ["bc", "a"], [2**62, -2, 1], [-1e300, 0.25], [False, False, True], [b"", b"x"]]],
    "lengths": [[[0, 3, 5]]],
    "optional": [[0, None, 1.5, None, b""]],
    "divide": [[-3.5]],
    "numpy_scalars": [
        [
            *(-128, 32767, 255, 65535, -(2**31), 2**32 - 1, 2**63 - 1, 2**64 - 1),
            *(65504.0, -2.5, 1e-300, True),
            [-1, 127],
            [*NUMPY_KINDS, "int8", "int8", "int8"],  # then small's two items and level
        ]
    ],
    "fixed": [[np.array([[1, 4], [2, 5], [3, 6]])]],
    "add": [[np.array([[1.5, 2], [0, 1000004]])]],
    "scale": [[np.arange(12).reshape(3, 4) * 2]],
    "any_tensor": [[np.array([1 + 2j, -3j], dtype=np.complex64)]],
    "maybe_tensor": [[np.array([2**62, -1, 0])]],
    "count": [["w0"], ["w1"], ["w2"]],
    "chunks": [[np.array([1.5, 2.5])], [np.array([3.5, 4.5])], [np.array([5.5])]],
    "spell": [[0, "a"], [1, "b"], [2, "c"]],
}


async def good_calls(server: ServeProcess) -> list[str]:
    """A good call to every method; the problems with the answers."""
    assert sorted(GOOD) == sorted(m.model for m in METHODS)
    channel = Channel(server.host, server.port, codec=BlazeCodec())
    try:
        problems = []
        for method in METHODS:
            payload = CLASSES[method.request](**GOOD[method.model]).SerializeToString()
            answer = await send(channel, method.path, payload)
            if answer.status is not Status.OK:
                problems.append(f"{method.model}: {answer.status} {answer.message or answer.error}")
                continue
            problem = replies_problem(method, answer.replies, GOOD_ANSWERS[method.model])
            if problem:
                problems.append(f"{method.model}: {problem}")
        return problems
    finally:
        channel.close()


async def test_good_call_to_every_method(server: ServeProcess) -> None:
    problems = await good_calls(server)
    assert not problems, "\n".join(problems)


def test_random_and_mutated_request_bytes_get_a_proper_status_from_every_method(server: ServeProcess) -> None:
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
        problems = asyncio.run(fuzz_once(server, case, statuses))
        assert server.process.poll() is None, f"the server died on {case!r}"
        assert not problems, "\n".join(problems)

    run()
    # The fuzzing made every kind of mutation and reached both sides: answers and refusals.
    assert statuses["OK"] > 0
    for method in METHODS:
        assert statuses[f"{method.model}: INVALID_ARGUMENT"] > 0, statuses
    assert set(kinds) == {k.split("-")[0] for k in KINDS}
    problems = asyncio.run(good_calls(server))
    assert not problems, "\n".join(problems)
    assert server.process.poll() is None


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
async def test_requests_found_by_fuzzing(server: ServeProcess, case: Case) -> None:
    problems = await fuzz_once(server, case, Counter())
    assert not problems, "\n".join(problems)
    assert server.process.poll() is None


# --- load ---------------------------------------------------------------------------------

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
async def test_load_64_clients_20000_calls_every_answer_right_and_memory_flat(server: ServeProcess) -> None:
    pid = server.process.pid
    started = time.monotonic()
    check_outcomes(await run_load(server, N_CALLS, N_WARMUP), N_CALLS)
    warm_rss = rss_kib(pid)
    warmed = time.monotonic()
    check_outcomes(await run_load(server, 0, N_CALLS), 0)
    end_rss = rss_kib(pid)
    print(
        f"warm-up {warmed - started:.1f} s, {N_CALLS} calls {time.monotonic() - warmed:.1f} s; "
        f"RSS {warm_rss} KiB after warm-up, {end_rss} KiB at the end"
    )
    assert end_rss <= warm_rss * 1.10, f"RSS grew from {warm_rss} KiB to {end_rss} KiB"
    assert server.process.poll() is None
    problems = await good_calls(server)
    assert not problems, "\n".join(problems)
