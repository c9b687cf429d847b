"""BlazeRPC plugin for PyTorch.

Installing ``blazerpc-torch`` is enough for a server to use it (entry point ``torch`` in
the ``blazerpc`` group). It provides:

- ``torch.Tensor`` annotations, and ``TorchTensor[torch.float32, "batch", 4]`` to
  declare a dtype and shape: tensor fields whose values reach the model as tensors;
- tensors anywhere a model returns a tensor field's value;
- :func:`torch_model`: run a function on a device, under ``torch.inference_mode()``,
  with numpy in and out;
- ``app.model("name")(module)``: an ``nn.Module`` served through its ``forward``'s
  annotations.
"""

from ._model import available_devices, torch_model
from ._types import TorchTensor

__version__ = "0.1.0"

__all__ = ["TorchTensor", "__version__", "available_devices", "torch_model"]
