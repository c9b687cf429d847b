"""Installed plugins extend the command line: commands, serve options and start-up
hooks of `blaze serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from installed_plugins_support import blaze, site_env
from support import QUICKSTART, AppCaller, load_app_module

from blazerpc.testing import serve_process

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


def test_plugin_adds_a_command(site: Path) -> None:
    result = blaze("hello", "--name", "tests", env=site_env(site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello, tests, from blazerpc-fake"
    assert "hello" in blaze("--help", env=site_env(site)).stdout


def test_command_of_a_disabled_plugin_does_not_exist(site: Path) -> None:
    result = blaze("hello", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert result.returncode == 2
    assert "hello" in result.stderr


def test_serve_help_lists_plugin_options(site: Path) -> None:
    result = blaze("serve", "--help", env=site_env(site))
    assert result.returncode == 0, result.stderr
    assert "--greeting" in result.stdout
    assert "What blazerpc-fake says at start-up." in result.stdout
    assert "--repeat-count" in result.stdout
    without = blaze("serve", "--help", env=site_env(site, BLAZERPC_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert without.returncode == 0, without.stderr
    assert "--greeting" not in without.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--greeting", "hi", "--repeat-count", "3"), {"greeting": "hi", "repeat_count": 3}),
        ((), {"greeting": "none", "repeat_count": 1}),
    ],
)
def test_serve_option_values_reach_the_startup_hook(
    site: Path, tmp_path: Path, args: tuple[str, ...], expected: dict[str, Any]
) -> None:
    out = tmp_path / "startup.json"
    env = site_env(site, FAKEPLUG_OUT=str(out))
    with serve_process(f"{QUICKSTART}:app", *args, env=env) as proc:
        # The plugin's hook runs before core's (trylast) "Server listening" line.
        seen = json.loads(out.read_text())
        port = proc.port
    assert {k: seen["options"].get(k) for k in expected} == expected
    assert seen["port"] == port
    assert seen["models"] == ["sentiment"]


def test_serve_aborts_when_a_startup_hook_raises(site: Path) -> None:
    result = blaze(
        "serve",
        f"{QUICKSTART}:app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        env=site_env(site, FAKEPLUG_FAIL="the fake plugin refuses to start"),
    )
    assert result.returncode != 0
    assert "the fake plugin refuses to start" in result.stderr
    assert "Server listening" not in result.stderr


async def test_serve_starts_despite_a_failed_plugin_and_warns(site: Path) -> None:
    with serve_process(f"{QUICKSTART}:app", env=site_env(site)) as proc:
        reply = await AppCaller(load_app_module(QUICKSTART), proc).call("sentiment", text=["good"])
        warnings = [e for e in proc.logs if e.get("level") == "warning" and e.get("plugin") == "broken"]
    assert list(reply.result) == [0.95]
    assert len(warnings) == 1
    warning = warnings[0]
    assert "broken" in warning["event"]
    assert warning["error"] == "ImportError: needs libfoo"
    assert warning["distribution"] == "blazerpc-broken"
    # The working plugin is not reported.
    assert not [e for e in proc.logs if e.get("level") == "warning" and e.get("plugin") == "fake"]
