"""JSON in and out of ``blaze call`` and ``blaze bench``: the request's fields from JSON,
and responses as JSON.

Tensors come in as nested lists (converted to the field's declared dtype), as
``{"shape": [...], "dtype": "float32", "data_base64": "..."}`` (the wire's bytes), or
as ``{"dtype": "float32", "data": [...]}``; a tensor object is sent with the dtype it
names, as given, and the server checks it. ``bytes`` fields are base64 strings, as in
protobuf's own JSON mapping. Tensors go out as nested lists, or in the base64 form.

A value refused here is refused in the client's words (:class:`ClientInputError`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..client import ClientInputError, FieldInfo, ModelInfo
from ..client._inputs import Refusal, encode_array, input_refusal, show, unknown_input
from ..types import TENSOR_DTYPES

__all__ = ["InputError", "TensorFormat", "read_data", "request_inputs", "response_json"]

TensorFormat = Literal["list", "base64"]


class InputError(ClientInputError):
    """What ``blaze call`` cannot send: ``--data`` that is not JSON, a bad address, TLS
    files that do not load. A :class:`ClientInputError`, so one ``except`` catches both."""

    PREFIX = ""


def read_data(data: str | None) -> Any:
    """``--data``: JSON text, ``@file.json``, or ``@-`` for standard input."""
    if data is None:
        return {}
    if data.startswith("@"):
        source = data[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise InputError(f"cannot read --data file {source!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"--data file {source!r} is not UTF-8 text: it must hold JSON") from None
    else:
        text = data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--data is not valid JSON: {exc}") from None


def request_inputs(model: ModelInfo, data: Any) -> dict[str, Any]:
    """The client's inputs for ``model`` from the JSON object ``data``."""
    if not isinstance(data, dict):
        raise InputError(f"--data must be a JSON object of the inputs, got {type(data).__name__}")
    fields = {f.name: f for f in model.inputs}
    inputs = {}
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            raise unknown_input(model.name, name, fields)
        try:
            inputs[name] = _input(field, value)
        except Refusal as exc:
            raise input_refusal(model.name, name, field.describe, value, exc.reason) from None
    return inputs


def _input(field: FieldInfo, value: Any) -> Any:
    if value is None:
        return None
    if field.repeated and field.type in ("tensor", "bytes"):
        if not isinstance(value, list):
            raise Refusal()
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_one_input(field, item))
            except Refusal as exc:
                reason = f": {exc.reason}" if exc.reason else ""
                raise Refusal(f"item {index} is {show(item)}{reason}") from None
        return items
    return _one_input(field, value)


def _one_input(field: FieldInfo, value: Any) -> Any:
    if field.type == "bytes":
        if not isinstance(value, str):
            raise Refusal("bytes are given as a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise Refusal(f"not valid base64: {exc}") from None
    if field.type == "tensor" and isinstance(value, dict):
        return _tensor_object(value)
    return value


def _tensor_object(value: Mapping[str, Any]) -> dict[str, Any]:
    """A tensor object as the wire's fields, which the client sends as they are."""
    unknown = set(value) - {"shape", "dtype", "data", "data_base64"}
    if unknown:
        raise Refusal(f"a tensor object has shape, dtype and data or data_base64, not {sorted(unknown)}")
    name = value.get("dtype")
    dtype = TENSOR_DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise Refusal(f"unknown tensor dtype {name!r} (one of: {', '.join(TENSOR_DTYPES)})")
    shape = value.get("shape")
    if shape is not None and (
        not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
    ):
        raise Refusal(f"shape must be a list of sizes >= 0, got {shape!r}")
    if "data_base64" in value:
        if shape is None:
            raise Refusal("a tensor with data_base64 needs its shape")
        try:
            raw = base64.b64decode(value["data_base64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Refusal(f"data_base64 is not valid base64: {exc}") from None
        size = math.prod(shape)
        if len(raw) != size * dtype.itemsize:
            raise Refusal(
                f"data_base64 holds {len(raw)} bytes; shape {shape} of {name} needs {size * dtype.itemsize}"
            )
        return {"shape": shape, "dtype": name, "data": raw}
    if "data" not in value:
        raise Refusal("a tensor object needs data (nested lists) or data_base64")
    array_shape, _, raw = encode_array(value["data"], name)
    if shape is not None and math.prod(shape) != math.prod(array_shape):
        raise Refusal(
            f"its data holds {math.prod(array_shape)} values; shape {shape} needs {math.prod(shape)}"
        )
    return {"shape": list(array_shape) if shape is None else shape, "dtype": name, "data": raw}


# --- out ---------------------------------------------------------------------------------


def response_json(model: ModelInfo, result: Any, tensors: TensorFormat = "list") -> dict[str, Any]:
    """A response as a JSON-ready object of its fields (``{"result": ...}`` for one)."""
    outputs = model.outputs
    values = {outputs[0].name: result} if len(outputs) == 1 and outputs[0].name == "result" else dict(result)
    return {name: _json_value(value, tensors) for name, value in values.items()}


def _json_value(value: Any, tensors: TensorFormat) -> Any:
    if isinstance(value, np.ndarray):
        if tensors == "base64":
            return {
                "shape": list(value.shape),
                "dtype": value.dtype.name,
                "data_base64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
            }
        return _array_list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, list):
        return [_json_value(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v, tensors) for k, v in value.items()}
    return value


def _array_list(array: np.ndarray) -> Any:
    if array.dtype.kind == "c":  # complex: [real, imaginary] pairs
        return _array_list(np.stack([array.real, array.imag], axis=-1))
    if array.dtype.kind == "f":
        if array.dtype.itemsize < 8:
            # The shortest decimal that reads back as the same float32: 0.1, not 0.10000000149011612.
            array = array.astype(str).astype(np.float64)
        if not np.isfinite(array).all():
            return _json_value(array.tolist(), "list")
    return array.tolist()


def _float(value: float) -> float | str:
    # JSON has no NaN or infinity: protobuf's JSON mapping writes them as these strings.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
