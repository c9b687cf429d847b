"""``torch.Tensor`` annotations -> ``TensorProto`` fields, and tensors -> numpy."""

from __future__ import annotations

import typing
from collections.abc import Hashable
from typing import Annotated, Any

import numpy as np
import torch

from blazerpc.types import TENSOR_DTYPES, TensorSpec, dtype_name
from blazerpc.wire import BatchAxis, FieldContext, WireType, tensor_wire_type

__all__ = ["TORCH_BATCH_AXIS", "TorchTensor", "tensor_spec", "tensor_to_numpy", "torch_wire_type"]

#: torch dtypes that have a wire form, by the numpy name used on the wire: torch names
#: its dtypes as numpy does (``torch.float32``); unsigned types wider than 8 bits exist
#: from torch 2.3 on.
_WIRE_NAMES: dict[torch.dtype, str] = {
    getattr(torch, name): name
    for name in TENSOR_DTYPES
    if isinstance(getattr(torch, name, None), torch.dtype)
}


def _wire_dtype(dtype: Any) -> str | None:
    """``torch.float32`` / ``np.float32`` / ``"float32"`` -> ``"float32"``; ``Any`` -> ``None``."""
    if dtype is Any:
        return None
    if isinstance(dtype, torch.dtype):
        name = _WIRE_NAMES.get(dtype)
        if name is None:
            raise TypeError(
                f"{dtype} has no wire form (supported: {', '.join(sorted(set(_WIRE_NAMES.values())))}); "
                "declare float32 and convert in the model (tensor.float())"
            )
        return name
    return dtype_name(dtype)


class _TorchTensorAnnotation:
    """``TorchTensor[torch.float32, "batch", 4]``: a ``torch.Tensor`` parameter or result
    with a declared dtype and shape.

    Subscripting returns ``Annotated[torch.Tensor, TensorSpec(...)]``: the model sees a
    ``torch.Tensor``, the schema a checked ``TensorProto`` field. The dtype may be a
    torch dtype, a numpy dtype, its name, or ``Any``; dimensions are ints (fixed) or
    names (free; ``"batch"`` first makes the field batchable); ``()`` alone is rank 0,
    and no dimensions at all is any shape.
    """

    def __getitem__(self, args: Any) -> Any:
        if not isinstance(args, tuple):
            args = (args,)
        dtype, *dims = args
        if dims == [()]:  # TorchTensor[torch.float32, ()]: rank 0
            return Annotated[torch.Tensor, TensorSpec(dtype=_wire_dtype(dtype), dims=())]
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, int | str) or (isinstance(dim, int) and dim < 0):
                raise TypeError(f"TorchTensor dimensions are ints >= 0 or names, got {dim!r}")
        spec = TensorSpec(dtype=_wire_dtype(dtype), dims=tuple(dims) if dims else None)
        return Annotated[torch.Tensor, spec]

    def __repr__(self) -> str:
        return "TorchTensor"


TorchTensor = _TorchTensorAnnotation()


def tensor_spec(annotation: Any) -> TensorSpec | None:
    """The spec of a ``torch.Tensor`` annotation (bare: any dtype and shape), else ``None``."""
    if annotation is torch.Tensor:
        return TensorSpec()
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        if base is torch.Tensor:
            return next((m for m in metadata if isinstance(m, TensorSpec)), TensorSpec())
    return None


def request_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor for an array read from a request.

    The array is a read-only view of the request's bytes, and torch has no read-only
    tensors: a model could write through the tensor into memory it does not own. So a
    read-only array is copied once; a writable one is shared.
    """
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _concat(values: list[torch.Tensor]) -> torch.Tensor:
    return values[0] if len(values) == 1 else torch.cat(values)


def _key(value: torch.Tensor) -> Hashable:
    return value.dtype, tuple(value.shape[1:])


#: Batching for tensors whose first dimension is ``"batch"``: joined with ``torch.cat``.
TORCH_BATCH_AXIS = BatchAxis(concat=_concat, rows=len, key=_key)


def torch_wire_type(spec: TensorSpec, context: FieldContext) -> WireType:
    """A ``TensorProto`` field whose model-side value is a ``torch.Tensor``."""
    return tensor_wire_type(
        spec,
        context,
        from_array=request_tensor,
        describe=f"torch.Tensor[{spec.describe()}]",
        batch=TORCH_BATCH_AXIS,
    )


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Any tensor (on any device, with grad, conjugated...) as a numpy array.

    ``bfloat16`` has no numpy type: it becomes ``float32`` (exactly).
    """
    if tensor.dtype is torch.bfloat16:
        tensor = tensor.float()
    array: np.ndarray = tensor.numpy(force=True)
    return array
