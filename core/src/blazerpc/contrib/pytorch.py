"""``from blazerpc.contrib.pytorch import torch_model``: the ``blazerpc-torch`` plugin's helpers.

See :mod:`blazerpc_torch`. Without the plugin installed, importing this module raises an
``ImportError`` saying how to install it (``pip install ./plugins/blazerpc-torch``).
"""

from __future__ import annotations

from ._plugin import plugin_exports

_exports = plugin_exports(__name__, "blazerpc_torch", "blazerpc-torch", ["torch_model", "TorchTensor"])
globals().update(_exports)
torch_model = _exports["torch_model"]
TorchTensor = _exports["TorchTensor"]

__all__ = sorted(_exports)
