"""Required, optional and defaulted inputs of every kind, for test_required_fields.py.

Each model answers with ``repr`` of what it was called with, so a test sees exactly the
values (and their types) the server handed it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from blazerpc import BlazeApp

app = BlazeApp()


@app.model("lookup")
def lookup(t: str, n: int, x: float, b: bool, raw: bytes) -> str:
    return repr((t, n, x, b, raw))


@app.model("narrow")
def narrow(k: np.int8, f: np.float32) -> str:
    return repr((type(k).__name__, int(k), type(f).__name__, float(f)))


@app.model("options")
def options(limit: int | None, label: str | None = None, scale: float = 1.5, note: str = "none") -> str:
    return repr((limit, label, scale, note))


@app.model("tensor")
def tensor(image: np.ndarray, mask: np.ndarray | None, k: int) -> str:
    return repr((image.tolist(), None if mask is None else mask.tolist(), k))


# A list has no presence: absent and empty are the same, a list of no items.
@app.model("items", batching=False)
def items(words: list[str], k: int) -> str:
    return repr((words, k))


# Batched (list in, list out: one row per item).
@app.model("lengths")
def lengths(text: list[str]) -> list[int]:
    return [len(t) for t in text]


@app.model("countdown", streaming=True)
def countdown(start: int, label: str = "t") -> Iterator[str]:
    for i in range(start, 0, -1):
        yield f"{label}{i}"
