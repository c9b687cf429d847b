"""Core's built-in plugins load by module name: with blazerpc's source on PYTHONPATH and
no installed metadata of it (no dist-info, no entry points), `python -m blazerpc` still
maps a `str` parameter, serves it, and lists the built-ins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

import blazerpc
from blazerpc import Client

SOURCE = Path(blazerpc.__file__).resolve().parent.parent  # core/src
BUILTINS = {"scalars", "numpy", "batching", "logging", "access-log"}


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Variables for `python -S` (no site-packages, no .pth files) that see blazerpc's
    source and its dependencies, but nothing installed of blazerpc or its plugins."""
    # The package alone: an editable install leaves blazerpc.egg-info next to it.
    source = tmp_path_factory.mktemp("src")
    (source / "blazerpc").symlink_to(SOURCE / "blazerpc")
    deps = tmp_path_factory.mktemp("deps")
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if entry.name.lower().startswith(("blazerpc", "__editable__", "_blazerpc")) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZERPC_")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(source), str(deps)]), "COLUMNS": "200"}


def bare_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_environment_has_the_source_but_no_metadata(bare_env: dict[str, str]) -> None:
    probe = (
        "import json, blazerpc, grpclib\n"
        "from importlib import metadata\n"
        "try:\n"
        "    metadata.distribution('blazerpc'); found = True\n"
        "except metadata.PackageNotFoundError:\n"
        "    found = False\n"
        "print(json.dumps({'file': blazerpc.__file__, 'metadata': found,\n"
        "    'entry_points': [e.name for e in metadata.entry_points(group='blazerpc')]}))\n"
    )
    result = bare_python("-c", probe, env=bare_env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert Path(seen["file"]).resolve().is_relative_to(SOURCE)
    assert seen["metadata"] is False
    assert seen["entry_points"] == []


def test_plugins_list_shows_the_builtins(bare_env: dict[str, str]) -> None:
    result = bare_python("-m", "blazerpc", "plugins", "list", "--all", "--json", env=bare_env)
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(records) == BUILTINS
    for record in records.values():
        assert (record["builtin"], record["loaded"], record["distribution"]) == (True, True, "blazerpc")
    assert records["scalars"]["hooks"] == ["blazerpc_map_type"]


@pytest.fixture
def bare_server(bare_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """`python -S -m blazerpc serve` of an app with a `str` parameter; yields its port."""
    app = tmp_path / "greeter.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('greet')\n"
        "def greet(name: str, times: int = 1) -> str:\n"
        "    return ' '.join(['hello ' + name] * times)\n"
    )
    command = ["serve", f"{app}:app", "--host", "127.0.0.1", "--port", "0", "--log-format", "json"]
    process = subprocess.Popen(
        [sys.executable, "-S", "-m", "blazerpc", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=bare_env,
    )
    assert process.stderr is not None
    lines = []
    port = None
    for line in process.stderr:  # until it listens, or exits (then the loop ends)
        lines.append(line)
        if line.startswith("{") and json.loads(line).get("event", "").startswith("Server listening"):
            port = int(json.loads(line)["port"])
            break
    try:
        assert port is not None, "".join(lines)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


async def test_a_str_parameter_is_served(bare_server: int) -> None:
    async with Client(f"127.0.0.1:{bare_server}") as client:
        assert await client.predict("greet", name="ada", times=2) == "hello ada hello ada"
