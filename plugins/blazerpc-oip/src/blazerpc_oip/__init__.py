"""blazerpc-oip: every BlazeRPC model through the Open Inference Protocol (KServe's V2
gRPC API, ``inference.GRPCInferenceService``, with Triton's additions), on the server's
own port. Installing the distribution is enough: ``blaze serve app:app`` then serves it.
"""

from ._datatypes import DATATYPES, TensorInfo, tensor_info
from ._proto import SERVICE, Messages, file_descriptor

__all__ = ["DATATYPES", "SERVICE", "Messages", "TensorInfo", "file_descriptor", "tensor_info"]
