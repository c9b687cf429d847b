"""Installed plugins found through real entry points of a fake distribution on
PYTHONPATH of a `blaze` subprocess: `blaze plugins list`, selection, autoload off, and
types mapped without registration."""

from __future__ import annotations

from pathlib import Path

import pytest
from installed_plugins_support import (
    BUILTINS,
    FAKE_HOOKS,
    FIXTURES,
    blaze,
    install_distribution,
    plugins_json,
    site_env,
    thermo_source,
)

import blazerpc

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


def test_plugins_list_shows_installed_and_failed_plugins(site: Path) -> None:
    records = plugins_json(site)
    assert set(records) == {"fake", "broken"}
    assert records["fake"] == {
        "name": "fake",
        "distribution": "blazerpc-fake",
        "version": "0.1",
        "builtin": False,
        "hooks": FAKE_HOOKS,
        "error": None,
        "loaded": True,
    }
    broken = records["broken"]
    assert broken["loaded"] is False
    assert broken["builtin"] is False
    assert (broken["distribution"], broken["version"]) == ("blazerpc-broken", "0.2")
    assert broken["error"] == "ImportError: needs libfoo"


def test_plugins_list_all_adds_the_builtins(site: Path) -> None:
    records = plugins_json(site, "--all")
    assert {"scalars", "numpy", "logging"} <= BUILTINS
    assert set(records) == {"fake", "broken", *BUILTINS}
    for name in BUILTINS:
        assert records[name]["distribution"] == "blazerpc"
        assert records[name]["version"] == blazerpc.__version__
        assert records[name]["builtin"] is True
        assert records[name]["loaded"] is True
    assert records["scalars"]["hooks"] == ["blazerpc_map_type"]
    assert records["numpy"]["hooks"] == ["blazerpc_array_converters", "blazerpc_map_type"]
    assert records["logging"]["hooks"] == ["blazerpc_shutdown", "blazerpc_startup"]
    assert records["fake"]["loaded"] is True
    assert records["broken"]["loaded"] is False


def test_plugins_list_table_shows_failures(site: Path) -> None:
    result = blaze("plugins", "list", env=site_env(site))
    assert result.returncode == 1, result.stderr
    assert result.stderr == "Error: 1 plugin failed to load (broken); the list says why\n"
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "STATUS", "HOOKS"]
    fake = next(line for line in lines if line.startswith("fake "))
    broken = next(line for line in lines if line.startswith("broken "))
    assert "blazerpc-fake 0.1" in fake
    assert "loaded" in fake
    assert "blazerpc_serve_options" in fake
    assert "blazerpc-broken 0.2" in broken
    assert "FAILED" in broken
    assert "ImportError: needs libfoo" in broken
    assert not any(line.startswith(("scalars ", "numpy ", "logging ")) for line in lines)


def test_disable_autoload_keeps_only_builtins(site: Path) -> None:
    records = plugins_json(site, "--all", BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1")
    assert set(records) == BUILTINS
    result = blaze("plugins", "list", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert result.returncode == 0, result.stderr
    assert "No plugins installed" in result.stdout


def test_plugins_list_exits_0_when_every_plugin_loaded_and_says_so_in_its_help(site: Path) -> None:
    result = blaze("plugins", "list", env=site_env(site, BLAZERPC_PLUGINS="fake"))
    assert result.returncode == 0, result.stderr
    assert "fake " in result.stdout
    assert "FAILED" not in result.stdout
    assert result.stderr == ""
    help_text = " ".join(blaze("plugins", "list", "--help", env=site_env(site)).stdout.split())
    assert "Exits with code 1 if a plugin FAILED to load (the list is printed all the same)" in help_text


@pytest.mark.parametrize(
    ("selection", "expected"),
    [("fake", {"fake"}), ("broken", {"broken"}), (" broken , fake ", {"fake", "broken"}), ("nope", set())],
)
def test_blazerpc_plugins_narrows_the_third_party_plugins(
    site: Path, selection: str, expected: set[str]
) -> None:
    records = plugins_json(site, "--all", BLAZERPC_PLUGINS=selection)
    assert set(records) == expected | BUILTINS


def test_installed_plugin_maps_types_without_registration(site: Path, tmp_path: Path) -> None:
    app = thermo_source(tmp_path)
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(site))
    assert result.returncode == 0, result.stderr
    proto = (tmp_path / "out" / "blaze_service.proto").read_text()
    assert "double t = 1;" in proto
    assert "double result = 1;" in proto

    disabled = blaze(
        "proto",
        f"{app}:app",
        "--output-dir",
        str(tmp_path / "out2"),
        env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"),
    )
    assert disabled.returncode == 1
    assert "Kelvin" in disabled.stderr
    assert "'thermo'" in disabled.stderr


def test_failed_framework_plugin_is_named_in_the_type_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_distribution(
        site, "blazerpc-torch", "9.9", "blazerpc_torch_stub", FIXTURES / "broken_torch_plugin.py", "torch"
    )
    app = tmp_path / "torch_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n\n"
        "class Tensor:\n"
        "    __module__ = 'torch'\n\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('embed')\n"
        "def embed(x: Tensor) -> float:\n"
        "    return 0.0\n"
    )
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(site))
    assert result.returncode == 1
    assert "torch.Tensor" in result.stderr
    assert "blazerpc-torch is installed but failed to load" in result.stderr
    assert "libtorch_cpu.so: cannot open shared object file" in result.stderr
