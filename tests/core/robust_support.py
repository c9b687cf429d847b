"""Helpers of the robustness tests (test_fuzzing.py, test_load.py) against
tests/core/apps/robust_app.py: raw bytes sent as a request, the protobuf wire format by
hand, what the server should answer to any bytes, and good requests to every method."""

from __future__ import annotations

import asyncio
import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from support import APPS, load_app_module

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess
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
        elif not msg.HasField(f.name):  # a required scalar (request scalars have presence)
            raise Undecodable(f"no {f.name}")
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
