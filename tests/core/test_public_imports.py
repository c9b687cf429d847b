"""The plugins under ``plugins/`` use only BlazeRPC's public API.

Every ``.py`` under ``plugins/*/src`` is parsed (not imported: no framework is needed)
and each use of ``blazerpc`` is checked: no module path with a ``_private`` part, no
name that is ``_private`` or left out of its module's ``__all__``, and no ``_private``
attribute of something imported from ``blazerpc``. A third-party plugin has only the
public API; ours must be able to live with it too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/*/src/**/*.py"))


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_blazerpc(module: str) -> bool:
    return module == "blazerpc" or module.startswith("blazerpc.")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _name_problem(module: str, name: str) -> str | None:
    """Why ``from module import name`` reaches past ``module``'s public API, if it does."""
    if _private(name):
        return f"imports the private name {name!r} from {module}"
    if _is_module(f"{module}.{name}"):
        return None  # a public submodule
    try:
        public = getattr(importlib.import_module(module), "__all__", None)
    except ImportError as exc:
        return f"imports from {module}, which cannot be imported: {exc}"
    if public is not None and name not in public:
        return f"imports {name!r} from {module}, whose __all__ does not list it"
    return None


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; ``None`` for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: what"`` for each use of BlazeRPC beyond its public API in ``source``."""
    tree = ast.parse(source, filename)
    problems: list[str] = []
    bound: dict[str, str] = {}  # local name -> what it is in blazerpc, for attribute checks

    def report(node: ast.AST, what: str) -> None:
        problems.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    def check_module(node: ast.AST, module: str) -> bool:
        private = [part for part in module.split(".") if _private(part)]
        if private:
            report(node, f"imports the private module {module}")
        return not private

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_blazerpc(alias.name) and check_module(node, alias.name):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_blazerpc(node.module) and check_module(node, node.module):
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    problem = _name_problem(node.module, alias.name)
                    if problem is not None:
                        report(node, problem)
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            target = _dotted(node.func)
            name = node.args[0].value
            is_import = bool(target) and target[-1] in ("import_module", "__import__")
            if is_import and isinstance(name, str) and _is_blazerpc(name):
                check_module(node, name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = _dotted(node)
            if parts is None or parts[0] not in bound or not _private(node.attr):
                continue
            report(node, f"uses the private attribute {'.'.join([bound[parts[0]], *parts[1:]])}")
    return problems


def test_there_are_plugin_sources_to_check() -> None:
    packages = {path.relative_to(ROOT).parts[1] for path in PLUGIN_SOURCES}
    assert {"blazerpc-metrics", "blazerpc-onnx", "blazerpc-tf", "blazerpc-torch"} <= packages


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    problems = private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("import blazerpc._model", "2: imports the private module blazerpc._model"),
        ("from blazerpc.wire._schema import Schema", "2: imports the private module blazerpc.wire._schema"),
        ("from blazerpc.types import _TensorAnnotation", "imports the private name '_TensorAnnotation'"),
        ("from blazerpc.app import build_runtime", "'build_runtime' from blazerpc.app, whose __all__"),
        (
            "from blazerpc import app\napp.BlazeApp._models",
            "3: uses the private attribute blazerpc.app.BlazeApp",
        ),
        (
            "import blazerpc\nx = blazerpc.server._calls",
            "3: uses the private attribute blazerpc.server._calls",
        ),
        ("import blazerpc.wire as w\nw._tensor", "uses the private attribute blazerpc.wire._tensor"),
        (
            "import importlib\nimportlib.import_module('blazerpc._h2')",
            "imports the private module blazerpc._h2",
        ),
    ],
)
def test_the_check_names_each_private_use(source: str, problem: str) -> None:
    found = private_uses(f"# a plugin\n{source}\n", "plugin.py")
    assert len(found) == 1, found
    assert problem in found[0], found


def test_the_check_lets_the_public_api_through() -> None:
    source = (
        "import blazerpc\n"
        "from blazerpc import BlazeApp, Limits, Model, hookimpl, __version__\n"
        "from blazerpc import wire\n"
        "from blazerpc.wire import MethodSchema, Schema, WireType\n"
        "from blazerpc.types import SCALAR_TYPES, TensorSpec\n"
        "from ._own import _helper\n"
        "blazerpc.wire.Schema, wire.WireType, BlazeApp.__name__, _helper._x\n"
    )
    assert private_uses(source) == []
