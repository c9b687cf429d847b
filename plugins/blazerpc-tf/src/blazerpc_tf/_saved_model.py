"""``SavedModel``: serve a TensorFlow SavedModel directory through one of its signatures."""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from blazerpc import ConfigurationError

from ._convert import import_tf, op_error, spec_annotation
from ._model import _camel, _field_name, _placement

__all__ = ["SavedModel"]


class SavedModel:
    """A SavedModel directory, loaded now and served through one signature.

    Register it like a function; no annotations to write::

        app.model("classifier")(SavedModel("export/classifier"))

    The schema comes from the signature: one request field per input and one response
    field per output, in name order, each named as in the signature (``serving_default`` of a Keras
    ``model.export(...)`` has inputs named after the model's ``Input`` layers and outputs
    ``output_0``, ...), with the dtype and shape of its ``TensorSpec``. An unknown first
    dimension is the batch axis, so a signature whose inputs and outputs all have one is
    batched. ``blaze proto`` / reflection show the result.

    Args:
        path: the SavedModel directory (the one holding ``saved_model.pb``).
        signature: which signature to serve (``saved_model_cli show --dir PATH`` lists them).
        tags: the MetaGraph tags to load (TensorFlow's default: ``{"serve"}``).
        device: run every call under ``tf.device(device)``; a device this machine does not
            have fails at start-up.

    Loading fails with :class:`blazerpc.ConfigurationError` saying why (no such directory,
    no such signature, a dtype with no wire form such as ``tf.string``), so ``blaze serve``
    stops at start-up rather than at the first call.

    A ``SavedModel`` is also callable directly: ``model(x=array)`` returns a dict of numpy
    arrays by output name.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        signature: str = "serving_default",
        *,
        tags: Collection[str] | None = None,
        device: str | None = None,
    ) -> None:
        tf = import_tf()
        self.path = os.fspath(path)
        self.signature = signature
        self.device = device
        try:
            loaded = tf.saved_model.load(self.path, tags=list(tags) if tags is not None else None)
        except (OSError, ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise ConfigurationError(f"cannot load the SavedModel at {self.path!r}: {exc}") from None
        signatures = loaded.signatures
        if signature not in signatures:
            have = ", ".join(sorted(signatures)) or "none"
            raise ConfigurationError(
                f"the SavedModel at {self.path!r} has no signature {signature!r} (it has: {have})"
            )
        self._loaded = loaded  # the signature's variables live as long as this object
        self._function = signatures[signature]
        args, kwargs = self._function.structured_input_signature
        outputs = self._function.structured_outputs
        if args or not isinstance(outputs, dict):
            raise ConfigurationError(
                f"signature {signature!r} of {self.path!r} is not a serving signature "
                "(named inputs and outputs)"
            )
        #: The signature's inputs and outputs by name, as ``tf.TensorSpec``.
        # A signature's inputs and outputs are maps: fields are numbered in name order,
        # so re-exporting the same model gives the same .proto.
        self.inputs: dict[str, Any] = dict(sorted(kwargs.items()))
        self.outputs: dict[str, Any] = {
            key: tf.TensorSpec(spec.shape, spec.dtype) for key, spec in sorted(outputs.items())
        }
        self._in_fields = _fields(self.inputs, "input")
        self._out_fields = _fields(self.outputs, "output")
        self._signature = self._schema_signature()
        self._call: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"SavedModel({self.path!r}, signature={self.signature!r})"

    def _schema_signature(self) -> inspect.Signature:
        where = f"SavedModel {self.path!r}"
        params = [
            inspect.Parameter(
                field,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=_annotate(spec_annotation, self.inputs[key], field, where),
            )
            for field, key in self._in_fields
        ]
        outputs = {
            field: _annotate(spec_annotation, self.outputs[key], field, where)
            for field, key in self._out_fields
        }
        name = _camel(os.path.basename(os.path.normpath(self.path)) + "_" + self.signature) + "Outputs"
        returns = typing.TypedDict(name, outputs)  # type: ignore[misc]
        return inspect.Signature(params, return_annotation=returns)

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        """Run the signature on arrays (or tensors) by input name; numpy arrays by output name."""
        if self._call is None:
            self._call = self.servable()
        return self._call(**inputs)  # type: ignore[no-any-return]

    def servable(self, device: str | None = None) -> Callable[..., Any]:
        """The function BlazeRPC serves: numpy arrays in (by position or input name), a dict
        of numpy arrays out, with a ``__signature__`` that declares the schema."""
        tf = import_tf()
        placement = _placement(tf, device or self.device)
        function = self._function
        convert = tf.convert_to_tensor
        op_error_type = tf.errors.OpError
        in_keys = [key for _, key in self._in_fields]
        out_fields = self._out_fields
        signature = self._signature

        def call(*args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
            if kwargs or len(args) != len(in_keys):
                args = tuple(signature.bind(*args, **kwargs).arguments.values())
            feeds = {key: convert(value) for key, value in zip(in_keys, args, strict=True)}
            try:
                with placement():
                    result = function(**feeds)
            except op_error_type as exc:
                raise op_error(exc) from exc
            return {field: result[key].numpy() for field, key in out_fields}

        call.__name__ = call.__qualname__ = f"SavedModel[{os.path.basename(os.path.normpath(self.path))}]"
        call.__doc__ = f"Signature {self.signature!r} of the SavedModel at {self.path!r}."
        call.__signature__ = signature  # type: ignore[attr-defined]
        return call


def _fields(specs: dict[str, Any], fallback: str) -> list[tuple[str, str]]:
    """(field name, signature key) pairs; keys that are no identifiers are made into one."""
    out: list[tuple[str, str]] = []
    for index, key in enumerate(specs):
        field = _field_name(key, f"{fallback}_{index}")
        if any(f == field for f, _ in out):
            field = f"{field}_{index}"
        out.append((field, key))
    return out


def _annotate(make: Callable[[Any, str], Any], spec: Any, field: str, where: str) -> Any:
    try:
        return make(spec, field)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
