"""``from blazerpc.contrib.tensorflow import tf_model``: the ``blazerpc-tf`` plugin's helpers.

See :mod:`blazerpc_tf`. Without the plugin installed, importing this module raises an
``ImportError`` saying how to install it (``pip install ./plugins/blazerpc-tf``).
"""

from __future__ import annotations

from ._plugin import plugin_exports

_exports = plugin_exports(__name__, "blazerpc_tf", "blazerpc-tf", ["tf_model"])
globals().update(_exports)
tf_model = _exports["tf_model"]

__all__ = sorted(_exports)
