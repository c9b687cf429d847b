"""Every help text of `blaze` prints as written: rich, which renders typer's help, would
read `[app's value; default 64 MiB]` as markup and drop it. Checked over the rendered
`--help` of every command, a plugin's command-line options included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from installed_plugins_support import FIXTURES, blaze, install_distribution, site_env

# Run in a fresh process: the declared help of every command and option, as typer has it
# once the plugins' options and commands are added.
_COLLECT = """
import json
import os
import typer
from blazerpc.cli.main import build_command, cli

build_command()  # adds the plugins' options and commands to cli
found = []

def walk(command, path):
    options = [
        {"name": param.name, "help": param.help}
        for param in command.params
        if getattr(param, "help", None) and not getattr(param, "hidden", False)
    ]
    found.append({"path": path, "help": command.help, "options": options})
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            walk(sub, [*path, name])

walk(typer.main.get_command(cli), [])
print(json.dumps(found))
"""


def _flat(text: str) -> str:
    """Rendered help without rich's box and with every run of whitespace one space."""
    for box in "│╭╮╰╯─":
        text = text.replace(box, " ")
    return " ".join(text.split())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An installed plugin whose serve option's help has brackets too."""
    site = tmp_path_factory.mktemp("site")
    install_distribution(
        site, "blazerpc-subset", "1.0", "blazerpc_subset", FIXTURES / "subset_args_plugin.py", "subset"
    )
    return site_env(site, COLUMNS="300")


@pytest.fixture(scope="module")
def commands(env: dict[str, str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    return list(json.loads(result.stdout))


def test_every_command_is_collected(commands: list[dict[str, Any]]) -> None:
    paths = {" ".join(c["path"]) for c in commands}
    assert {"", "serve", "proto", "call", "bench", "plugins", "plugins list"} <= paths
    serve = next(c for c in commands if c["path"] == ["serve"])
    assert "subset_flag" in {o["name"] for o in serve["options"]}


def test_every_help_text_prints_as_written(commands: list[dict[str, Any]], env: dict[str, str]) -> None:
    bracketed = 0
    for command in commands:
        result = blaze(*command["path"], "--help", env=env)
        assert result.returncode == 0, result.stderr
        shown = _flat(result.stdout)
        texts = [command["help"]] if command["help"] else []
        texts += [option["help"] for option in command["options"]]
        for text in texts:
            assert _flat(text) in shown, (
                f"blaze {' '.join(command['path'])} --help: {text!r} not shown as written"
            )
            bracketed += "[" in text
    # serve, call and bench's bracketed defaults, and the plugin's option.
    assert bracketed >= 8
