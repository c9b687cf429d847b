"""Import an app from ``module:attribute`` or ``path/to/file.py:attribute``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ..app import BlazeApp
from ..exceptions import ConfigurationError

__all__ = ["load_app"]


def _package_dirs(*files: str | None) -> set[str]:
    dirs = set()
    for file in filter(None, files):
        for directory in (Path(file).parent, Path(file).resolve().parent):
            dirs.add(str(directory) + os.sep)
    return dirs


#: Frames that are not the app's: blazerpc's (the CLI's way in) and the import machinery's.
_NOT_THE_APP = (
    *_package_dirs(str(Path(__file__).parent), importlib.__file__),
    "<frozen importlib.",
)


def _is_app_frame(frame: traceback.FrameSummary) -> bool:
    return not frame.filename.startswith(_NOT_THE_APP)


def _app_frames(error: traceback.TracebackException) -> None:
    """Keep the app's own frames (and what it called), for ``error`` and its causes."""
    stack = list(error.stack)
    # Everything before the app's first frame is the CLI's way into the import.
    first = next((i for i, frame in enumerate(stack) if _is_app_frame(frame)), len(stack))
    kept = [frame for frame in stack[first:] if _is_app_frame(frame)]
    error.stack = traceback.StackSummary.from_list(kept)
    for chained in (error.__cause__, error.__context__):
        if chained is not None:
            _app_frames(chained)


def _import_failed(what: str, exc: Exception) -> ConfigurationError:
    """``cannot import app.py: ZeroDivisionError: ...`` with the app's part of the traceback."""
    error = traceback.TracebackException.from_exception(exc)
    _app_frames(error)
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    return ConfigurationError(f"cannot import {what}: {summary}\n{''.join(error.format()).rstrip()}")


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigurationError(f"no such file: {path}")
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the app can import its neighbours
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigurationError:
        raise  # raised by BlazeRPC while the app set itself up: it says what is wrong
    except Exception as exc:  # noqa: BLE001 - the app's own error, shown as such
        raise _import_failed(str(path), exc) from None
    return module


def _import_module(name: str) -> ModuleType:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the current directory first
    try:
        return importlib.import_module(name)
    except ConfigurationError:
        raise  # raised by BlazeRPC while the app set itself up: it says what is wrong
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import module {name!r}: {exc}. Run blaze from the directory that "
                "contains it, or give a file path (path/to/app.py:app)"
            ) from None
        raise _import_failed(f"module {name!r}", exc) from None
    except Exception as exc:  # noqa: BLE001 - the app's own error, shown as such
        raise _import_failed(f"module {name!r}", exc) from None


def load_app(target: str) -> BlazeApp:
    """The ``BlazeApp`` named by ``target`` (``app:app``, ``pkg.mod:app``, ``app.py:app``).

    Without ``:attribute`` the attribute is ``app``.
    """
    module_part, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if not module_part:
        raise ConfigurationError(f"{target!r} names no module: use module:attribute, e.g. app:app")
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        module = _import_file(Path(module_part))
    else:
        module = _import_module(module_part)
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        apps = [name for name, value in vars(module).items() if isinstance(value, BlazeApp)]
        found = f"; BlazeApp objects in it: {', '.join(apps)}" if apps else "; it defines no BlazeApp"
        raise ConfigurationError(f"module {module_part!r} has no attribute {attribute!r}{found}") from None
    if not isinstance(obj, BlazeApp):
        raise ConfigurationError(f"{module_part}:{attribute} is a {type(obj).__name__}, not a BlazeApp")
    return obj
