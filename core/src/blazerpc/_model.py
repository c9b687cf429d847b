"""A registered model, and how its signature becomes a :class:`MethodSchema`."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pluggy

from ._install import plugin_install
from ._plugins import entry_point_failures, failed_plugin_for_module
from .batching._plan import BatchSettings
from .exceptions import InferenceError, ModelRegistrationError, TypeMappingError
from .wire import ArrayConverter, FieldContext, WireType
from .wire._codec import default_problem
from .wire._schema import FieldSchema, MethodSchema, Schema, base_name, field_name_problems

__all__ = ["Model", "ModelSpec", "build_method", "check_defaults", "make_to_array"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*")
DEFAULT_VERSION = "1"

#: Top-level modules whose types a known plugin maps, for error messages.
_PLUGIN_FOR_MODULE = {
    "torch": "blazerpc-torch",
    "tensorflow": "blazerpc-tf",
    "keras": "blazerpc-tf",
    "onnxruntime": "blazerpc-onnx",
    "onnx": "blazerpc-onnx",
}

_STREAM_ORIGINS = {
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
}

_NO_OVERRIDES = BatchSettings()

Kind = Literal["function", "coroutine", "generator", "async_generator"]


def _code_of_call(func: Any) -> Any:
    """The function whose code runs when ``func`` is called: through
    ``functools.partial``, bound methods and a callable object's ``__call__``.

    Not through ``__wrapped__``: a wrapper made with ``functools.wraps`` runs its own
    code, and that code (``def`` or ``async def``) says whether calling it returns a
    coroutine.
    """
    for _ in range(100):  # each step peels one layer; a cycle would be a broken object
        if isinstance(func, functools.partial):
            func = func.func
        elif inspect.ismethod(func):
            func = func.__func__
        elif inspect.isfunction(func) or inspect.isbuiltin(func) or isinstance(func, type):
            return func
        else:
            call = getattr(func, "__call__", None)  # noqa: B004 - the bound __call__, not callable()
            if (
                call is None
                or call is func
                or not (inspect.ismethod(call) or isinstance(call, functools.partial))
            ):
                return func  # implemented in C (a method-wrapper): plain sync code
            func = call
    return func


def _kind(func: Callable[..., Any]) -> Kind:
    target = _code_of_call(func)
    if inspect.iscoroutinefunction(target):
        return "coroutine"
    # A generator wrapped by a plain decorator (functools.wraps) still yields: the
    # wrapper returns the generator it made.
    wrapped = inspect.unwrap(target) if inspect.isfunction(target) else target
    if inspect.isasyncgenfunction(target) or inspect.isasyncgenfunction(wrapped):
        return "async_generator"
    if inspect.isgeneratorfunction(target) or inspect.isgeneratorfunction(wrapped):
        return "generator"
    return "function"


@dataclass(frozen=True)
class Model:
    """A model registered with ``@app.model(...)``, as :attr:`BlazeApp.models` lists it
    (public as ``blazerpc.Model``).

    Attributes:
        name: the name it was registered under.
        version: its version (``"1"`` when none was given).
        func: the function served: the one registered, or what a plugin's
            ``blazerpc_adapt_model`` made of it (a torch module becomes a function).
        streaming: whether it is a server-streaming RPC.
        kind: how it is called: ``"function"`` and ``"generator"`` run in a worker
            thread, ``"coroutine"`` and ``"async_generator"`` on the event loop.
    """

    name: str
    version: str
    func: Callable[..., Any]
    streaming: bool
    kind: Kind


@dataclass(frozen=True)
class ModelSpec(Model):
    """A :class:`Model` with what start-up needs besides: whether its version was given,
    and its own batching settings."""

    explicit_version: bool = False
    batching: BatchSettings = _NO_OVERRIDES

    @classmethod
    def create(
        cls,
        name: str,
        version: str | None,
        func: Callable[..., Any],
        streaming: bool,
        batching: BatchSettings = _NO_OVERRIDES,
    ) -> ModelSpec:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ModelRegistrationError(
                f"model name {name!r} is not valid: use letters, digits, '-' and '_', starting with a letter"
            )
        if version is not None and (not isinstance(version, str) or not _VERSION.fullmatch(version)):
            raise ModelRegistrationError(
                f"model {name!r}: version {version!r} is not valid: use letters, digits, '.' and '_'"
            )
        if not callable(func):
            raise ModelRegistrationError(f"model {name!r}: {func!r} is not callable")
        kind = _kind(func)
        is_generator = kind in ("generator", "async_generator")
        if streaming and not is_generator:
            raise ModelRegistrationError(
                f"model {name!r} has streaming=True but {_qualname(func)} is not a generator: "
                "yield each message (def ... yield, or async def ... yield)"
            )
        if is_generator and not streaming:
            raise ModelRegistrationError(
                f"model {name!r}: {_qualname(func)} is a generator; pass streaming=True to "
                "stream what it yields"
            )
        return cls(
            name=name,
            version=version or DEFAULT_VERSION,
            func=func,
            streaming=streaming,
            kind=kind,
            explicit_version=version is not None,
            batching=batching.check(f"model {name!r}"),
        )

    @property
    def base_name(self) -> str:
        """``Sentiment``, or ``SentimentV2`` for an explicit version ``"2"``."""
        return base_name(self.name, self.version if self.explicit_version else None)


def _qualname(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


def _describe_annotation(annotation: Any) -> str:
    if isinstance(annotation, type) and getattr(annotation, "spec", None) is not None:
        return annotation.__qualname__  # TensorInput[float32, 'batch']
    if isinstance(annotation, type) and not typing.get_args(annotation):
        module = annotation.__module__
        return annotation.__qualname__ if module == "builtins" else f"{module}.{annotation.__qualname__}"
    return repr(annotation)


def _plugin_hint(annotation: Any) -> str:
    modules = {getattr(annotation, "__module__", "") or ""}
    modules.update(getattr(arg, "__module__", "") or "" for arg in typing.get_args(annotation))
    for module in sorted(modules):
        owner = failed_plugin_for_module(module) if module else None
        if owner is not None:  # the type comes from an installed plugin that failed
            return (
                f" The plugin {owner.name} ({owner.distribution}) is installed but failed to load: "
                f"{owner.error}; see 'blaze plugins list'."
            )
    for module in modules:
        distribution = _PLUGIN_FOR_MODULE.get(module.split(".")[0])
        if distribution is None:
            continue
        failed = [f for f in entry_point_failures() if f.distribution == distribution]
        if failed:
            return f" The plugin {distribution} is installed but failed to load: {failed[0].error}"
        return f" Install the plugin that maps it: {plugin_install(distribution)}"
    return (
        " Supported: str, int, float, bool, bytes, list[T], T | None, numpy scalar types, "
        "TensorInput/TensorOutput, np.ndarray, and types of installed plugins "
        "(see 'blaze plugins list')."
    )


class _Mapper:
    """Maps annotations of one model through the type-mapping hook."""

    def __init__(self, pm: pluggy.PluginManager, model: str, to_array: Callable[[Any], np.ndarray]) -> None:
        self._hook = pm.hook.blazerpc_map_type
        self._model = model
        self._to_array = to_array

    def __call__(self, annotation: Any, name: str, direction: Literal["input", "output"]) -> WireType:
        def resolve(inner: Any) -> WireType:
            context = FieldContext(self._model, name, direction, resolve, self._to_array)
            wire: WireType | None = self._hook(annotation=inner, context=context)
            if wire is None:
                what = "parameter" if direction == "input" else "result field"
                raise TypeMappingError(
                    f"model {self._model!r}: {what} {name!r} has type {_describe_annotation(inner)}, "
                    f"which no loaded plugin maps to a protobuf field.{_plugin_hint(inner)}"
                )
            return wire

        return resolve(annotation)


def _signature(spec: ModelSpec) -> inspect.Signature:
    try:
        return inspect.signature(spec.func, eval_str=True)
    except (NameError, SyntaxError, TypeError) as exc:
        raise ModelRegistrationError(
            f"model {spec.name!r}: cannot read the annotations of {_qualname(spec.func)}: {exc}"
        ) from None


def _stream_item(spec: ModelSpec, annotation: Any) -> Any:
    """``Iterator[str]`` / ``AsyncIterator[str]`` -> ``str``; a plain ``str`` stays."""
    origin = typing.get_origin(annotation)
    if origin in _STREAM_ORIGINS or annotation in _STREAM_ORIGINS:
        args = typing.get_args(annotation)
        if not args:
            raise ModelRegistrationError(
                f"model {spec.name!r}: say what each streamed message holds, e.g. Iterator[str]"
            )
        return args[0]
    return annotation


def _result_fields(
    spec: ModelSpec, annotation: Any
) -> tuple[Literal["value", "tuple", "fields"], list[tuple[str, Any]]]:
    """The response fields of a return annotation, by the documented naming rule."""
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if not args or args[-1] is Ellipsis:
            raise ModelRegistrationError(
                f"model {spec.name!r}: a tuple result needs a fixed number of typed items, got {annotation!r}"
            )
        return "tuple", [(f"result_{i}", arg) for i, arg in enumerate(args)]
    if isinstance(annotation, type):
        if typing.is_typeddict(annotation) or (
            issubclass(annotation, tuple) and hasattr(annotation, "_fields")
        ):
            return "fields", list(typing.get_type_hints(annotation, include_extras=True).items())
        if dataclasses.is_dataclass(annotation):
            hints = typing.get_type_hints(annotation, include_extras=True)
            return "fields", [(f.name, hints[f.name]) for f in dataclasses.fields(annotation)]
    return "value", [("result", annotation)]


def _check_names(spec: ModelSpec, what: str, names: Sequence[str]) -> None:
    """Names protobuf would reject, caught here rather than when the schema is built."""
    for name, why in field_name_problems(names):
        raise ModelRegistrationError(f"model {spec.name!r}: {what} {name!r} {why}")


def build_method(
    spec: ModelSpec, pm: pluggy.PluginManager, to_array: Callable[[Any], np.ndarray]
) -> MethodSchema:
    """Map ``spec``'s parameters and result to request and response fields."""
    signature = _signature(spec)
    mapper = _Mapper(pm, spec.name, to_array)
    _check_names(spec, "parameter", list(signature.parameters))

    inputs = []
    for number, param in enumerate(signature.parameters.values(), start=1):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ModelRegistrationError(
                f"model {spec.name!r}: *{param.name} / **{param.name} cannot become fields; "
                "declare each input as a named, annotated parameter"
            )
        if param.annotation is param.empty:
            raise ModelRegistrationError(
                f"model {spec.name!r}: parameter {param.name!r} has no type annotation"
            )
        wire = mapper(param.annotation, param.name, "input")
        if param.default is not param.empty:
            if wire.repeated:
                if param.default is None or len(param.default):
                    raise ModelRegistrationError(
                        f"model {spec.name!r}: parameter {param.name!r} ({wire.describe}) cannot default "
                        f"to {param.default!r}: an absent list arrives as an empty one, so only an "
                        "empty default can be honoured"
                    )
                inputs.append(FieldSchema(param.name, number, wire))
                continue
            wire = dataclasses.replace(wire, optional=True)
            inputs.append(FieldSchema(param.name, number, wire, param.default))
        else:
            inputs.append(FieldSchema(param.name, number, wire))

    returns = signature.return_annotation
    if returns is signature.empty or returns is None or returns is type(None):
        raise ModelRegistrationError(
            f"model {spec.name!r}: {_qualname(spec.func)} needs a return annotation (the response's type)"
        )
    if spec.streaming:
        returns = _stream_item(spec, returns)
    result_kind, result_fields = _result_fields(spec, returns)
    if not result_fields:
        raise ModelRegistrationError(f"model {spec.name!r}: the result type {returns!r} has no fields")
    _check_names(spec, "result field", [name for name, _ in result_fields])
    outputs = [
        FieldSchema(name, number, mapper(annotation, name, "output"))
        for number, (name, annotation) in enumerate(result_fields, start=1)
    ]
    base = spec.base_name
    return MethodSchema(
        model=spec.name,
        version=spec.version,
        rpc=f"Predict{base}",
        request=f"{base}Request",
        response=f"{base}Response",
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        streaming=spec.streaming,
        result_kind=result_kind,
        doc=_summary(spec.func),
    )


def check_defaults(method: MethodSchema, schema: Schema) -> None:
    """Each parameter's default is a value of its field's type: a wrong one (``x: int =
    "a"``) would otherwise reach the model whenever a client leaves the field out."""
    request_class = schema.classes[method.request]
    for f in method.inputs:
        if not f.has_default:
            continue
        problem = default_problem(f, request_class)
        if problem is not None:
            raise ModelRegistrationError(
                f"model {method.model!r}: parameter {f.name!r} defaults to {f.default!r}, which is not "
                f"a valid {f.wire.describe} ({problem}); give it a default of its type, or None"
            )


def _summary(func: Callable[..., Any]) -> str:
    """The first paragraph of a model function's own docstring ("" for none; a callable
    object's class docstring describes the class, not the model, and is left out)."""
    target = inspect.unwrap(func) if inspect.isroutine(func) else None
    doc = inspect.getdoc(target) if target is not None else None
    return doc.split("\n\n", 1)[0].strip() if doc else ""


def make_to_array(converters: Sequence[ArrayConverter]) -> Callable[[Any], np.ndarray]:
    """A function turning any value with a registered converter into an array."""
    exact: dict[type, Callable[[Any], np.ndarray]] = {c.type: c.to_array for c in converters}
    ordered = list(converters)

    def to_array(value: Any) -> np.ndarray:
        if type(value) is np.ndarray:
            return value
        convert = exact.get(type(value))
        if convert is None:
            for converter in ordered:
                if isinstance(value, converter.type):
                    convert = exact[type(value)] = converter.to_array
                    break
            else:
                if not hasattr(value, "__array__"):
                    hint = _plugin_hint(type(value))
                    raise InferenceError(
                        f"model returned {_describe_annotation(type(value))} for a tensor; "
                        f"return an np.ndarray.{hint if 'pip install' in hint else ''}"
                    )
                convert = exact[type(value)] = np.asarray
        return convert(value)

    return to_array
