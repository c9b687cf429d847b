"""The framework integrations' import paths, kept stable across the move to plugins.

``blazerpc.contrib.pytorch``, ``blazerpc.contrib.tensorflow`` and
``blazerpc.contrib.onnx`` re-export the helpers of the installed plugin distributions
(``blazerpc-torch``, ``blazerpc-tf``, ``blazerpc-onnx``). Core itself never imports a
framework: without the plugin, importing one of these modules raises an ``ImportError``
that says how to install it (``pip install ./plugins/blazerpc-torch`` from the root of the
repository: they are not on PyPI).
"""
