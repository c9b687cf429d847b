"""The same kinds of models with string annotations (``from __future__ import annotations``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypedDict

import numpy as np
from numpy.typing import NDArray

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp()


@app.model("shout")
def shout(text: str, times: int = 2, *, sep: str = " ") -> str:
    return sep.join([text.upper()] * times)


@app.model("maybe_half")
def maybe_half(value: float | None, values: list[int]) -> tuple[float | None, list[int]]:
    return (None if value is None else value / 2), [v * 3 for v in values]


@app.model("narrow_sum")
def narrow_sum(a: np.int8, b: np.uint16) -> np.int64:
    return np.int64(a) + np.int64(b)


@app.model("matmul")
def matmul(
    a: TensorInput[np.float64, "n", "k"], b: TensorInput[np.float64, "k", "m"]
) -> TensorOutput[np.float64, "n", "m"]:
    return a @ b


@app.model("negate")
def negate(x: NDArray[np.int16]) -> NDArray[np.int16]:
    return -x


@app.model("flip_any")
def flip_any(x: np.ndarray) -> np.ndarray:
    return np.flip(x)


@dataclass
class Extremes:
    low: float
    high: float
    centered: TensorOutput[np.float32, "n"]


@app.model("extremes")
def extremes(x: TensorInput[np.float32, "n"]) -> Extremes:
    return Extremes(low=float(x.min()), high=float(x.max()), centered=x - x.mean())


class Counts(TypedDict):
    chars: int
    words: int
    first: str | None


@app.model("counts")
def counts(text: str) -> Counts:
    words = text.split()
    return {"chars": len(text), "words": len(words), "first": words[0] if words else None}


class Span(NamedTuple):
    start: int
    stop: int


@app.model("find")
def find(text: str, needle: str) -> Span:
    start = text.find(needle)
    return Span(start, start + len(needle) if start >= 0 else -1)
