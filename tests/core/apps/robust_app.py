"""Models for the robustness tests: one of every kind of field, unary and streaming.

Every model is total over its declared inputs (whatever decodes, it answers), except
``divide``, which raises ZeroDivisionError for b == 0: the one sanctioned INTERNAL. The
tests compute the expected answer by calling these same functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp()


# --- Python scalars, lists, optional values and defaults ---------------------------------


@app.model("scalars")
def scalars(
    text: str, number: int, ratio: float, flag: bool, blob: bytes, label: str = "none"
) -> tuple[str, int, float, bool, bytes, str]:
    return text, number, ratio, flag, blob, label


@app.model("shout")
async def shout(text: str) -> str:
    return text.upper()


@app.model("lists")
def lists(
    tag: str, words: list[str], counts: list[int], weights: list[float], flags: list[bool], blobs: list[bytes]
) -> tuple[str, list[str], list[int], list[float], list[bool], list[bytes]]:
    """Not batched: ``tag`` has no batch axis."""
    return tag, words[::-1], counts[::-1], weights[::-1], flags[::-1], blobs[::-1]


@app.model("lengths")
def lengths(words: list[str]) -> list[int]:
    """Batched: its only input and output are lists, so each word is a row."""
    return [len(w) for w in words]


@app.model("optional")
def optional(
    number: int | None, text: str | None, ratio: float | None, flag: bool | None, blob: bytes | None
) -> tuple[int | None, str | None, float | None, bool | None, bytes | None]:
    return number, text, ratio, flag, blob


@app.model("divide")
def divide(a: int, b: int) -> float:
    return a / b


# --- numpy scalars ----------------------------------------------------------------------


@dataclass
class NumpyEcho:
    i8: np.int8
    i16: np.int16
    u8: np.uint8
    u16: np.uint16
    i32: np.int32
    u32: np.uint32
    i64: np.int64
    u64: np.uint64
    f16: np.float16
    f32: np.float32
    f64: np.float64
    b: np.bool_
    small: list[np.int8]
    kinds: list[str]


@app.model("numpy_scalars")
def numpy_scalars(
    i8: np.int8,
    i16: np.int16,
    u8: np.uint8,
    u16: np.uint16,
    i32: np.int32,
    u32: np.uint32,
    i64: np.int64,
    u64: np.uint64,
    f16: np.float16,
    f32: np.float32,
    f64: np.float64,
    b: np.bool_,
    small: list[np.int8],
    level: np.int8 = np.int8(-3),  # noqa: B008 - an immutable scalar
) -> NumpyEcho:
    """Each value back as it came, and the Python type of every argument received."""
    values = (i8, i16, u8, u16, i32, u32, i64, u64, f16, f32, f64, b, *small, level)
    return NumpyEcho(
        i8, i16, u8, u16, i32, u32, i64, u64, f16, f32, f64, b, small, [type(v).__name__ for v in values]
    )


# --- tensors ----------------------------------------------------------------------------


@app.model("fixed")
def fixed(x: TensorInput[np.int32, 2, 3]) -> TensorOutput[np.int32, 3, 2]:
    return x.T


@app.model("add")
def add(
    a: TensorInput[np.float32, "n", "m"], b: TensorInput[np.float32, "n", "m"]
) -> TensorOutput[np.float32, "n", "m"]:
    return a + b


@app.model("scale")
def scale(x: TensorInput[np.float32, "batch", 4]) -> TensorOutput[np.float32, "batch", 4]:
    """Batched: the first dimension is the batch axis."""
    return x * np.float32(2)


@app.model("any_tensor")
def any_tensor(x: np.ndarray) -> np.ndarray:
    return x


@app.model("maybe_tensor")
def maybe_tensor(
    x: Optional[TensorInput[np.int64, "n"]],  # noqa: UP045 - a TensorInput does not support |
) -> Optional[TensorOutput[np.int64, "n"]]:  # noqa: UP045
    return x


# --- streaming --------------------------------------------------------------------------


@app.model("count", streaming=True)
def count(n: np.uint8, word: str) -> Iterator[str]:
    """A sync generator (runs in a worker thread): at most 255 messages."""
    for i in range(n):
        yield f"{word}{i}"


@app.model("chunks", streaming=True)
async def chunks(
    x: TensorInput[np.float64, "n"], size: np.uint8
) -> AsyncIterator[TensorOutput[np.float64, "m"]]:
    step = max(int(size), 1)
    for start in range(0, len(x), step):
        yield x[start : start + step]


@app.model("spell", streaming=True)
async def spell(text: str | None) -> AsyncIterator[tuple[int, str]]:
    for i, ch in enumerate((text or "")[:64]):
        yield i, ch
