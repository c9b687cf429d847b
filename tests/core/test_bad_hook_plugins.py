"""Plugins that import but whose hooks are wrong (misspelled, wrong arguments): listed as
failed, named in errors, and never in the way of what does not need them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from installed_plugins_support import (
    FAKE_HOOKS,
    FIXTURES,
    MisspelledHook,
    WrongArgument,
    blaze,
    install_distribution,
    plugins_json,
    site_env,
    thermo_source,
)

import blazerpc
from blazerpc import BlazeApp
from blazerpc.plugins import new_plugin_manager, register
from blazerpc.testing import serve_process

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


BAD_HOOK_PLUGINS = {
    # entry point: (distribution, fixture module, what its error says)
    "badargs": (
        "blazerpc-badargs",
        "bad_args_plugin.py",
        "invalid hook implementation: blazerpc_map_type(annotation, ctx) takes 'ctx', which the hook "
        "spec blazerpc_map_type(annotation, context) does not pass; use the spec's argument names",
    ),
    "typo": (
        "blazerpc-typo",
        "typo_hook_plugin.py",
        "invalid hook implementation: unknown hook 'blazerpc_map_typo' (did you mean blazerpc_map_type?)",
    ),
    "clifail": (
        "blazerpc-clifail",
        "cli_raises_plugin.py",
        "its blazerpc_cli hook raised RuntimeError: cannot read ~/.clifail.toml",
    ),
}


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """blazerpc-fake (works) next to three plugins that import but whose hooks are wrong."""
    path = tmp_path_factory.mktemp("bad-site")
    install_distribution(path, "blazerpc-fake", "0.1", "blazerpc_fake", FIXTURES / "fake_plugin.py", "fake")
    for name, (distribution, source, _) in BAD_HOOK_PLUGINS.items():
        package = distribution.replace("-", "_")
        install_distribution(path, distribution, "1.0", package, FIXTURES / source, name)
    return path


def test_plugins_list_shows_plugins_with_bad_hooks_as_failed(bad_site: Path) -> None:
    records = plugins_json(bad_site)
    assert set(records) == {"fake", *BAD_HOOK_PLUGINS}
    assert records["fake"]["loaded"] is True
    assert records["fake"]["hooks"] == FAKE_HOOKS
    for name, (distribution, _, error) in BAD_HOOK_PLUGINS.items():
        record = records[name]
        assert (record["loaded"], record["distribution"], record["version"]) == (False, distribution, "1.0")
        assert record["error"] == error
    table = blaze("plugins", "list", env=site_env(bad_site))
    assert table.returncode == 1, table.stderr
    assert "Traceback" not in table.stderr
    for name in BAD_HOOK_PLUGINS:
        line = next(line for line in table.stdout.splitlines() if line.startswith(f"{name} "))
        assert "FAILED" in line
        assert BAD_HOOK_PLUGINS[name][2] in line


def test_commands_work_despite_plugins_with_bad_hooks(bad_site: Path) -> None:
    hello = blaze("hello", "--name", "x", env=site_env(bad_site))
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "Hello, x, from blazerpc-fake"
    # What the failing blazerpc_cli hook added before it raised is gone, and so are the
    # serve options of that plugin.
    assert "half-added" not in blaze("--help", env=site_env(bad_site)).stdout
    assert blaze("half-added", env=site_env(bad_site)).returncode == 2
    serve_help = blaze("serve", "--help", env=site_env(bad_site)).stdout
    assert "--greeting" in serve_help
    assert "--clifail-level" not in serve_help


def test_serve_warns_about_plugins_with_bad_hooks_and_serves(
    bad_site: Path, tmp_path: Path, grpcurl: str
) -> None:
    out = tmp_path / "startup.json"
    # The working plugin is used: the app's model takes a Kelvin, which it maps.
    env = site_env(bad_site, FAKEPLUG_OUT=str(out))
    with serve_process(f"{thermo_source(tmp_path)}:app", env=env) as proc:
        warnings = {e["plugin"]: e for e in proc.logs if e.get("level") == "warning" and "plugin" in e}
        done = subprocess.run(
            [
                grpcurl,
                "-plaintext",
                "-d",
                '{"t": 300.5}',
                proc.address,
                "blazerpc.InferenceService/PredictThermo",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": 300.5}
    assert json.loads(out.read_text())["models"] == ["thermo"]  # the working plugin's start-up hook ran
    assert set(warnings) == set(BAD_HOOK_PLUGINS)
    for name, (distribution, _, error) in BAD_HOOK_PLUGINS.items():
        assert warnings[name]["error"] == error
        assert warnings[name]["distribution"] == distribution
        assert warnings[name]["event"] == f"Plugin {name} failed to load; see 'blaze plugins list'"


def test_serve_fails_clearly_when_the_app_needs_a_plugin_with_bad_hooks(
    bad_site: Path, tmp_path: Path
) -> None:
    app = tmp_path / "rankine_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n"
        "from blazerpc_badargs.plugin import Rankine\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('heat')\n"
        "def heat(t: Rankine) -> float:\n"
        "    return float(t)\n"
    )
    result = blaze("serve", f"{app}:app", "--host", "127.0.0.1", "--port", "0", env=site_env(bad_site))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "parameter 't'" in result.stderr
    assert "blazerpc_badargs.plugin.Rankine" in result.stderr
    assert "The plugin badargs (blazerpc-badargs) is installed but failed to load" in result.stderr
    assert BAD_HOOK_PLUGINS["badargs"][2] in result.stderr


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (MisspelledHook(), "unknown hook 'blazerpc_startupp' (did you mean blazerpc_startup?)"),
        (WrongArgument(), "blazerpc_map_type(annotation, ctx) takes 'ctx'"),
    ],
)
def test_an_explicit_plugin_with_bad_hooks_is_a_plugin_error(plugin: object, message: str) -> None:
    with pytest.raises(blazerpc.PluginError, match=re.escape(message)) as info:
        BlazeApp(plugins=[plugin])
    assert str(info.value).startswith(f"plugin {type(plugin).__name__} cannot be registered: ")
    with pytest.raises(blazerpc.PluginError, match=re.escape(message)):
        register(plugin)
    assert not any(p is plugin for p in new_plugin_manager().get_plugins())


def test_an_unknown_batch_policy_names_the_plugins_that_failed(bad_site: Path, tmp_path: Path) -> None:
    app = tmp_path / "policy_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('rank', batch_policy='priority')\n"
        "def rank(x: list[float]) -> list[float]:\n"
        "    return x\n"
    )
    result = blaze("proto", f"{app}:app", "--output-dir", str(tmp_path / "out"), env=site_env(bad_site))
    assert result.returncode == 1
    assert "model 'rank': unknown batch_policy 'priority'; available: adaptive, fixed" in result.stderr
    assert f"plugin typo failed to load: {BAD_HOOK_PLUGINS['typo'][2]}" in result.stderr
