"""One model as the protocol sees it: its tensors, how a ``ModelInferRequest``'s inputs
become the model's arguments, and how its outputs become a ``ModelInferResponse``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blazerpc import InferenceError, InvalidInputError
from blazerpc.wire import FieldSchema, MethodSchema

from ._datatypes import TensorInfo, tensor_info
from ._tensors import element_count, join_bytes, output_array, raw_bytes_elements, typed_values

__all__ = ["ModelTensors", "UnmappedField"]


class UnmappedField(Exception):
    """A model field with no V2 form: the model is left out of the protocol."""


@dataclass(frozen=True)
class _Tensor:
    """What a tensor field's decoder reads (as a native ``TensorProto``)."""

    shape: list[int]
    dtype: str
    data: bytes | memoryview


def _describe(info: TensorInfo) -> str:
    return f"{info.datatype} {list(info.shape)}"


class ModelTensors:
    """A model's inputs and outputs as V2 tensors, and their conversions."""

    def __init__(self, method: MethodSchema) -> None:
        self.method = method
        self.name = method.model
        self.version = method.version
        self.inputs = tuple(self._info(f) for f in method.inputs)
        self.outputs = tuple(self._info(f) for f in method.outputs)
        self._fields = {f.name: f for f in method.inputs}
        self._input_index = {info.name: i for i, info in enumerate(self.inputs)}
        self.output_names = tuple(info.name for info in self.outputs)
        self._result_kind = method.result_kind

    @staticmethod
    def _info(f: FieldSchema) -> TensorInfo:
        info = tensor_info(f)
        if info is None:
            raise UnmappedField(
                f"field {f.name!r} ({f.wire.describe}) has no Open Inference Protocol datatype"
            )
        return info

    # --- request -> arguments ---------------------------------------------------------

    def arguments(self, request: Any) -> list[Any]:
        """The model's arguments from a ``ModelInferRequest``; ``InvalidInputError``
        saying what is wrong otherwise."""
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidInputError(
                f"the request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents; "
                "send one raw entry per input, in order, or typed contents for every input"
            )
        given: dict[str, Any] = {}
        for position, tensor in enumerate(request.inputs):
            name = tensor.name
            index = self._input_index.get(name)
            if index is None:
                known = ", ".join(i.name for i in self.inputs) or "none"
                raise InvalidInputError(f"model {self.name!r} has no input {name!r}; its inputs: {known}")
            if name in given:
                raise InvalidInputError(f"input {name!r} is given twice")
            info = self.inputs[index]
            try:
                given[name] = self._argument(info, tensor, raw[position] if raw else None)
            except InvalidInputError as exc:
                raise InvalidInputError(f"input {name!r}: {exc.message}") from None
        args = []
        for info in self.inputs:
            if info.name in given:
                args.append(given[info.name])
                continue
            f = self._fields[info.name]
            if f.has_default:
                args.append(f.default)
            elif f.wire.optional:
                args.append(None)
            else:
                raise InvalidInputError(
                    f"input {info.name!r} ({_describe(info)}) is required but was not sent"
                )
        return args

    def _argument(self, info: TensorInfo, tensor: Any, raw: bytes | None) -> Any:
        if tensor.datatype != info.datatype:
            raise InvalidInputError(
                f"datatype {tensor.datatype or '(empty)'} does not match the model's {info.datatype}"
            )
        shape = list(tensor.shape)
        count = element_count(shape)
        if raw is not None and tensor.HasField("contents"):
            raise InvalidInputError("has both typed contents and raw_input_contents; send one of them")
        f = self._fields[info.name]
        decode = f.wire.decode
        if info.kind == "tensor":
            dtype = info.numpy
            assert dtype is not None
            data = (
                raw
                if raw is not None
                else typed_values(tensor.contents, info.datatype, count).astype(dtype).tobytes()
            )
            assert decode is not None
            return decode(_Tensor(shape, dtype.name, data))
        if info.kind == "list" and len(shape) != 1:
            raise InvalidInputError(f"shape {shape} is not 1-d; the model takes a list ({_describe(info)})")
        if info.kind == "scalar" and shape != [1]:
            raise InvalidInputError(
                f"shape {shape} is not [1]; the model takes one value ({_describe(info)})"
            )
        values = self._values(info, raw, tensor.contents, count)
        if info.kind == "scalar":
            values = values[0]
        return values if decode is None else decode(values)

    @staticmethod
    def _values(info: TensorInfo, raw: bytes | None, contents: Any, count: int) -> list[Any]:
        if info.datatype == "BYTES":
            items = (
                raw_bytes_elements(raw, count) if raw is not None else typed_values(contents, "BYTES", count)
            )
            if not info.text:
                return items
            try:
                return [item.decode() for item in items]
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"element is not UTF-8 text: {exc}") from None
        dtype = info.numpy
        assert dtype is not None
        if raw is None:
            return list(typed_values(contents, info.datatype, count).tolist())
        if len(raw) != count * dtype.itemsize:
            raise InvalidInputError(
                f"shape [{count}] of {info.datatype} needs {count * dtype.itemsize} bytes of raw data, "
                f"got {len(raw)}"
            )
        arr = np.frombuffer(raw, dtype=dtype)
        if dtype.kind == "b" and count and int(np.frombuffer(raw, dtype=np.uint8).max()) > 1:
            raise InvalidInputError("BOOL data holds a byte other than 0 and 1")
        return list(arr.tolist())

    # --- result -> outputs ------------------------------------------------------------

    def values(self, result: Any) -> list[Any]:
        """What the model returned, as one value per output (in order)."""
        if self._result_kind == "value":
            return [result]
        if self._result_kind == "tuple":
            return list(result)
        if isinstance(result, dict):
            return [result[name] for name in self.output_names]
        return [getattr(result, name) for name in self.output_names]

    def output(self, info: TensorInfo, value: Any) -> tuple[list[int], bytes]:
        """One output's shape and raw contents."""
        what = f"output {info.name!r}"
        if info.kind == "scalar":
            value = [value]
        if info.datatype == "BYTES":
            if hasattr(value, "tolist"):
                value = value.tolist()
            try:
                items = [v.encode() if isinstance(v, str) else bytes(v) for v in value]
            except TypeError as exc:
                raise InferenceError(f"{what}: expected str or bytes values: {exc}") from None
            return [len(items)], join_bytes(items)
        dtype = info.numpy
        assert dtype is not None
        arr = output_array(value, dtype, what)
        if info.kind != "tensor" and arr.ndim != 1:
            raise InferenceError(f"{what}: expected a flat list, got shape {list(arr.shape)}")
        return list(arr.shape), arr.tobytes()
