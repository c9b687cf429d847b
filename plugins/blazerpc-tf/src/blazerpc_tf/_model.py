"""``tf_model``: serve TensorFlow functions, ``tf.function``s and Keras models."""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar, overload

import numpy as np

from blazerpc import ConfigurationError, ModelRegistrationError

from ._convert import (
    annotation_spec,
    import_tf,
    op_error,
    spec_annotation,
    tf_signature,
    to_numpy,
    to_tensors,
)

__all__ = ["is_keras_model", "tf_model"]

F = TypeVar("F", bound=Callable[..., Any])

#: Arguments converted to tensors for a model whose schema comes from TensorFlow specs
#: (arrays, and the numpy scalars of rank-0 specs).
NUMPY = (np.ndarray, np.generic)

#: What ``tf_model`` returns: a function BlazeRPC can serve (numpy in, numpy out).
Servable = Callable[..., Any]


@overload
def tf_model(obj: Any, /) -> Servable: ...


@overload
def tf_model(*, compile: bool | None = None, device: str | None = None) -> Callable[[Any], Servable]: ...


def tf_model(
    obj: Any = None, /, *, compile: bool | None = None, device: str | None = None
) -> Servable | Callable[[Any], Servable]:
    """Serve a TensorFlow function, ``tf.function`` or Keras model with BlazeRPC.

    Use it bare (``@tf_model``) or with options (``@tf_model(device="/CPU:0")``) under
    ``@app.model(...)``, or call it on an object (``app.model("clf")(tf_model(keras_model))``;
    a Keras model or ``tf.function`` given straight to ``app.model`` is adapted the same way).

    Every call converts the ``np.ndarray`` arguments to ``tf.Tensor`` (other arguments pass
    unchanged), runs the model, and turns every ``tf.Tensor`` in the result (also inside
    tuples, lists and dicts) into an ``np.ndarray``. A TensorFlow ``OpError`` raised by the
    model is answered with its own status (``InvalidArgumentError`` -> INVALID_ARGUMENT).

    What is served, and where its schema comes from:

    - a Python function (``def``, ``async def``, generators): its own annotations, kept
      as they are (``TensorInput[...]``, ``tf.Tensor``, ``Annotated[tf.Tensor,
      tf.TensorSpec([None, 4], tf.float32)]``, ``str``, ...).
    - a ``tf.function``: its Python function's annotations; parameters or a result left
      unannotated come from its ``input_signature`` and the outputs it traces. Without an
      ``input_signature`` one is built from the annotations (unknown first dimension =
      the batch axis), so every batch size runs the same trace; when the annotations do not
      say every dtype, the call uses ``reduce_retracing=True`` (a few traces at most).
    - a Keras model with known inputs (functional or ``Sequential`` with an ``Input``):
      one request field per model input, named after it, and the result from its outputs.

    Args:
        compile: run the model as a ``tf.function`` with the ``input_signature`` above
            (traced once). ``None`` (the default) compiles Keras models and re-signs
            ``tf.function``s, and leaves Python functions eager; ``False`` calls every model
            as it is.
        device: run every call under ``tf.device(device)`` (``"/CPU:0"``, ``"/GPU:1"``). A
            device this machine does not have fails here, at start-up.
    """

    def adapt(target: Any) -> Servable:
        return _adapt(target, compile=compile, device=device)

    if obj is None:
        return adapt
    return adapt(obj)


# --- what the object is -----------------------------------------------------------------------


def is_keras_model(obj: Any) -> bool:
    """Whether ``obj`` is a Keras model (Keras 3, or ``tf_keras``), without importing either."""
    for module_name in ("keras", "tf_keras"):
        module = sys.modules.get(module_name)
        model_type = getattr(module, "Model", None) if module is not None else None
        if isinstance(model_type, type) and isinstance(obj, model_type):
            return True
    return False


def is_tf_function(obj: Any) -> bool:
    """Whether ``obj`` is a ``tf.function`` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(obj, tf.types.experimental.PolymorphicFunction)


def _adapt(obj: Any, *, compile: bool | None, device: str | None) -> Servable:
    from ._saved_model import SavedModel

    if isinstance(obj, SavedModel):
        return obj.servable(device=device)
    tf = import_tf()
    placement = _placement(tf, device)
    if is_keras_model(obj):
        return _keras(tf, obj, compile, placement)
    if is_tf_function(obj):
        return _tf_function(tf, obj, compile, placement)
    if callable(obj):
        return _python_function(tf, obj, compile, placement, device)
    raise ModelRegistrationError(
        f"tf_model cannot serve {obj!r}: give it a function, a tf.function, a Keras model or a "
        "blazerpc_tf.SavedModel"
    )


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "name", None) or type(obj).__qualname__


# --- device -----------------------------------------------------------------------------------


def _placement(tf: ModuleType, device: str | None) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A context manager factory placing a call on ``device``; fails now if it is missing."""
    if device is None:
        return contextlib.nullcontext
    try:
        wanted = tf.DeviceSpec.from_string(device)
    except ValueError as exc:
        raise ConfigurationError(
            f"tf_model: device {device!r} is not a TensorFlow device name: {exc}"
        ) from None
    available = tf.config.list_logical_devices()
    for logical in available:
        have = tf.DeviceSpec.from_string(logical.name)
        if have.device_type == (wanted.device_type or "").upper() and wanted.device_index in (
            None,
            have.device_index,
        ):
            return functools.partial(tf.device, device)
    names = ", ".join(d.name for d in available) or "none"
    raise ConfigurationError(
        f"tf_model: device {device!r} is not available on this machine (TensorFlow sees: {names})"
    )


# --- the call -----------------------------------------------------------------------------------


def _sync_call(
    tf: ModuleType,
    target: Callable[..., Any],
    placement: Callable[[], contextlib.AbstractContextManager[Any]],
    name: str,
    types: type | tuple[type, ...] = np.ndarray,
    tuple_result: bool = False,
) -> Callable[..., Any]:
    """numpy arguments (of ``types``) -> tensors -> ``target`` -> numpy results; OpErrors
    get their status."""
    convert = to_tensors(tf, types)
    op_error_type = tf.errors.OpError

    def call(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = convert(args, kwargs)
        try:
            with placement():
                result = target(*args, **kwargs)
        except op_error_type as exc:
            raise op_error(exc) from exc
        if tuple_result and isinstance(result, list):
            result = tuple(result)  # Keras and tf.function give lists for several outputs
        return to_numpy(result)

    call.__name__ = call.__qualname__ = name
    return call


def _python_function(
    tf: ModuleType,
    func: Callable[..., Any],
    compile: bool | None,
    placement: Callable[[], contextlib.AbstractContextManager[Any]],
    device: str | None,
) -> Servable:
    convert = to_tensors(tf)
    op_error_type = tf.errors.OpError
    target = inspect.unwrap(func)
    if inspect.iscoroutinefunction(target):
        _no_compile(compile, func, "an async function")
        _no_device(device, func, "an async function")

        @functools.wraps(func)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = convert(args, kwargs)
            try:
                result = await func(*args, **kwargs)
            except op_error_type as exc:
                raise op_error(exc) from exc
            return to_numpy(result)

        return call_async
    if inspect.isgeneratorfunction(target):
        _no_compile(compile, func, "a generator")

        @functools.wraps(func)
        def call_generator(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = convert(args, kwargs)
            items = func(*args, **kwargs)
            while True:
                # Each step may run on another worker thread: place each one on its own.
                try:
                    with placement():
                        item = next(items)
                except StopIteration:
                    return
                except op_error_type as exc:
                    raise op_error(exc) from exc
                yield to_numpy(item)

        return call_generator
    if inspect.isasyncgenfunction(target):
        _no_compile(compile, func, "an async generator")
        _no_device(device, func, "an async generator")

        @functools.wraps(func)
        async def call_async_generator(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = convert(args, kwargs)
            try:
                async for item in func(*args, **kwargs):
                    yield to_numpy(item)
            except op_error_type as exc:
                raise op_error(exc) from exc

        return call_async_generator

    runner = func
    if compile:
        signature = _input_signature(func)
        runner = tf.function(func, input_signature=signature, reduce_retracing=signature is None)
    call = _sync_call(tf, runner, placement, _name(func))
    return functools.wraps(func)(call)


def _no_compile(compile: bool | None, func: Any, what: str) -> None:
    if compile:
        raise ModelRegistrationError(
            f"tf_model(compile=True): {_name(func)} is {what}; only a plain def can be compiled"
        )


def _no_device(device: str | None, func: Any, what: str) -> None:
    # tf.device is a per-thread stack: held across an await, it would leak into every
    # other coroutine of the event loop.
    if device is not None:
        raise ModelRegistrationError(
            f"tf_model(device=...): {_name(func)} is {what}, which runs on the event loop; "
            "use a def (it runs in a worker thread), or tf.device inside the model"
        )


def _input_signature(func: Callable[..., Any]) -> list[Any] | None:
    """An ``input_signature`` from ``func``'s parameter annotations, if they all declare
    tensors of known dtype."""
    try:
        signature = inspect.signature(func, eval_str=True)
    except (NameError, TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    if not params or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        return None
    return tf_signature([annotation_spec(p.annotation, p.name) for p in params])


# --- tf.function ----------------------------------------------------------------------------------


def _tf_function(
    tf: ModuleType,
    fn: Any,
    compile: bool | None,
    placement: Callable[[], contextlib.AbstractContextManager[Any]],
) -> Servable:
    name = _name(fn.python_function)
    try:
        python_signature = inspect.signature(fn.python_function, eval_str=True)
    except (NameError, SyntaxError, TypeError, ValueError) as exc:
        raise ModelRegistrationError(f"tf_model: cannot read the annotations of {name}: {exc}") from None
    params = list(python_signature.parameters.values())
    input_signature = fn.input_signature
    runner = fn
    if input_signature is None and compile is not False:
        input_signature = _input_signature(fn.python_function)
        if input_signature is not None:

            def signed(*args: Any) -> Any:
                return fn(*args)

            runner = tf.function(signed, input_signature=input_signature)
        else:

            def relaxed(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs)

            runner = tf.function(relaxed, reduce_retracing=True)

    if input_signature is not None:
        flat = list(input_signature)
        if len(flat) != len(params) or not all(isinstance(s, tf.TensorSpec) for s in flat):
            raise ModelRegistrationError(
                f"tf_model: {name}: input_signature {input_signature!r} does not give one "
                "tf.TensorSpec per parameter"
            )
        params = [
            p
            if p.annotation is not p.empty
            else p.replace(annotation=spec_annotation(spec, p.name), kind=p.POSITIONAL_OR_KEYWORD)
            for p, spec in zip(params, flat, strict=True)
        ]
    returns = python_signature.return_annotation
    if returns is python_signature.empty and input_signature is not None:
        outputs = fn.get_concrete_function(*input_signature).structured_outputs
        returns = _result_annotation(outputs, name)
    call = _sync_call(tf, runner, placement, name, NUMPY, typing.get_origin(returns) is tuple)
    call.__doc__ = fn.python_function.__doc__
    call.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    return call


def _result_annotation(outputs: Any, where: str) -> Any:
    """The return annotation of a traced result: one tensor, a tuple, or a dict of them."""
    if isinstance(outputs, dict):
        fields = {_identifier(key, where): spec_annotation(spec, str(key)) for key, spec in outputs.items()}
        return typing.TypedDict(f"{_camel(where)}Outputs", fields)  # type: ignore[operator]
    if isinstance(outputs, tuple | list):
        if not outputs:
            raise ModelRegistrationError(f"tf_model: {where} returns nothing")
        return tuple[tuple(spec_annotation(spec, f"result_{i}") for i, spec in enumerate(outputs))]  # type: ignore[misc]
    if outputs is None:
        raise ModelRegistrationError(f"tf_model: {where} returns nothing")
    return spec_annotation(outputs, "result")


_NOT_IDENTIFIER = re.compile(r"\W")


def _identifier(key: Any, where: str) -> str:
    name = str(key)
    if not name.isidentifier():
        raise ModelRegistrationError(
            f"tf_model: {where}: the name {name!r} cannot be a protobuf field name; rename it "
            "to letters, digits and '_'"
        )
    return name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[\W_]+", name) if part)


# --- Keras -------------------------------------------------------------------------------------


def _keras(
    tf: ModuleType,
    model: Any,
    compile: bool | None,
    placement: Callable[[], contextlib.AbstractContextManager[Any]],
) -> Servable:
    name = getattr(model, "name", None) or type(model).__name__
    try:
        inputs: Sequence[Any] = list(model.inputs)
        outputs: Any = model.outputs
    except (AttributeError, ValueError):
        inputs, outputs = [], None
    if not inputs or not outputs:
        raise ModelRegistrationError(
            f"tf_model: the Keras model {name!r} does not say its inputs (a subclassed model, or "
            "one never built with an Input): serve a function instead, e.g. "
            "@tf_model def predict(x: TensorInput[np.float32, 'batch', 4]) -> "
            "TensorOutput[np.float32, 'batch', 3]: return model(x)"
        )
    params: list[inspect.Parameter] = []
    for index, spec in enumerate(inputs):
        field = _field_name(getattr(spec, "name", None), f"input_{index}")
        if any(p.name == field for p in params):
            field = f"{field}_{index}"
        params.append(
            inspect.Parameter(
                field, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=spec_annotation(spec, field)
            )
        )
    if len(outputs) == 1:
        returns = spec_annotation(outputs[0], "result")
    else:
        returns = tuple[tuple(spec_annotation(s, f"result_{i}") for i, s in enumerate(outputs))]  # type: ignore[misc]

    def forward(*args: Any) -> Any:
        return model(list(args) if len(args) > 1 else args[0], training=False)

    runner: Callable[..., Any] = forward
    if compile is not False:
        signature = [tf.TensorSpec(shape=s.shape, dtype=s.dtype) for s in inputs]
        runner = tf.function(forward, input_signature=signature)

    call = _sync_call(tf, runner, placement, name, NUMPY, len(outputs) > 1)
    call.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    return call


def _field_name(raw: Any, fallback: str) -> str:
    name = _NOT_IDENTIFIER.sub("_", str(raw or ""))
    if not name or not name[0].isalpha():
        return fallback
    return name
