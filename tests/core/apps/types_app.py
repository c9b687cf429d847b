"""Models that echo or transform every supported type, so tests can check real values."""

from dataclasses import dataclass
from typing import NamedTuple, Optional, TypedDict

import numpy as np
from numpy.typing import NDArray

from blazerpc import BlazeApp, TensorInput, TensorOutput

app = BlazeApp()

# --- Python scalars ---------------------------------------------------------------------


@app.model("echo_str")
def echo_str(value: str) -> str:
    return value[::-1]


@app.model("echo_int")
def echo_int(value: int) -> int:
    return value + 1


@app.model("echo_float")
def echo_float(value: float) -> float:
    return value * 2


@app.model("echo_bool")
def echo_bool(value: bool) -> bool:
    return not value


@app.model("echo_bytes")
def echo_bytes(value: bytes) -> bytes:
    return value[::-1]


@app.model("echo_async")
async def echo_async(value: str) -> str:
    return value.upper()


# --- lists ------------------------------------------------------------------------------
# Each list model also takes a scalar: a model whose inputs and outputs are all lists is
# batched by default (its lists become rows of one batch), which these are not.


@app.model("lists")
def lists(
    tag: str, strs: list[str], ints: list[int], floats: list[float], bools: list[bool], blobs: list[bytes]
) -> tuple[str, list[str], list[int], list[float], list[bool], list[bytes]]:
    """Each list reversed, with every item transformed like the scalar echoes."""
    return (
        tag,
        [s[::-1] for s in reversed(strs)],
        [i + 1 for i in reversed(ints)],
        [f * 2 for f in reversed(floats)],
        [not b for b in reversed(bools)],
        [b[::-1] for b in reversed(blobs)],
    )


@app.model("numpy_lists")
def numpy_lists(tag: str, small: list[np.int8], wide: list[np.uint64], halves: list[np.float32]) -> list[str]:
    """The type and value of every item received."""
    return [f"{tag}{type(v).__name__}:{v}" for v in (*small, *wide, *halves)]


@app.model("numpy_list_result")
def numpy_list_result(n: int) -> list[np.int16]:
    return list(np.arange(-n, n, dtype=np.int16))


# --- optional values and defaults -------------------------------------------------------


@app.model("optional")
def optional(
    number: int | None, text: str | None, ratio: float | None, flag: bool | None, blob: bytes | None
) -> tuple[int | None, str | None, float | None, bool | None, bytes | None]:
    """Each value transformed like the scalar echoes; None stays None."""
    return (
        None if number is None else number + 1,
        None if text is None else text[::-1],
        None if ratio is None else ratio * 2,
        None if flag is None else not flag,
        None if blob is None else blob[::-1],
    )


@app.model("defaults")
def defaults(
    x: float,
    factor: float = 2.5,
    label: str = "default",
    count: int = 7,
    flag: bool = True,
    maybe: int | None = 42,
    level: np.int8 = np.int8(-3),  # noqa: B008 - an immutable scalar
) -> str:
    return f"{label}|{x * factor}|{count}|{flag}|{maybe}|{type(level).__name__}:{level}"


# --- numpy scalars ----------------------------------------------------------------------


@dataclass
class NumpyScalars:
    f16: np.float16
    f32: np.float32
    f64: np.float64
    i8: np.int8
    i16: np.int16
    i32: np.int32
    i64: np.int64
    u8: np.uint8
    u16: np.uint16
    u32: np.uint32
    u64: np.uint64
    b: np.bool_


@app.model("numpy_scalars")
def numpy_scalars(
    f16: np.float16,
    f32: np.float32,
    f64: np.float64,
    i8: np.int8,
    i16: np.int16,
    i32: np.int32,
    i64: np.int64,
    u8: np.uint8,
    u16: np.uint16,
    u32: np.uint32,
    u64: np.uint64,
    b: np.bool_,
) -> NumpyScalars:
    """Floats doubled and integers floor-halved in their own numpy type; the bool negated."""
    return NumpyScalars(
        f16=f16 * np.float16(2),
        f32=f32 * np.float32(2),
        f64=f64 * np.float64(2),
        i8=i8 // np.int8(2),
        i16=i16 // np.int16(2),
        i32=i32 // np.int32(2),
        i64=i64 // np.int64(2),
        u8=u8 // np.uint8(2),
        u16=u16 // np.uint16(2),
        u32=u32 // np.uint32(2),
        u64=u64 // np.uint64(2),
        b=np.logical_not(b),
    )


@app.model("numpy_kinds")
def numpy_kinds(
    f16: np.float16,
    f32: np.float32,
    f64: np.float64,
    i8: np.int8,
    i16: np.int16,
    i32: np.int32,
    i64: np.int64,
    u8: np.uint8,
    u16: np.uint16,
    u32: np.uint32,
    u64: np.uint64,
    b: np.bool_,
) -> list[str]:
    """The Python type of each argument the model received."""
    return [type(v).__name__ for v in (f16, f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, b)]


@app.model("narrow")
def narrow(i8: np.int8, i16: np.int16, u8: np.uint8, u16: np.uint16) -> str:
    return f"{i8},{i16},{u8},{u16}"


# --- tensors ----------------------------------------------------------------------------


@app.model("invert")
def invert(image: TensorInput[np.uint8, "batch", 2]) -> TensorOutput[np.uint8, "batch", 2]:
    """An 8-bit image's negative: a uint8 tensor in and out."""
    return 255 - image


@app.model("double")
def double(x: np.ndarray) -> np.ndarray:
    """Any dtype, any shape: x + x keeps the dtype (for bool it is logical or)."""
    return x + x


@app.model("zero_d_scalars")
def zero_d_scalars(x: float) -> tuple[float, bool, int, str]:
    """0-d arrays (what a framework's 0-d result becomes) for scalar fields."""
    return np.array(x, np.float32), np.array(x > 0), np.array(int(x), np.int64), np.array(str(x))


@app.model("scalar_tensor")
def scalar_tensor(x: TensorInput[np.float64, ()], rank: int) -> TensorOutput[np.float64, ()]:
    """Rank 0 in and out; ``rank`` > 0 returns a tensor of that rank instead."""
    return x * 2 if rank == 0 else np.full((1,) * rank, x * 2)


@app.model("describe_array")
def describe_array(x: np.ndarray) -> str:
    """What the model received: dtype, shape, writeable flag."""
    return f"{x.dtype.name}|{list(x.shape)}|{x.flags.writeable}"


@app.model("layout")
def layout(x: np.ndarray, how: str) -> np.ndarray:
    """The same values in another memory layout, or a derived non-contiguous view."""
    if how == "transpose":
        return x.T
    if how == "reverse":
        return x[::-1]
    if how == "every_other":
        return x[::2]
    if how == "fortran":
        return x.copy(order="F")
    if how == "big_endian":
        return x.astype(x.dtype.newbyteorder(">"))
    raise ValueError(f"unknown layout {how!r}")


@app.model("affine")
def affine(
    x: TensorInput[np.float32, "batch", 3], w: TensorInput[np.float32, 3, "out"]
) -> TensorOutput[np.float32, "batch", "out"]:
    return x @ w


@app.model("add_pair")
def add_pair(
    a: TensorInput[np.float64, "n", 2], b: TensorInput[np.float64, "n", 2]
) -> TensorOutput[np.float64, "n", 2]:
    return a + b


@app.model("fixed")
def fixed(x: TensorInput[np.int32, 2, 3]) -> TensorOutput[np.int32, 3, 2]:
    return x.T * 10


@app.model("row_means")
def row_means(x: TensorInput[np.float32, "n", "m"]) -> TensorOutput[np.float32, "n"]:
    """Computed in float64; the declared float32 result is converted on the way out."""
    return x.astype(np.float64).mean(axis=1)


@app.model("arange")
def arange(n: int) -> TensorOutput[np.int64, "n"]:
    """A list result for a tensor field becomes an array."""
    return list(range(n))


@app.model("scale_ndarray")
def scale_ndarray(x: NDArray[np.float32], factor: float) -> NDArray[np.float32]:
    return x * np.float32(factor)


@app.model("maybe_tensor")
def maybe_tensor(
    x: Optional[TensorInput[np.float32, "n"]],  # noqa: UP045 - a TensorInput does not support |
) -> Optional[TensorOutput[np.float32, "n"]]:  # noqa: UP045
    return None if x is None else x + 1


@app.model("tensor_default")
def tensor_default(
    x: TensorInput[np.int64, "n"],
    offset: Optional[TensorInput[np.int64, "n"]] = None,  # noqa: UP045 - see maybe_tensor
) -> TensorOutput[np.int64, "n"]:
    return x if offset is None else x + offset


# --- parameters -------------------------------------------------------------------------


@app.model("ordered")
def ordered(first: str, second: int, third: float, *, fourth: bool, fifth: str = "five") -> str:
    return f"{first}|{second}|{third}|{fourth}|{fifth}"


@app.model("keyword_only")
def keyword_only(*, text: str, times: int = 2, sep: str = "-") -> str:
    return sep.join([text] * times)


# --- composite results ------------------------------------------------------------------


@app.model("split_words")
def split_words(text: str) -> tuple[str, int, list[str]]:
    words = text.split()
    return text.upper(), len(words), words


class Stats(TypedDict):
    total: float
    count: int
    mean: float | None


@app.model("stats")
def stats(values: list[float]) -> Stats:
    total = sum(values)
    return {"total": total, "count": len(values), "mean": total / len(values) if values else None}


@dataclass
class Summary:
    minimum: float
    maximum: float
    normalized: TensorOutput[np.float64, "n"]
    label: str


@app.model("summarize")
def summarize(x: TensorInput[np.float64, "n"], label: str) -> Summary:
    low, high = float(x.min()), float(x.max())
    return Summary(minimum=low, maximum=high, normalized=(x - low) / (high - low), label=label[::-1])


class DivMod(NamedTuple):
    quotient: int
    remainder: int


@app.model("div_mod")
def div_mod(a: int, b: int) -> DivMod:
    return DivMod(*divmod(a, b))


@dataclass
class Only:
    doubled: int


@app.model("single_dataclass")
def single_dataclass(value: int) -> Only:
    return Only(doubled=value * 2)


class OnlyDict(TypedDict):
    doubled: int


@app.model("single_typeddict")
def single_typeddict(value: int) -> OnlyDict:
    return {"doubled": value * 2}


class OnlyTuple(NamedTuple):
    doubled: int


@app.model("single_namedtuple")
def single_namedtuple(value: int) -> OnlyTuple:
    return OnlyTuple(doubled=value * 2)


@app.model("single_tuple")
def single_tuple(value: int) -> tuple[int]:
    return (value * 2,)
