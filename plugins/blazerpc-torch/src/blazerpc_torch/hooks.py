"""The plugin's hooks, registered through the ``blazerpc`` entry point ``torch``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from blazerpc import hookimpl
from blazerpc.wire import ArrayConverter, FieldContext, WireType

from ._model import ModuleOnDevice, module_function
from ._types import tensor_spec, tensor_to_numpy, torch_wire_type


@hookimpl
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    """``torch.Tensor`` (any dtype and shape) and ``TorchTensor[dtype, *dims]``."""
    spec = tensor_spec(annotation)
    return None if spec is None else torch_wire_type(spec, context)


@hookimpl
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    """A model may return tensors wherever a tensor field is declared."""
    return [ArrayConverter(torch.Tensor, tensor_to_numpy)]


@hookimpl
def blazerpc_adapt_model(obj: Any, name: str) -> Callable[..., Any] | None:
    """``app.model("name")(module)``: an ``nn.Module`` served through its ``forward``
    (on the device of its parameters, or the one ``torch_model(device=...)`` gave)."""
    if isinstance(obj, ModuleOnDevice):
        return obj.function(name)
    if isinstance(obj, torch.nn.Module):
        return module_function(obj, model=name)
    return None
