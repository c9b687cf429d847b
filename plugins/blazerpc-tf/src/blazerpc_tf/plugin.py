"""The hooks of the ``tf`` plugin (entry point ``blazerpc`` / ``tf``).

Importing this module does not import TensorFlow, so installing the plugin costs nothing
to apps that do not use it: each hook looks at TensorFlow only once the app has imported
it (an annotation that is a ``tf.Tensor`` means TensorFlow is loaded already).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from blazerpc import hookimpl
from blazerpc.wire import ArrayConverter, BatchAxis, FieldContext, WireType, tensor_wire_type

from ._convert import SpecTensor, loaded_tf, tf_annotation_spec
from ._model import is_keras_model, is_tf_function, tf_model
from ._saved_model import SavedModel

__all__ = [
    "blazerpc_adapt_model",
    "blazerpc_array_converters",
    "blazerpc_map_type",
]


def _batch_axis() -> BatchAxis:
    """Requests' ``tf.Tensor`` inputs joined with ``tf.concat`` along the first axis."""
    tf = loaded_tf()
    assert tf is not None
    concat = tf.concat

    def join(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else concat(values, axis=0)

    def rows(value: Any) -> int:
        return int(value.shape[0])

    def key(value: Any) -> tuple[str, tuple[int | None, ...]]:
        return value.dtype.name, tuple(value.shape[1:])

    return BatchAxis(concat=join, rows=rows, key=key)


@hookimpl
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    """``tf.Tensor``, ``Annotated[tf.Tensor, tf.TensorSpec(...)]`` and ``tf.TensorSpec(...)``
    annotations are tensor fields; the model receives a ``tf.Tensor``.

    The annotations ``tf_model`` and ``SavedModel`` compute from TensorFlow specs are
    tensor fields decoded to numpy, which the served function converts.
    """
    if isinstance(annotation, type) and issubclass(annotation, SpecTensor):
        return tensor_wire_type(annotation.spec, context, describe=annotation.__qualname__)
    spec = tf_annotation_spec(annotation, context.name)
    if spec is None:
        return None
    tf = loaded_tf()
    assert tf is not None
    describe = f"tf.Tensor {spec.describe()}"
    if context.direction == "output":
        return tensor_wire_type(spec, context, describe=describe)
    convert: Callable[[Any], Any] = tf.convert_to_tensor
    return tensor_wire_type(spec, context, from_array=convert, describe=describe, batch=_batch_axis())


def _tensor_to_array(value: Any) -> Any:
    return value.numpy()


@hookimpl
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    """``tf.Tensor`` and ``tf.Variable`` results become numpy arrays."""
    tf = loaded_tf()
    if tf is None:  # no model of this process uses TensorFlow
        return []
    return [ArrayConverter(tf.Tensor, _tensor_to_array), ArrayConverter(tf.Variable, _tensor_to_array)]


@hookimpl
def blazerpc_adapt_model(obj: Any, name: str) -> Callable[..., Any] | None:
    """A :class:`SavedModel`, a Keras model or a ``tf.function`` registered directly with
    ``app.model(name)`` is served as :func:`tf_model` serves it."""
    if isinstance(obj, SavedModel):
        return obj.servable()
    if is_keras_model(obj) or is_tf_function(obj):
        return tf_model(obj)
    return None
