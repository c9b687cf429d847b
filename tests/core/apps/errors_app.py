"""Models for bad input and misbehaving models: what each one gets back."""

from __future__ import annotations

import numpy as np
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, InvalidInputError, TensorInput, TensorOutput

app = BlazeApp()


# --- inputs that are checked -------------------------------------------------------------


@app.model("scale")
def scale(x: TensorInput[np.float32, "rows", 3]) -> TensorOutput[np.float32, "rows", 3]:
    return x * 2


@app.model("mask")
def mask(m: TensorInput[np.bool_, "n"]) -> TensorOutput[np.bool_, "n"]:
    return m


@app.model("any_tensor")
def any_tensor(x: np.ndarray) -> str:
    return f"{x.dtype.name}{list(x.shape)}"


@app.model("pair")
def pair(a: TensorInput[np.float32, "n"], b: TensorInput[np.float32, "n"]) -> TensorOutput[np.float32, "n"]:
    return a + b


@app.model("square")
def square(m: TensorInput[np.int32, "k", "k"]) -> TensorOutput[np.int32, "k", "k"]:
    return m @ m


@app.model("narrow")
def narrow(small: np.int8, byte: np.uint8, values: list[np.int16]) -> int:
    return int(small) + int(byte) + sum(int(v) for v in values)


@app.model("text")
def text(value: str) -> str:
    return value.upper()


# --- models that raise -------------------------------------------------------------------


@app.model("raises_value_error")
def raises_value_error(message: str) -> str:
    raise ValueError(message)


@app.model("raises_async")
async def raises_async(message: str) -> str:
    raise KeyError(message)


@app.model("raises_not_found")
def raises_not_found(key: str) -> str:
    raise GRPCError(Status.NOT_FOUND, f"no item named {key!r}")


@app.model("raises_invalid_input")
def raises_invalid_input(value: str) -> str:
    raise InvalidInputError(f"value must not be {value!r}")


# --- models that return the wrong thing ---------------------------------------------------


@app.model("wrong_scalar")
def wrong_scalar(kind: str) -> float:
    return {"str": "not a number", "none": None, "list": [1.0, 2.0]}[kind]  # type: ignore[return-value]


@app.model("wrong_tensor")
def wrong_tensor(kind: str) -> TensorOutput[np.float32, "n", 2]:
    results = {
        "shape": np.zeros((3, 3), dtype=np.float32),
        "rank": np.zeros(4, dtype=np.float32),
        "dtype": np.zeros((2, 2), dtype=np.complex128),
        "str": "not a tensor",
        "none": None,
        "strings": np.array([["a", "b"]]),
    }
    return results[kind]  # type: ignore[return-value]


@app.model("wrong_any_tensor")
def wrong_any_tensor(kind: str) -> np.ndarray:
    return {"strings": np.array(["a", "bc"]), "objects": np.array([object()])}[kind]


@app.model("wrong_tuple")
def wrong_tuple(n: int) -> tuple[int, str]:
    return tuple(range(n))  # type: ignore[return-value]


@app.model("wrong_int8")
def wrong_int8(value: int) -> np.int8:
    return value  # type: ignore[return-value]


@app.model("wrong_int")
def wrong_int(value: float) -> int:
    return value  # type: ignore[return-value]


# --- results that need a narrowing cast to their declared dtype ----------------------------


@app.model("to_int32")
def to_int32(kind: str) -> TensorOutput[np.int32, "n"]:
    """int64 results for an int32 field: in range, above it, below it."""
    values = {"fits": [5, -(2**31), 2**31 - 1], "above": [1, 2**33 + 5], "below": [-(2**40), 0]}
    return np.array(values[kind], dtype=np.int64)


@app.model("to_float16")
def to_float16(kind: str) -> TensorOutput[np.float16, "n"]:
    """float64 results for a float16 field: in range, infinite already, too large."""
    values = {"fits": [1.5, -65504.0, 0.1], "inf": [np.inf, -np.inf, 2.0], "too_large": [3.0, 1e6]}
    return np.array(values[kind], dtype=np.float64)
