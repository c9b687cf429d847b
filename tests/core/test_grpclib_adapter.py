"""Only ``blazerpc._grpclib`` reaches grpclib's (or h2's) private parts.

The private names are read from the installed grpclib, h2 and hyperframe sources (every
``_name`` attribute and method they use), so the check follows an upgrade. A module other
than the adapter is flagged, with file and line, when it

- reads such a name that our own code never defines (so it can only be theirs), on any
  object, in ``getattr``-style calls too;
- reads or sets one our code also defines on ``super()``, on a name imported from
  grpclib, h2 or hyperframe, or on ``self`` in a class deriving from a grpclib class (or
  the adapter's); or overrides one there;
- imports from a private grpclib module.

``blazerpc._h2`` is exempt: it patches hyperframe's DATA frame ``repr``, not grpclib.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import blazerpc

SOURCE = Path(blazerpc.__file__).parent
ADAPTER = SOURCE / "_grpclib.py"
EXEMPT = {ADAPTER, SOURCE / "_h2.py"}
LIBRARIES = ("grpclib", "h2", "hyperframe")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _trees(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(root.rglob("*.py"))]


def _library_names() -> set[str]:
    names: set[str] = set()
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)
        assert spec is not None
        assert spec.origin is not None
        for _, tree in _trees(Path(spec.origin).parent):
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and _private(node.attr):
                    names.add(node.attr)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                    names.add(node.name)
    return names


def _our_names() -> set[str]:
    """Private names our own code defines: attributes it sets, functions, classes."""
    names: set[str] = set()
    for _, tree in _trees(SOURCE):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if _private(node.name):
                    names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


LIBRARY = _library_names()
THEIRS = LIBRARY - _our_names()


def _imported_from_libraries(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in LIBRARIES or (node.level and module == "_grpclib"):
                names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            tops = {(a.asname or a.name).split(".")[0] for a in node.names}
            names |= tops & set(LIBRARIES)
    return names


def _accesses(node: ast.AST) -> list[tuple[ast.AST, ast.expr, str]]:
    """(node, receiver, private name) for ``x._name`` and ``getattr(x, "_name")``."""
    found: list[tuple[ast.AST, ast.expr, str]] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and _private(sub.attr):
            found.append((sub, sub.value, sub.attr))
        elif (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Name)
            and sub.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(sub.args) >= 2
            and isinstance(sub.args[1], ast.Constant)
            and isinstance(sub.args[1].value, str)
            and _private(sub.args[1].value)
        ):
            found.append((sub, sub.args[0], sub.args[1].value))
    return found


def _is_super(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def private_uses(path: Path, tree: ast.Module) -> list[str]:
    """Each use of a grpclib/h2 private part in one module, as ``file:line: what``."""
    imported = _imported_from_libraries(tree)
    uses: dict[tuple[int, str], str] = {}

    def flag(node: ast.AST, name: str, text: str) -> None:
        line = getattr(node, "lineno", 0)
        uses.setdefault((line, name), f"{path}:{line}: {text}")

    for node in ast.walk(tree):
        parts = (node.module or "").split(".") if isinstance(node, ast.ImportFrom) else []
        if parts[:1] and parts[0] in LIBRARIES and any(_private(part) for part in parts):
            flag(node, str(node.module), f"imports from {node.module}")
    for node, receiver, name in _accesses(tree):
        if name in THEIRS:
            flag(node, name, f"{ast.unparse(receiver)}.{name}")
        elif name in LIBRARY:
            root = receiver
            while isinstance(root, ast.Attribute):
                root = root.value
            if _is_super(receiver) or (isinstance(root, ast.Name) and root.id in imported):
                flag(node, name, f"{ast.unparse(receiver)}.{name}")
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        bases = {ast.unparse(base).split(".")[0] for base in cls.bases}
        if not bases & imported:
            continue
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in LIBRARY:
                flag(item, item.name, f"{cls.name} overrides {item.name}")
        for node, receiver, name in _accesses(cls):
            if ast.unparse(receiver) in {"self", "cls"} and name in LIBRARY:
                flag(node, name, f"{cls.name}: {ast.unparse(receiver)}.{name}")
    return [uses[key] for key in sorted(uses)]


def test_only_the_adapter_reaches_grpclib_private_parts() -> None:
    uses = [use for path, tree in _trees(SOURCE) if path not in EXEMPT for use in private_uses(path, tree)]
    assert not uses, "grpclib/h2 private parts reached outside blazerpc/_grpclib.py:\n" + "\n".join(uses)


def test_the_check_finds_each_private_use_the_adapter_makes() -> None:
    uses = "\n".join(private_uses(ADAPTER, ast.parse(ADAPTER.read_text())))
    for reached in (
        "stream._stream",
        "_method_name",
        "overrides _protocol_factory",
        "self._mapping",
        "self._server",
        "connection._connection",
        "_frame_dispatch_table",
        "self._protocol",
        "self._connected",
        "self._host",
        "self._port",
        "super()._file_descriptor_response",
        "imports from grpclib.reflection._deprecated",
    ):
        assert reached in uses, f"{reached!r} not found in:\n{uses}"
