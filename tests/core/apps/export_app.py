"""Models covering every built-in type, for `blaze proto` and generated-stub tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp()

# Aliases: a string inside an annotation would read as a forward reference to linters.
Rows = TensorInput[np.float32, "batch", 3]
RowSums = TensorOutput[np.float32, "batch"]


@app.model("scalars")
def scalars(
    text: str, count: int, ratio: float, flag: bool, blob: bytes
) -> tuple[str, int, float, bool, bytes]:
    return text.upper(), count * 2, ratio / 2, not flag, blob[::-1]


# Not row-wise (one count per input list), so never batched with other requests.
@app.model("lists", batching=False)
def lists(
    words: list[str], values: list[float], ids: list[int], flags: list[bool], chunks: list[bytes]
) -> list[int]:
    return [len(words), round(sum(values)), sum(ids), sum(flags), sum(len(c) for c in chunks)]


@app.model("options")
def options(
    limit: int | None, label: str | None = None, scale: float = 1.5, note: str = "none"
) -> tuple[str, int | None]:
    doubled = None if limit is None else limit * 2
    return f"limit={limit} label={label} scale={scale} note={note}", doubled


@app.model("numeric")
def numeric(x: np.float32, small: np.int8) -> tuple[np.float32, np.int8]:
    assert type(x) is np.float32
    assert type(small) is np.int8
    return x * np.float32(2), np.int8(-small)


@app.model("tensors")
def tensors(batch: Rows, extra: np.ndarray) -> tuple[RowSums, np.ndarray, int]:
    """Sums each row of `batch`; transposes and doubles `extra`.

    Only the first paragraph of a docstring goes into the schema.
    """
    return batch.sum(axis=1), extra.T * 2, int(extra.size)


@app.model("countdown", streaming=True)
def countdown(start: int, label: str = "t") -> Iterator[tuple[str, int]]:
    for i in range(start, 0, -1):
        yield f"{label}{i}", i
