"""``ONNXModel``: an ONNX Runtime session, and the schema its graph implies."""

from __future__ import annotations

import inspect
import keyword
import os
import re
import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from blazerpc import InvalidInputError, ModelRegistrationError, TensorInput, TensorOutput
from blazerpc.types import TENSOR_DTYPES

__all__ = ["ONNXModel"]

CPU = "CPUExecutionProvider"
#: Available in every build, but it calls a remote endpoint: used only when asked for.
_NOT_BY_DEFAULT = {"AzureExecutionProvider"}

#: ONNX's names of the wire dtypes where they are not numpy's.
_ONNX_NAMES = {"float32": "float", "float64": "double"}
#: ONNX Runtime's tensor types that have a wire form, by the numpy name used on the wire.
_WIRE_DTYPES = {f"tensor({_ONNX_NAMES.get(name, name)})": name for name in TENSOR_DTYPES}
_STRING = "tensor(string)"

Provider = str | tuple[str, dict[str, Any]]


def _provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def choose_providers(requested: Sequence[Provider] | None, what: str) -> list[Provider]:
    """The providers to create a session with: the requested ones this onnxruntime build
    has, in order, then CPU. Unavailable ones are dropped with a warning; a name ONNX
    Runtime does not know at all is an error (a typo, most likely)."""
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in available if p not in _NOT_BY_DEFAULT] or [CPU]
    if isinstance(requested, str):
        requested = [requested]
    known = set(ort.get_all_providers())
    unknown = [_provider_name(p) for p in requested if _provider_name(p) not in known]
    if unknown:
        raise ValueError(
            f"{what}: {', '.join(unknown)} "
            + (
                "is not an ONNX Runtime execution provider"
                if len(unknown) == 1
                else "are not ONNX Runtime execution providers"
            )
            + f"; known: {', '.join(sorted(known))}"
        )
    usable = [p for p in requested if _provider_name(p) in available]
    missing = [_provider_name(p) for p in requested if _provider_name(p) not in available]
    if not any(_provider_name(p) == CPU for p in usable):
        usable.append(CPU)
    if missing:
        warnings.warn(
            f"{what}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not available in this "
            f"onnxruntime {ort.__version__} build (available: {', '.join(available)}); falling back to "
            f"{', '.join(_provider_name(p) for p in usable)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return usable


# --- the graph's fields -----------------------------------------------------------------


def _field_name(name: str, taken: set[str]) -> str:
    """A graph name as a protobuf field and Python parameter name (``input.1`` -> ``input_1``)."""
    field = re.sub(r"\W", "_", name) or "value"
    if field[0].isdigit():
        field = "x_" + field
    if keyword.iskeyword(field):
        field += "_"
    base, n = field, 2
    while field in taken:
        field, n = f"{base}_{n}", n + 1
    taken.add(field)
    return field


BATCH = "batch"


def _symbol(dim: Any) -> str | None:
    """The name of a symbolic ONNX dim, ``None`` for a fixed or an unnamed one."""
    return dim if isinstance(dim, str) and dim else None


def _fixed(dim: Any) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0


class DimNames:
    """BlazeRPC dims for the shapes of one graph, its inputs and outputs together.

    - A fixed dim stays a number.
    - A dynamic first dim is the ``"batch"`` axis when it can be one: an unnamed one, or
      a symbol that names no other dim of the graph. A symbol that also names a later
      dim (``["N", "N"]``: a square matrix cannot be cut into rows) keeps its name, so
      the two stay equal; and when a later dim of the graph is named ``"batch"`` (a
      time-major ``["seq", "batch", 4]``), the graph's batch is not its first dim and
      no dim becomes the batch axis (joining requests along ``seq`` would change the
      numbers). Only a first dim is ever the batch axis.
    - Every other symbol keeps its name (made a valid identifier), one name per symbol
      across the graph, so inputs that share it must agree on it; never ``"batch"``,
      and never the name of another symbol.
    - Unnamed dims get names of their own.
    """

    def __init__(self, shapes: Sequence[Sequence[Any] | None]) -> None:
        later = {_symbol(d) for shape in shapes if shape for d in shape[1:]} - {None}
        time_major = any(re.sub(r"\W", "_", name) == BATCH for name in later if name is not None)
        self._batch_symbols = (
            set() if time_major else {_symbol(shape[0]) for shape in shapes if shape} - later - {None}
        )
        self._batch_unnamed = not time_major
        self._taken = {BATCH}
        self._names: dict[str, str] = {}
        for shape in shapes:
            for i, dim in enumerate(shape or ()):
                name = _symbol(dim)
                if name is not None and not (i == 0 and name in self._batch_symbols):
                    self._names.setdefault(name, self._unique(re.sub(r"\W", "_", name)))

    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self._taken:
            name, n = f"{base}_{n}", n + 1
        self._taken.add(name)
        return name

    def dims(self, field: str, shape: Sequence[Any] | None) -> tuple[int | str, ...] | None:
        """The dims of one input or output (``None``: its rank is unknown)."""
        if shape is None:
            return None
        dims: list[int | str] = []
        for i, dim in enumerate(shape):
            name = _symbol(dim)
            if _fixed(dim):
                dims.append(dim)
            elif i == 0 and (name in self._batch_symbols or (name is None and self._batch_unnamed)):
                dims.append(BATCH)
            elif name is not None:
                dims.append(self._names[name])
            else:
                dims.append(self._unique(f"{field}_dim{i}"))
        return tuple(dims)


@dataclass(frozen=True)
class GraphField:
    """One input or output of the graph, as a field of the generated schema."""

    name: str  # in the graph
    field: str  # in the schema
    annotation: Any
    strings: bool  # a 1-d string tensor, carried as list[str]


def _graph_fields(args: Sequence[Any], direction: str, what: str, names: DimNames) -> list[GraphField]:
    taken: set[str] = set()
    fields = []
    for arg in args:
        field = _field_name(arg.name, taken)
        dims = names.dims(field, arg.shape)
        if arg.type == _STRING:
            if dims is None or len(dims) != 1:
                raise ModelRegistrationError(
                    f"{what}: {direction} {arg.name!r} is a string tensor of shape {arg.shape}; only "
                    "1-d string tensors (list[str]) can be served. Write a function that calls predict()"
                )
            fields.append(GraphField(arg.name, field, list[str], True))
            continue
        dtype = _WIRE_DTYPES.get(arg.type)
        if dtype is None:
            raise ModelRegistrationError(
                f"{what}: {direction} {arg.name!r} has type {arg.type}, which has no wire form; write a "
                "function that calls predict() and converts it"
            )
        kind = TensorInput if direction == "input" else TensorOutput
        if dims is None:
            annotation = kind[np.dtype(dtype)]  # any shape
        else:
            annotation = kind[(np.dtype(dtype), *dims)] if dims else kind[np.dtype(dtype), ()]
        fields.append(GraphField(arg.name, field, annotation, False))
    return fields


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"\W|_", name) if part) or "Onnx"


# --- the model --------------------------------------------------------------------------


class ONNXModel:
    """An ONNX model run by ONNX Runtime.

    ``path`` is a ``.onnx`` file (or the model's bytes). ``providers`` are tried in order
    (names, or ``(name, options)`` pairs); those this onnxruntime build does not have
    are dropped with a ``RuntimeWarning`` and the CPU provider is always last. Without
    ``providers``, every available one is used (GPU first when there is one).

    Register it directly and the schema comes from the graph::

        app.model("clf")(ONNXModel("model.onnx"))

    Its request fields are the graph's inputs and its response fields the graph's outputs,
    by name (``input.1`` becomes ``input_1``), with their dtypes and shapes; a dynamic
    first dimension is the ``"batch"`` axis, so the model is batched. Or call
    :meth:`predict` from a function of your own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | bytes,
        providers: Sequence[Provider] | None = None,
        *,
        session_options: ort.SessionOptions | None = None,
    ) -> None:
        self.path = path if isinstance(path, bytes) else os.fspath(path)
        what = "ONNXModel(<bytes>)" if isinstance(path, bytes) else f"ONNXModel({self.path!r})"
        self.session = ort.InferenceSession(
            self.path, sess_options=session_options, providers=choose_providers(providers, what)
        )
        self._what = what
        self.input_names = [i.name for i in self.session.get_inputs()]
        # What a list or a number given to predict() becomes (arrays are passed as they are).
        self._dtypes = {
            i.name: object if i.type == _STRING else _WIRE_DTYPES.get(i.type)
            for i in self.session.get_inputs()
        }
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        """The providers the session runs on, in order."""
        return list(self.session.get_providers())

    def __repr__(self) -> str:
        return f"<{self._what} providers={self.providers}>"

    def predict(self, *inputs: Any, **named: Any) -> list[np.ndarray]:
        """Run the graph; returns every output, in the graph's order.

        Inputs go by position in the graph's order, or by name: ``predict(x)``,
        ``predict(input_ids=ids, attention_mask=mask)``. Arrays are passed as they are;
        lists and numbers become arrays of the input's dtype.
        """
        if len(inputs) > len(self.input_names):
            raise TypeError(f"{self._what} takes {len(self.input_names)} inputs, got {len(inputs)}")
        feed = dict(zip(self.input_names, inputs, strict=False))
        for name, value in named.items():
            if name not in self.input_names:
                raise TypeError(f"{self._what} has no input {name!r}; its inputs: {self.input_names}")
            if name in feed:
                raise TypeError(f"{self._what}: input {name!r} given twice")
            feed[name] = value
        missing = [n for n in self.input_names if n not in feed]
        if missing:
            raise TypeError(f"{self._what}: missing inputs {missing}")
        arrays = {
            k: v if isinstance(v, np.ndarray) else np.asarray(v, self._dtypes[k]) for k, v in feed.items()
        }
        outputs: list[np.ndarray] = self.session.run(None, arrays)
        return outputs

    def as_function(self, model: str | None = None) -> Callable[..., Any]:
        """A function serving this model, with a signature built from the graph."""
        what = f"model {model!r}" if model else self._what
        graph_inputs, graph_outputs = self.session.get_inputs(), self.session.get_outputs()
        names = DimNames([arg.shape for arg in (*graph_inputs, *graph_outputs)])
        inputs = _graph_fields(graph_inputs, "input", what, names)
        outputs = _graph_fields(graph_outputs, "output", what, names)
        make_typed_dict: Any = typing.TypedDict
        result = make_typed_dict(
            f"{_camel(model or 'Onnx')}Outputs", {f.field: f.annotation for f in outputs}
        )
        run = self.session.run
        output_names = [f.name for f in outputs]

        def predict(*args: Any) -> dict[str, Any]:
            feed = {
                f.name: np.array(value, dtype=object) if f.strings else value
                for f, value in zip(inputs, args, strict=True)
            }
            try:
                values = run(output_names, feed)
            except InvalidArgument as exc:  # shapes the graph rejects: the request's fault
                raise InvalidInputError(str(exc)) from None
            return {
                f.field: value.tolist() if f.strings else value
                for f, value in zip(outputs, values, strict=True)
            }

        predict.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(f.field, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=f.annotation)
                for f in inputs
            ],
            return_annotation=result,
        )
        predict.__name__ = predict.__qualname__ = f"{_camel(model or 'Onnx')}Model"
        predict.__doc__ = f"{self._what}: inputs {self.input_names}, outputs {self.output_names}"
        return predict
