"""BlazeRPC plugin for ONNX Runtime.

Installing ``blazerpc-onnx`` is enough for a server to use it (entry point ``onnx`` in
the ``blazerpc`` group). It provides :class:`ONNXModel`, which wraps an
``onnxruntime.InferenceSession``: call :meth:`ONNXModel.predict` from your own function,
or register the model itself, ``app.model("clf")(ONNXModel("model.onnx"))``, and the
schema is generated from the graph's inputs and outputs.
"""

from ._model import ONNXModel

__version__ = "0.1.0"

__all__ = ["ONNXModel", "__version__"]
