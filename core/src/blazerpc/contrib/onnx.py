"""``from blazerpc.contrib.onnx import ONNXModel``: the ``blazerpc-onnx`` plugin's helpers.

See :mod:`blazerpc_onnx`. Without the plugin installed, importing this module raises an
``ImportError`` saying how to install it (``pip install ./plugins/blazerpc-onnx``).
"""

from __future__ import annotations

from ._plugin import plugin_exports

_exports = plugin_exports(__name__, "blazerpc_onnx", "blazerpc-onnx", ["ONNXModel"])
globals().update(_exports)
ONNXModel = _exports["ONNXModel"]

__all__ = sorted(_exports)
