"""The plugin's hooks, registered through the ``blazerpc`` entry point ``onnx``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from blazerpc import hookimpl
from blazerpc.wire import ArrayConverter

from ._model import ONNXModel


def _ortvalue_to_numpy(value: ort.OrtValue) -> np.ndarray:
    array: np.ndarray = value.numpy()
    return array


@hookimpl
def blazerpc_adapt_model(obj: Any, name: str) -> Callable[..., Any] | None:
    """``app.model("name")(ONNXModel(...))``: the schema comes from the graph."""
    if isinstance(obj, ONNXModel):
        return obj.as_function(name)
    return None


@hookimpl
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    """A model may return ``OrtValue``s (from ``run_with_ort_values``) for tensor fields."""
    return [ArrayConverter(ort.OrtValue, _ortvalue_to_numpy)]
