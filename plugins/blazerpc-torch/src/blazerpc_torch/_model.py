"""``torch_model``: run a function (or an ``nn.Module``) on a device, in inference mode,
with numpy at its edges."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

import numpy as np
import torch

from blazerpc.exceptions import ConfigurationError, ModelRegistrationError

from ._types import request_tensor, tensor_to_numpy

__all__ = ["ModuleOnDevice", "available_devices", "module_function", "resolve_device", "torch_model"]

F = TypeVar("F", bound=Callable[..., Any])

# Moving a read-only request array to another device reads it once and copies it there,
# so the temporary CPU tensor that shares it is never written: torch's warning about
# non-writable arrays does not apply to these calls (and only these: the filter is
# limited to this module).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)


def available_devices() -> list[str]:
    """The devices torch can use here: ``["cpu", "cuda:0", ...]``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def _why_unavailable(device: torch.device) -> str | None:
    if device.type == "cuda":
        # Neither call initializes CUDA, so a process may still fork after this check.
        if not torch.cuda.is_available():
            why = "built without CUDA" if torch.version.cuda is None else "CUDA found no usable GPU"
            return f"CUDA is not available (torch {torch.__version__}: {why})"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"there is no GPU {device.index}: torch sees {count}"
        return None
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "MPS is not available"
    try:
        torch.empty(0, device=device)
    except Exception as exc:  # noqa: BLE001 - any failure means the device cannot be used
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists here, or a :class:`ConfigurationError`
    saying why not and what does exist."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"torch_model(device={device!r}): not a torch device: {exc}") from None
    why = _why_unavailable(resolved)
    if why is not None:
        raise ConfigurationError(
            f"torch_model(device={str(resolved)!r}): {why}. Devices available here: "
            f"{', '.join(available_devices())}. Choose one of them, or run where {resolved} exists."
        )
    return resolved


# --- values in and out ------------------------------------------------------------------


def _to_device(value: Any, device: torch.device) -> Any:
    """Arrays and tensors -> tensors on ``device``; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, np.ndarray):
        if device.type == "cpu":
            # Copied if read-only (a request's bytes), shared if writable (a joined batch).
            return request_tensor(value)
        return torch.from_numpy(value).to(device)  # the transfer is the only copy
    return value


def _to_numpy(value: Any) -> Any:
    """Tensors -> numpy arrays of the same dtype (a 0-d tensor -> a 0-d array), inside
    tuples, named tuples, lists and dicts too; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return tensor_to_numpy(value)
    if isinstance(value, tuple):
        items = [_to_numpy(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def _wrap(func: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
    target = inspect.unwrap(func)
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise ConfigurationError(
            f"torch_model cannot wrap {getattr(func, '__qualname__', func)!r}: it is async. Make it a "
            "plain def: BlazeRPC runs sync models in worker threads, off the event loop"
        )

    def move(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [_to_device(a, device) for a in args], {k: _to_device(v, device) for k, v in kwargs.items()}

    if inspect.isgeneratorfunction(target):

        @functools.wraps(func)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            args_, kwargs_ = move(args, kwargs)
            generator = func(*args_, **kwargs_)
            try:
                while True:
                    # Each step may run in a different worker thread: inference mode is
                    # per thread, so it is entered for every step.
                    with torch.inference_mode():
                        try:
                            item = next(generator)
                        except StopIteration:
                            return
                    yield _to_numpy(item)
            finally:
                generator.close()

        return stream

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        args_, kwargs_ = move(args, kwargs)
        with torch.inference_mode():
            result = func(*args_, **kwargs_)
        return _to_numpy(result)

    return call


# --- modules ----------------------------------------------------------------------------


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def module_function(
    module: torch.nn.Module, device: torch.device | None = None, *, model: str | None = None
) -> Callable[..., Any]:
    """A servable function for ``module``: its ``forward`` annotations are the schema.

    The module is put in eval mode and, when ``device`` is given, moved there; otherwise
    inputs go to the device of its first parameter (or buffer).
    """
    where = f"model {model!r}: " if model else ""
    kind = type(module).__qualname__
    try:
        signature = inspect.signature(module.forward, eval_str=True)
    except (NameError, SyntaxError, TypeError, ValueError) as exc:
        raise ModelRegistrationError(f"{where}cannot read the annotations of {kind}.forward: {exc}") from None
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.annotation is p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if missing or signature.return_annotation is signature.empty:
        what = f"parameters {missing}" if missing else "the result"
        raise ModelRegistrationError(
            f"{where}{kind}.forward has no type annotation for {what}, and the schema is built from "
            "forward's annotations. Annotate it, e.g. def forward(self, x: TorchTensor[torch.float32, "
            "'batch', 4]) -> TorchTensor[torch.float32, 'batch', 2], or register a function that "
            "calls the module"
        )
    if device is not None:
        module.to(device)
    else:
        device = _module_device(module)
    module.eval()

    def forward(*args: Any, **kwargs: Any) -> Any:
        return module(*args, **kwargs)

    forward.__signature__ = signature  # type: ignore[attr-defined]
    forward.__name__ = forward.__qualname__ = kind
    forward.__module__ = type(module).__module__
    forward.__doc__ = type(module).__doc__
    return _wrap(forward, device)


class ModuleOnDevice:
    """``torch_model(device=...)(module)``: an ``nn.Module`` to serve on ``device``.

    Its function is built when it is registered (``app.model("name")(...)``), where the
    model's name is known, so a module that cannot be served says which model it is.
    Called directly, it runs like the registered function (built on the first call).
    """

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module
        self.device = device
        self._function: Callable[..., Any] | None = None

    def function(self, model: str | None = None) -> Callable[..., Any]:
        """The servable function (see :func:`module_function`), for model ``model``."""
        return module_function(self.module, self.device, model=model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._function is None:
            self._function = self.function()
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<torch_model {type(self.module).__qualname__} on {self.device}>"


# --- the decorator ----------------------------------------------------------------------


@overload
def torch_model(func: F, /) -> F: ...


@overload
def torch_model(*, device: str | torch.device = "cpu") -> Callable[[F], F]: ...


def torch_model(func: Any = None, /, *, device: str | torch.device = "cpu") -> Any:
    """Serve a PyTorch function (or ``nn.Module``) on ``device``.

    ``@torch_model`` or ``@torch_model(device="cuda")``, under ``@app.model(...)``:

    - inputs that are arrays or tensors arrive as tensors on ``device`` (other values,
      such as ``list[str]``, are passed as they are);
    - the call runs under ``torch.inference_mode()``;
    - tensors in the result (alone, or in a tuple, named tuple, list or dict) come back
      as numpy arrays of the same dtype, a 0-d tensor as a 0-d array (a float32 stays a
      float32; it still fills a ``float`` field).

    An ``nn.Module`` is served through its ``forward`` annotations, moved to ``device``
    and put in eval mode when it is registered.

    The function keeps its signature, so its annotations are the schema. A device that
    does not exist here raises :class:`blazerpc.ConfigurationError` right away, when the
    app is imported, not at the first call.

    Copies: a read-only array from a request is copied once for ``"cpu"`` (torch has no
    read-only tensors); a batch joined from several requests is already a fresh array and
    is shared; for any other device the transfer is the only copy.
    """
    resolved = resolve_device(device)

    def decorate(target: Any) -> Any:
        if isinstance(target, torch.nn.Module):
            return ModuleOnDevice(target, resolved)  # built at registration, with the model's name
        if isinstance(target, str | torch.device):
            raise ConfigurationError(f"pass the device by name: torch_model(device={str(target)!r})")
        if not callable(target):
            raise ConfigurationError(f"torch_model wraps a function or an nn.Module, not {target!r}")
        return _wrap(target, resolved)

    return decorate if func is None else decorate(func)
