"""The `blaze` command line, run for real: loading apps, their errors, ports, help."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from support import QUICKSTART, AppCaller

import blazerpc
from blazerpc.testing import blaze_command, serve_process

ECHO_APP = """\
from blazerpc import BlazeApp
from helpers import SUFFIX  # a neighbour of this file

api = BlazeApp()
admin = BlazeApp()


@api.model("echo")
def echo(text: str) -> str:
    return text + SUFFIX
"""


def blaze(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=60,
        check=False,
    )


def load(
    command: str, target: str, tmp_path: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`blaze serve` (on a free port, in case it does start) or `blaze proto` for `target`."""
    if command == "serve":
        return blaze("serve", target, "--host", "127.0.0.1", "--port", "0", cwd=cwd)
    return blaze("proto", target, "--output-dir", str(tmp_path / "proto_out"), cwd=cwd)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with service.py (BlazeApps `api`, with model "echo", and `admin`) and
    the helpers.py it imports."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "service.py").write_text(ECHO_APP)
    (directory / "helpers.py").write_text('SUFFIX = "!"\n')
    return directory


def write(path: Path, source: str) -> Path:
    path.write_text(source)
    return path


COMMANDS = ["serve", "proto"]


# --- loading errors ----------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_module_that_does_not_exist(command: str, tmp_path: Path) -> None:
    result = load(command, "no_such_blaze_module:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot import module 'no_such_blaze_module'" in result.stderr
    assert "path/to/app.py:app" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_dependency_of_the_app_is_not_blamed_on_the_app(command: str, tmp_path: Path) -> None:
    write(tmp_path / "needs_dep.py", "import no_such_dependency_xyz  # noqa\n")
    result = load(command, "needs_dep:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    # The app's own import failed, at its own line: not "run blaze from its directory".
    assert (
        "cannot import module 'needs_dep': ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
        in result.stderr
    )
    assert "Run blaze from the directory" not in result.stderr
    assert traceback_frames(result.stderr) == [f'File "{tmp_path / "needs_dep.py"}", line 1, in <module>']


CRASHING_APP = """\
from blazerpc import BlazeApp
from helpers import compute

app = BlazeApp()

VALUE = compute()
"""

CRASHING_HELPER = """\
def compute():
    return 1 / 0
"""


def traceback_frames(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.lstrip().startswith('File "')]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("form", ["module", "file"])
def test_app_that_raises_at_import_shows_only_its_own_frames(command: str, form: str, tmp_path: Path) -> None:
    app = write(tmp_path / "crashing.py", CRASHING_APP)
    helper = write(tmp_path / "helpers.py", CRASHING_HELPER)
    target, what = ("crashing:app", "module 'crashing'") if form == "module" else (f"{app}:app", str(app))
    result = load(command, target, tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot import {what}: ZeroDivisionError: division by zero" in result.stderr
    assert traceback_frames(result.stderr) == [
        f'File "{app}", line 6, in <module>',
        f'File "{helper}", line 2, in compute',
    ]
    assert "VALUE = compute()" in result.stderr
    assert "return 1 / 0" in result.stderr
    assert result.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


@pytest.mark.parametrize("command", COMMANDS)
def test_app_that_raises_from_another_error_shows_both(command: str, tmp_path: Path) -> None:
    write(
        tmp_path / "chained.py",
        "def settings():\n"
        "    try:\n"
        "        return {}['model_path']\n"
        "    except KeyError as exc:\n"
        "        raise RuntimeError('model_path is not configured') from exc\n\n\n"
        "SETTINGS = settings()\n",
    )
    result = load(command, "chained:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot import module 'chained': RuntimeError: model_path is not configured" in result.stderr
    assert "KeyError: 'model_path'" in result.stderr
    assert "The above exception was the direct cause of the following exception" in result.stderr
    frames = traceback_frames(result.stderr)
    assert all(str(tmp_path / "chained.py") in frame for frame in frames), frames
    assert len(frames) == 3  # the KeyError's frame, then the RuntimeError's two


@pytest.mark.parametrize("command", COMMANDS)
def test_app_with_a_syntax_error(command: str, tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "from blazerpc import BlazeApp\n\napp = BlazeApp(\n")
    result = load(command, "broken:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot import module 'broken': SyntaxError: " in result.stderr
    assert traceback_frames(result.stderr) == [f'File "{tmp_path / "broken.py"}", line 3']


@pytest.mark.parametrize("command", COMMANDS)
def test_attribute_that_does_not_exist_lists_the_apps(command: str, tmp_path: Path, project: Path) -> None:
    result = load(command, "service:application", tmp_path, cwd=project)
    assert result.returncode == 1
    assert "module 'service' has no attribute 'application'" in result.stderr
    assert "BlazeApp objects in it: api, admin" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_attribute_is_app(tmp_path: Path, project: Path) -> None:
    result = load("proto", "service", tmp_path, cwd=project)
    assert result.returncode == 1
    assert "has no attribute 'app'" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_module_without_any_app(command: str, tmp_path: Path) -> None:
    write(tmp_path / "plain.py", "x = 1\n")
    result = load(command, "plain:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "module 'plain' has no attribute 'app'; it defines no BlazeApp" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_attribute_that_is_not_a_blazeapp(command: str, tmp_path: Path) -> None:
    write(tmp_path / "notapp.py", "app = {'models': []}\n")
    result = load(command, "notapp:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "notapp:app is a dict, not a BlazeApp" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_file_that_does_not_exist(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "app.py"
    result = load(command, f"{missing}:app", tmp_path)
    assert result.returncode == 1
    assert f"no such file: {missing}" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_target_without_a_module(command: str, tmp_path: Path) -> None:
    result = load(command, ":app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "names no module" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_app_with_no_models(command: str, tmp_path: Path) -> None:
    write(tmp_path / "empty.py", "from blazerpc import BlazeApp\n\napp = BlazeApp()\n")
    result = load(command, "empty:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "the app has no models" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_model_that_cannot_be_registered(command: str, tmp_path: Path) -> None:
    write(
        tmp_path / "badtype.py",
        "from blazerpc import BlazeApp\n\napp = BlazeApp()\n\n\n"
        "@app.model('lookup')\n"
        "def lookup(table: dict[str, int]) -> int:\n"
        "    return 0\n",
    )
    result = load(command, "badtype:app", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert "model 'lookup': parameter 'table' has type dict[str, int]" in result.stderr
    assert "Traceback" not in result.stderr


# --- targets that work -------------------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_file_path_target(tmp_path: Path, project: Path, relative: bool) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = "../project/service.py:api" if relative else f"{project / 'service.py'}:api"
    out = tmp_path / "out"
    result = blaze("proto", target, "--output-dir", str(out), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    proto = (out / "blaze_service.proto").read_text()
    assert "rpc PredictEcho(EchoRequest) returns (EchoResponse);" in proto
    assert str(out / "blaze_service.proto") in result.stdout


def _service_module(project: Path) -> Any:
    spec = importlib.util.spec_from_file_location("cli_test_service", project / "service.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(project))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("helpers", None)
    module.app = module.api  # support.AppCaller reads `app`
    return module


async def test_serve_file_path_target_from_another_directory(tmp_path: Path, project: Path) -> None:
    with serve_process(f"{project / 'service.py'}:api", cwd=tmp_path) as proc:
        reply = await AppCaller(_service_module(project), proc).call("echo", text="hi")
        events = [e["event"] for e in proc.logs]
    assert reply.result == "hi!"
    assert "Loaded model: echo v1" in events


async def test_serve_module_target_from_the_working_directory(project: Path) -> None:
    with serve_process("service:api", cwd=project) as proc:
        reply = await AppCaller(_service_module(project), proc).call("echo", text="hey")
        events = [e["event"] for e in proc.logs]
    assert reply.result == "hey!"
    assert "Loaded model: echo v1" in events


def test_proto_module_target_from_the_working_directory(tmp_path: Path, project: Path) -> None:
    result = blaze("proto", "service:api", "--output-dir", str(tmp_path / "out"), cwd=project)
    assert result.returncode == 0, result.stderr
    assert "rpc PredictEcho" in (tmp_path / "out" / "blaze_service.proto").read_text()


# --- ports -------------------------------------------------------------------------------


def test_port_already_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = blaze("serve", f"{QUICKSTART}:app", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "address already in use" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range_is_a_usage_error(port: str) -> None:
    result = blaze("serve", f"{QUICKSTART}:app", "--host", "127.0.0.1", "--port", port)
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


# --- version and help --------------------------------------------------------------------


def test_version() -> None:
    result = blaze("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"blazerpc {blazerpc.__version__}\n"
    assert blazerpc.__version__ == metadata.version("blazerpc")


def test_serve_help_lists_its_options() -> None:
    result = blaze("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--log-format", "--log-level"):
        assert option in result.stdout


def test_serve_help_explains_its_options() -> None:
    result = blaze("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "Address to bind." in result.stdout
    assert "Port to listen on (0 picks a free one)." in result.stdout
    assert "Lowest level logged." in result.stdout
    assert "module:attribute" in result.stdout


def test_help_lists_the_commands() -> None:
    result = blaze("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "proto", "plugins"):
        assert command in result.stdout
