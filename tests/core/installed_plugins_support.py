"""Helpers of the plugin tests: a fake distribution laid out as pip would (real entry
points on PYTHONPATH of a `blaze` subprocess), running `blaze` with it, and plugins whose
hooks are wrong. The `site` and `no_plugin_selection` fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from blazerpc import BlazeApp, hookimpl
from blazerpc.server import ServerInfo
from blazerpc.testing import blaze_command
from blazerpc.wire import FieldContext

FIXTURES = Path(__file__).resolve().parent / "plugin_fixtures"
# Core's own plugins, loaded by module name (blazerpc/builtins).
BUILTINS = {"scalars", "numpy", "batching", "logging", "access-log"}
FAKE_HOOKS = ["blazerpc_cli", "blazerpc_map_type", "blazerpc_serve_options", "blazerpc_startup"]


def install_distribution(
    site: Path, name: str, version: str, package: str, module_source: Path, entry_point: str
) -> None:
    """Lay out `name` as pip would: `<package>/plugin.py` and `<name>-<version>.dist-info/`."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    shutil.copy(module_source, site / package / "plugin.py")
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(f"[blazerpc]\n{entry_point} = {package}.plugin\n")


def site_env(site: Path, **extra: str) -> dict[str, str]:
    """Variables (on top of this process's) for a subprocess that has `site` installed."""
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200", **extra}


def blaze(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def plugins_json(site: Path, *args: str, **extra: str) -> dict[str, dict[str, Any]]:
    result = blaze("plugins", "list", "--json", *args, env=site_env(site, **extra))
    records = json.loads(result.stdout)
    # Exit code 1 if and only if a plugin failed: what a script checks.
    assert result.returncode == (0 if all(r["loaded"] for r in records) else 1), result.stderr
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)), names
    return {r["name"]: r for r in records}


def thermo_source(tmp_path: Path) -> Path:
    path = tmp_path / "thermo.py"
    path.write_text(
        "from blazerpc import BlazeApp\n"
        "from blazerpc_fake.plugin import Kelvin\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('thermo')\n"
        "def thermo(t: Kelvin) -> Kelvin:\n"
        "    return t\n"
    )
    return path


class MisspelledHook:
    @hookimpl
    def blazerpc_startupp(self, app: BlazeApp, server: ServerInfo) -> None:
        pass


class WrongArgument:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, ctx: FieldContext) -> None:
        return None
