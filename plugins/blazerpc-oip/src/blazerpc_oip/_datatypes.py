"""The mapping rule: a model's fields as V2 tensors (datatype and shape).

- each parameter is an input tensor named after it, each result field an output;
- a tensor field keeps its dtype (``float32`` is ``FP32``...) and dims, a symbolic dim
  (``"batch"``, ``"n"``) being ``-1``; any rank is ``[-1]`` with ``any_rank`` set;
- a ``list[T]`` is a 1-d tensor ``[-1]`` of ``T``'s datatype;
- a scalar is a tensor of shape ``[1]``;
- ``str`` and ``bytes`` are ``BYTES`` (``str`` as UTF-8); Python ``float`` is ``FP64``,
  ``int`` ``INT64``, ``bool`` ``BOOL``; numpy scalar types keep their dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from blazerpc.types import SCALAR_TYPES
from blazerpc.wire import FieldSchema

__all__ = ["DATATYPES", "TRITON_TYPES", "TensorInfo", "tensor_info"]

#: V2 datatype by numpy dtype name; ``BYTES`` is not a numpy dtype (str/bytes fields).
DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
#: numpy dtype (little-endian) by V2 datatype.
NUMPY: dict[str, np.dtype[Any]] = {v: np.dtype(k).newbyteorder("<") for k, v in DATATYPES.items()}

#: Triton's ``DataType`` enum value by V2 datatype (model_config.proto).
TRITON_TYPES: dict[str, int] = {
    "BOOL": 1,
    "UINT8": 2,
    "UINT16": 3,
    "UINT32": 4,
    "UINT64": 5,
    "INT8": 6,
    "INT16": 7,
    "INT32": 8,
    "INT64": 9,
    "FP16": 10,
    "FP32": 11,
    "FP64": 12,
    "BYTES": 13,
    "BF16": 14,
}

_BY_PROTO_TYPE: dict[int, str] = {
    F.TYPE_DOUBLE: "FP64",
    F.TYPE_FLOAT: "FP32",
    F.TYPE_INT64: "INT64",
    F.TYPE_SINT64: "INT64",
    F.TYPE_SFIXED64: "INT64",
    F.TYPE_INT32: "INT32",
    F.TYPE_SINT32: "INT32",
    F.TYPE_SFIXED32: "INT32",
    F.TYPE_UINT64: "UINT64",
    F.TYPE_FIXED64: "UINT64",
    F.TYPE_UINT32: "UINT32",
    F.TYPE_FIXED32: "UINT32",
    F.TYPE_BOOL: "BOOL",
    F.TYPE_STRING: "BYTES",
    F.TYPE_BYTES: "BYTES",
}


@dataclass(frozen=True)
class TensorInfo:
    """One field as a V2 tensor.

    ``kind`` is how the model's value relates to the tensor: ``"tensor"`` (an ndarray),
    ``"list"`` (a Python list, the 1-d tensor's elements) or ``"scalar"`` (shape ``[1]``).
    ``text``: a BYTES field whose values are ``str`` (UTF-8 on the wire).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    kind: str
    text: bool = False
    any_rank: bool = False
    #: The tensor's declared dims with their symbols (``None``: any rank); tensors only.
    dims: tuple[int | str, ...] | None = None

    @property
    def numpy(self) -> np.dtype[Any] | None:
        """The numpy dtype of the data; ``None`` for BYTES."""
        return NUMPY.get(self.datatype)


def _element_name(describe: str) -> str:
    name = describe.removesuffix(" | None")
    if name.startswith("list[") and name.endswith("]"):
        name = name[5:-1]
    return name.removeprefix("np.").removeprefix("numpy.")


def tensor_info(f: FieldSchema) -> TensorInfo | None:
    """``f`` as a V2 tensor; ``None`` if it has no V2 form (a field of a plugin's own
    message type, a complex tensor)."""
    wire = f.wire
    if wire.tensor is not None:
        spec = wire.tensor
        if spec.dtype is None or spec.dtype not in DATATYPES:
            return None
        datatype = DATATYPES[spec.dtype]
        if spec.dims is None:
            return TensorInfo(f.name, datatype, (-1,), "tensor", any_rank=True)
        shape = tuple(d if isinstance(d, int) else -1 for d in spec.dims)
        return TensorInfo(f.name, datatype, shape, "tensor", dims=tuple(spec.dims))
    element = _element_name(wire.describe)
    if element in SCALAR_TYPES and element in DATATYPES:
        datatype = DATATYPES[element]
    elif wire.proto_type in _BY_PROTO_TYPE:
        datatype = _BY_PROTO_TYPE[wire.proto_type]
    else:
        return None
    text = wire.proto_type == F.TYPE_STRING
    if wire.repeated:
        return TensorInfo(f.name, datatype, (-1,), "list", text=text)
    return TensorInfo(f.name, datatype, (1,), "scalar", text=text)
