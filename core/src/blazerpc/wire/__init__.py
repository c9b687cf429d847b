"""The wire format: field types, tensors, the generated schema and its codecs.

Plugin authors use :class:`WireType`, :class:`FieldContext`, :func:`tensor_wire_type`
and :func:`scalar_wire_type`. :class:`Schema` (``BlazeApp.schema()``), its
:class:`MethodSchema` per model (``ServerInfo.methods``) and their :class:`FieldSchema`
describe what an app serves. The rest is BlazeRPC's own machinery.
"""

from ._fields import ArrayConverter, BatchAxis, FieldContext, WireType
from ._schema import FieldSchema, MethodSchema, Schema
from ._tensor import TENSOR_MESSAGE, decode_tensor, encode_tensor, tensor_message_proto
from ._types import scalar_wire_type, tensor_wire_type

__all__ = [
    "TENSOR_MESSAGE",
    "ArrayConverter",
    "BatchAxis",
    "FieldContext",
    "FieldSchema",
    "MethodSchema",
    "Schema",
    "WireType",
    "decode_tensor",
    "encode_tensor",
    "scalar_wire_type",
    "tensor_message_proto",
    "tensor_wire_type",
]
