"""Helpers for the TensorFlow plugin's tests (importable as `tfhelp`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from blazerpc import BlazeApp

#: Served results against TensorFlow called directly: float32 math, possibly run with a
#: different batch size (and so different kernels).
RTOL, ATOL = 1e-5, 1e-6


def tensor(array: Any) -> dict[str, Any]:
    """A TensorProto's fields for `array` (little-endian, C order)."""
    a = np.asarray(array)  # (np.ascontiguousarray would make a 0-d array 1-d)
    data = a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")
    return {"shape": list(a.shape), "dtype": a.dtype.name, "data": data}


def array(message: Any) -> np.ndarray:
    """A TensorProto message as an array."""
    return np.frombuffer(message.data, dtype=np.dtype(message.dtype).newbyteorder("<")).reshape(
        tuple(message.shape)
    )


def batched_app(rows: int) -> BlazeApp:
    """An app whose batched models dispatch exactly when `rows` rows wait: concurrent
    requests with that many rows in all are one model call, deterministically."""
    return BlazeApp(batch_policy="fixed", max_batch_size=rows, batch_timeout_ms=60_000)


def unbatched_app() -> BlazeApp:
    return BlazeApp(enable_batching=False)


def rng_batches(sizes: list[int], width: int, seed: int = 0) -> list[np.ndarray]:
    """float32 inputs with the given row counts."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, width)).astype(np.float32) for n in sizes]
