"""TensorFlow <-> BlazeRPC: tensor specs, annotations, values and errors.

Nothing here imports TensorFlow at module import: the plugin is loaded by every ``blaze``
command, and an app that uses TensorFlow has imported it already.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from types import ModuleType
from typing import Annotated, Any

import numpy as np
from grpclib.const import Status

from blazerpc import RequestError, TensorInput, TensorOutput, TypeMappingError
from blazerpc.types import SCALAR_TYPES, TensorSpec, dtype_name

__all__ = [
    "SpecTensor",
    "annotation_spec",
    "blaze_spec",
    "import_tf",
    "loaded_tf",
    "op_error",
    "spec_annotation",
    "tf_signature",
    "to_numpy",
    "to_tensors",
]


def loaded_tf() -> ModuleType | None:
    """The ``tensorflow`` module if something in this process imported it, else ``None``."""
    return sys.modules.get("tensorflow")


def import_tf() -> ModuleType:
    """Import TensorFlow (once; the first import takes a few seconds)."""
    import tensorflow

    module: ModuleType = tensorflow
    return module


# --- specs ---------------------------------------------------------------------------------


def blaze_spec(tf_spec: Any, where: str) -> TensorSpec:
    """A ``tf.TensorSpec`` (or anything with ``shape`` and ``dtype``) as a BlazeRPC tensor spec.

    An unknown first dimension is the batch axis (``"batch"``); other unknown dimensions
    get a name of their own (``"<where>_<index>"``), so they take any size. An unknown
    rank is any shape. Raises :class:`TypeMappingError` for a dtype with no wire form.
    """
    tf = import_tf()
    dtype = tf.as_dtype(tf_spec.dtype)
    try:
        name = dtype_name(dtype.as_numpy_dtype)
    except TypeError:
        raise TypeMappingError(
            f"{where}: TensorFlow dtype {dtype.name} has no tensor wire form; serve a numeric "
            "or bool tensor (convert strings and bfloat16 inside the model)"
        ) from None
    shape = tf.TensorShape(tf_spec.shape)
    if shape.rank is None:
        return TensorSpec(dtype=name)
    dims: list[int | str] = []
    for index, dim in enumerate(shape.as_list()):
        if dim is None:
            dims.append("batch" if index == 0 else f"{where}_{index}")
        else:
            dims.append(int(dim))
    return TensorSpec(dtype=name, dims=tuple(dims))


def tf_spec(spec: TensorSpec) -> Any:
    """A BlazeRPC tensor spec as a ``tf.TensorSpec``; ``None`` when its dtype is open."""
    if spec.dtype is None:
        return None
    tf = import_tf()
    shape = None if spec.dims is None else [d if isinstance(d, int) else None for d in spec.dims]
    return tf.TensorSpec(shape=shape, dtype=tf.as_dtype(spec.dtype))


def _is_tf_tensor_type(tf: ModuleType, annotation: Any) -> bool:
    try:
        return annotation is tf.Tensor
    except TypeError:
        return False


def tf_annotation_spec(annotation: Any, where: str) -> TensorSpec | None:
    """The tensor a TensorFlow annotation declares, or ``None`` if it is none of these:

    ``tf.Tensor`` (any dtype and shape), ``Annotated[tf.Tensor, tf.TensorSpec(...)]``,
    or a ``tf.TensorSpec(...)`` used as the annotation itself.
    """
    tf = loaded_tf()
    if tf is None:
        return None
    if isinstance(annotation, tf.TensorSpec):
        return blaze_spec(annotation, where)
    if _is_tf_tensor_type(tf, annotation):
        return TensorSpec()
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        if not _is_tf_tensor_type(tf, base):
            return None
        for item in metadata:
            if isinstance(item, tf.TensorSpec):
                return blaze_spec(item, where)
        return TensorSpec()
    return None


def annotation_spec(annotation: Any, where: str) -> TensorSpec | None:
    """The tensor an annotation declares: a TensorFlow one, or core's ``TensorInput`` /
    ``TensorOutput``, ``np.ndarray``; ``None`` for anything else."""
    if isinstance(annotation, type) and issubclass(annotation, TensorInput | TensorOutput | SpecTensor):
        return annotation.spec
    if annotation is np.ndarray:
        return TensorSpec()
    return tf_annotation_spec(annotation, where)


class SpecTensor:
    """Base of the annotations computed from TensorFlow specs (a signature's inputs and
    outputs): a tensor field with exactly ``spec``, decoded to ``np.ndarray`` (the served
    function converts it, after batching has joined the requests with numpy)."""

    spec: typing.ClassVar[TensorSpec] = TensorSpec()


_SPEC_CLASSES: dict[TensorSpec, type[SpecTensor]] = {}


def spec_annotation(tf_spec: Any, where: str) -> Any:
    """The annotation of a field computed from a TensorFlow spec: a scalar type for a
    rank-0 number (``np.float32``; core's ``SCALAR_TYPES``), else a tensor of exactly that
    dtype and shape."""
    spec = blaze_spec(tf_spec, where)
    if spec.dims == () and spec.dtype in SCALAR_TYPES:
        return SCALAR_TYPES[spec.dtype]
    cls = _SPEC_CLASSES.get(spec)
    if cls is None:
        name = f"tf.Tensor[{spec.describe()}]"
        attrs = {"spec": spec, "__module__": __name__, "__qualname__": name}
        cls = _SPEC_CLASSES[spec] = type(name, (SpecTensor,), attrs)
    return cls


def tf_signature(specs: typing.Sequence[Any]) -> list[Any] | None:
    """An ``input_signature`` from the parameters' annotations' specs, when every one is a
    tensor of known dtype; else ``None``."""
    out = []
    for spec in specs:
        converted = None if spec is None else tf_spec(spec)
        if converted is None:
            return None
        out.append(converted)
    return out


# --- values --------------------------------------------------------------------------------


Converter = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def to_tensors(tf: ModuleType, types: type | tuple[type, ...] = np.ndarray) -> Converter:
    """A function turning the arguments of a call that are ``types`` into tensors."""
    convert = tf.convert_to_tensor

    def apply(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = tuple(convert(a) if isinstance(a, types) else a for a in args)
        if kwargs:
            kwargs = {k: convert(v) if isinstance(v, types) else v for k, v in kwargs.items()}
        return args, kwargs

    return apply


def to_numpy(value: Any) -> Any:
    """``value`` with every ``tf.Tensor`` / ``tf.Variable`` in it (also inside tuples,
    lists and dicts) turned into an ``np.ndarray``."""
    tf = loaded_tf()
    if tf is None:
        return value
    return _to_numpy(tf, value)


def _to_numpy(tf: ModuleType, value: Any) -> Any:
    if isinstance(value, tf.Tensor | tf.Variable):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(tf, v) for k, v in value.items()}
    if isinstance(value, tuple):
        items = [_to_numpy(tf, v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_to_numpy(tf, v) for v in value]
    return value


# --- errors --------------------------------------------------------------------------------


def op_error(exc: Exception) -> RequestError:
    """A TensorFlow ``OpError`` as the request error with the same status.

    TensorFlow's error codes are gRPC's (``InvalidArgumentError`` is 3, INVALID_ARGUMENT),
    which is also how TensorFlow Serving answers.
    """
    code = getattr(exc, "error_code", None)
    try:
        status = Status(code)
    except ValueError:
        status = Status.INTERNAL
    message = getattr(exc, "message", None) or str(exc)
    return RequestError(f"TensorFlow {type(exc).__name__}: {message.strip()}", status=status)
