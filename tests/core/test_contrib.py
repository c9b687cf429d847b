"""`blazerpc.contrib.pytorch` / `.tensorflow` / `.onnx`: the seed README's import paths.

Core's environment has no plugin and no framework: importing a contrib module must say
which distribution to install, and core itself must never import a framework. Each case
runs in a fresh interpreter, so what one import leaves in `sys.modules` cannot leak.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

CONTRIB = [
    # (contrib module, name imported from it, plugin package, distribution)
    ("pytorch", "torch_model", "blazerpc_torch", "blazerpc-torch"),
    ("tensorflow", "tf_model", "blazerpc_tf", "blazerpc-tf"),
    ("onnx", "ONNXModel", "blazerpc_onnx", "blazerpc-onnx"),
]
FRAMEWORKS = ("torch", "tensorflow", "keras", "onnxruntime", "onnx")
PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def python(code: str, *, path: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    if path is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("module", "name", "package", "distribution"), CONTRIB)
def test_without_the_plugin_the_import_error_names_the_distribution(
    module: str, name: str, package: str, distribution: str
) -> None:
    # `None` in sys.modules makes the plugin absent even where it happens to be installed.
    result = python(
        f"""
        import sys
        sys.modules[{package!r}] = None
        try:
            from blazerpc.contrib.{module} import {name}
        except ImportError as exc:
            print(type(exc).__name__, exc.name, exc, sep="|")
        """
    )
    assert result.returncode == 0, result.stderr
    kind, missing, message = result.stdout.strip().split("|")
    assert kind == "ModuleNotFoundError"  # an ImportError
    assert missing == package
    assert f"blazerpc.contrib.{module} needs the {distribution} plugin" in message
    # From the checkout, by path, as the README's Installation says: not from PyPI.
    assert f"pip install ./plugins/{distribution} (from the root of the BlazeRPC repository" in message
    assert "blazerpc[" not in message


def test_a_plugin_whose_framework_is_missing_says_it_is_installed_but_broken(tmp_path: Path) -> None:
    plugin = tmp_path / "blazerpc_torch"
    plugin.mkdir()
    (plugin / "__init__.py").write_text("import torch_that_is_not_installed\n")
    result = python(
        """
        try:
            from blazerpc.contrib.pytorch import torch_model
        except ImportError as exc:
            print(exc)
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "blazerpc-torch is installed but cannot be imported" in result.stdout
    assert "torch_that_is_not_installed" in result.stdout


def test_a_plugin_without_the_helper_says_to_upgrade(tmp_path: Path) -> None:
    (tmp_path / "blazerpc_tf.py").write_text("__all__ = ['other']\nother = 1\n")
    result = python(
        """
        try:
            from blazerpc.contrib.tensorflow import tf_model
        except ImportError as exc:
            print(exc)
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "does not provide tf_model" in result.stdout
    assert (
        "install the current one from an up-to-date clone: pip install ./plugins/blazerpc-tf" in result.stdout
    )


def test_contrib_reexports_the_plugins_public_names(tmp_path: Path) -> None:
    (tmp_path / "blazerpc_onnx.py").write_text(
        "__all__ = ['ONNXModel', 'helper', '__version__']\n"
        "class ONNXModel: pass\n"
        "def helper(): return 'from the plugin'\n"
        "__version__ = '9.9'\n"
    )
    result = python(
        """
        import blazerpc_onnx
        from blazerpc.contrib import onnx
        from blazerpc.contrib.onnx import ONNXModel, helper
        assert ONNXModel is blazerpc_onnx.ONNXModel
        print(helper(), sorted(onnx.__all__), hasattr(onnx, '__version__'))
        """,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from the plugin ['ONNXModel', 'helper'] False"


def test_core_never_imports_a_framework() -> None:
    # Everything core does before and while serving, with third-party plugins off (an
    # installed plugin may import its framework; core must not).
    result = python(
        f"""
        import asyncio, sys
        import numpy as np
        import blazerpc, blazerpc.contrib, blazerpc.cli, blazerpc.testing
        from blazerpc import BlazeApp, TensorInput, TensorOutput
        from blazerpc.testing import serve_app

        app = BlazeApp()

        @app.model("scale")
        def scale(x: TensorInput[np.float32, "batch", 2]) -> TensorOutput[np.float32, "batch", 2]:
            return x * 2

        async def main():
            async with serve_app(app) as server:
                tensor = dict(shape=[1, 2], dtype="float32", data=np.ones(2, np.float32).tobytes())
                await server.call("scale", x=tensor)

        asyncio.run(main())
        app.proto()
        print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))
        """,
        BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _extras() -> dict[str, set[str]]:
    """The installed blazerpc's extras, as its distribution's metadata declares them:
    extra name -> the distributions it pulls in."""
    requirements = [Requirement(line) for line in metadata.requires("blazerpc") or ()]
    names = metadata.metadata("blazerpc").get_all("Provides-Extra") or []
    return {
        extra: {r.name for r in requirements if r.marker is not None and r.marker.evaluate({"extra": extra})}
        for extra in names
    }


def test_no_extra_sends_pip_to_the_index_for_a_distribution_of_ours() -> None:
    # The plugins are not on PyPI, where the name blazerpc is another project's: they are
    # installed by path (README, Installation), never through an extra.
    extras = _extras()
    ours = {
        tomllib.loads((path / "pyproject.toml").read_text())["project"]["name"]
        for path in [*PLUGINS.iterdir(), PLUGINS.parent / "core"]
        if (path / "pyproject.toml").exists()
    }
    assert {distribution for _, _, _, distribution in CONTRIB} <= ours
    assert set(extras) == {"reload", "speed"}
    assert not set().union(*extras.values()) & ours
