"""BlazeRPC plugin for TensorFlow: tensors, functions, Keras models and SavedModels.

    from blazerpc_tf import SavedModel, tf_model

Installing it (``pip install ./core ./plugins/blazerpc-tf`` from the root of the BlazeRPC
repository) is all it takes:
``blaze`` finds it through the ``blazerpc`` entry points. See the README of the
distribution for what it maps and serves.
"""

from importlib import metadata

from ._model import tf_model
from ._saved_model import SavedModel

__all__ = ["SavedModel", "__version__", "tf_model"]

__version__ = metadata.version("blazerpc-tf")
