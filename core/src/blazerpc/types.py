"""Tensor annotations: ``TensorInput[dtype, dims...]`` and ``TensorOutput[...]``.

``TensorInput[np.float32, "batch", 224, 224, 3]`` declares a float32 tensor of rank 4
whose first dimension is free (a symbolic name) and whose other dimensions are fixed.
``TensorInput[np.float32, ()]`` is a rank-0 (scalar) tensor; ``TensorInput[np.float32]``
one of any rank and shape.
On the wire every tensor is a ``blazerpc.TensorProto``: its shape, its numpy dtype name
and its raw little-endian, C-order bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["SCALAR_TYPES", "TENSOR_DTYPES", "Dim", "TensorInput", "TensorOutput", "TensorSpec", "dtype_name"]

#: A dimension: a fixed size, or a symbolic name (any size; equal names must agree).
Dim = int | str

#: The dtypes a tensor may have on the wire, by numpy name.
TENSOR_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}

#: The numpy scalar types a plain field may hold (``x: np.float32``), by wire name:
#: those of every tensor dtype but the complex ones, which protobuf has no field for.
SCALAR_TYPES: dict[str, type[np.generic]] = {
    name: dtype.type for name, dtype in TENSOR_DTYPES.items() if dtype.kind != "c"
}


def dtype_name(dtype: Any) -> str:
    """The wire name of a numpy dtype (``np.float32`` -> ``"float32"``).

    Raises ``TypeError`` for a dtype that has no wire form (strings, objects, ...).
    """
    try:
        name: str = np.dtype(dtype).name
    except TypeError as exc:
        raise TypeError(f"{dtype!r} is not a numpy dtype") from exc
    if name not in TENSOR_DTYPES:
        supported = ", ".join(TENSOR_DTYPES)
        raise TypeError(f"dtype {name!r} cannot be sent as a tensor; supported: {supported}")
    return name


@dataclass(frozen=True)
class TensorSpec:
    """What a tensor annotation declares.

    ``dtype`` is a wire dtype name, or ``None`` for any dtype. ``dims`` is the declared
    shape, or ``None`` for any rank and shape.
    """

    dtype: str | None = None
    dims: tuple[Dim, ...] | None = None

    @property
    def batch_axis(self) -> bool:
        """Whether the first dimension is the symbolic ``"batch"`` axis."""
        return bool(self.dims) and self.dims[0] == "batch"  # type: ignore[index]

    def describe(self) -> str:
        dtype = self.dtype or "any dtype"
        if self.dims is None:
            return f"{dtype} tensor of any shape"
        return f"{dtype}[{', '.join(str(d) for d in self.dims)}]"


def _spec_from_args(cls_name: str, args: Any) -> TensorSpec:
    if not isinstance(args, tuple):
        args = (args,)
    dtype_arg, *dims = args
    dtype = None if dtype_arg is Any else dtype_name(dtype_arg)
    if dims == [()]:  # TensorInput[np.float32, ()]: rank 0
        return TensorSpec(dtype=dtype, dims=())
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, int | str):
            raise TypeError(f"{cls_name} dimensions are ints or names, got {dim!r}")
        if isinstance(dim, int) and dim < 0:
            raise TypeError(f"{cls_name} dimensions must be >= 0, got {dim}")
    return TensorSpec(dtype=dtype, dims=tuple(dims) if dims else None)


class _TensorAnnotation:
    """Base of ``TensorInput`` / ``TensorOutput``.

    Subscripting returns a subclass that carries the spec (one per distinct spec), so a
    tensor annotation is a class like any other: ``TensorInput[np.float32, 3] | None``
    works, and equal specs give the same class.
    """

    direction: ClassVar[str]
    spec: ClassVar[TensorSpec | None] = None

    def __class_getitem__(cls, args: Any) -> type[_TensorAnnotation]:
        if cls.spec is not None:
            raise TypeError(f"{cls.__name__} is already subscripted")
        return _annotation_class(cls, _spec_from_args(cls.__name__, args))


_ANNOTATION_CLASSES: dict[tuple[str, TensorSpec], type[_TensorAnnotation]] = {}


def _annotation_class(base: type[_TensorAnnotation], spec: TensorSpec) -> type[_TensorAnnotation]:
    key = (base.__name__, spec)
    cls = _ANNOTATION_CLASSES.get(key)
    if cls is None:
        parts = [spec.dtype or "Any"]
        if spec.dims is not None:
            parts += [repr(d) for d in spec.dims] if spec.dims else ["()"]
        name = f"{base.__name__}[{', '.join(parts)}]"
        attrs = {"spec": spec, "__module__": base.__module__, "__qualname__": name}
        cls = _ANNOTATION_CLASSES[key] = type(name, (base,), attrs)
    return cls


class TensorInput(_TensorAnnotation):
    """A tensor parameter: ``TensorInput[np.float32, "batch", 3]``.

    The model receives a read-only ``np.ndarray`` that shares the request's memory.
    """

    direction = "input"


class TensorOutput(_TensorAnnotation):
    """A tensor result: ``TensorOutput[np.float32, "batch", 10]``."""

    direction = "output"
