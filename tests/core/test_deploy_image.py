"""The Dockerfile of `blaze deploy`, without a container engine (none runs here): its
COPY steps are done into a directory standing for the image's filesystem, its `RUN pip
install` lines run as written in a fresh virtualenv, and its CMD then serves the app.

This proves the install commands install BlazeRPC (from the checkout, never PyPI) and the
app, and that the installed `blaze` serves it; it builds no image.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest
from support import QUICKSTART, ROOT, Spawned

import blazerpc
from blazerpc.testing import blaze_command

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inside(image: Path, path: str) -> Path:
    return image / path.lstrip("/")


def test_the_dockerfile_installs_blazerpc_from_the_checkout_and_serves(tmp_path: Path) -> None:
    context = tmp_path / "myapp"
    context.mkdir()
    shutil.copy(QUICKSTART, context / "app.py")
    (context / "requirements.txt").write_text("numpy\n")  # the app's own requirements
    done = subprocess.run(
        [*blaze_command(), "deploy", "dockerfile", "app.py:app", "--source", str(ROOT)],
        capture_output=True, text=True, cwd=context, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout

    image = tmp_path / "image"  # the image's filesystem
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    python = tmp_path / "venv" / "bin" / "python"
    venv.create(tmp_path / "venv", with_pip=True)
    workdir, user, cmd, installs = image, None, None, []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction == "FROM":
            assert rest == f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
        elif instruction == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(rest)))
        elif instruction == "COPY":
            args = shlex.split(rest)
            if args[0] == "--from=blazerpc":  # the checkout, as the named build context
                source, target = ROOT / args[1], args[2]
            else:
                assert args[0] == ".", line  # the app's directory: the build context
                source, target = context, args[1]
            shutil.copytree(source, _inside(image, target), dirs_exist_ok=True)
        elif instruction == "WORKDIR":
            workdir = _inside(image, rest)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "RUN":
            args = shlex.split(rest)
            if args[0] == "useradd":
                assert args[args.index("--uid") + 1] == "10001"
                continue
            assert args[:2] == ["pip", "install"], f"a RUN this test cannot run: {line}"
            assert "blazerpc" not in args[2:], "never from PyPI: that name is another project's"
            installs.append(args)
            mapped = [str(_inside(image, a)) if a.startswith("/") else a for a in args[2:]]
            run = subprocess.run(
                [str(python), "-m", "pip", "install", *mapped],
                capture_output=True, text=True, cwd=workdir, env=env, timeout=900, check=False,
            )  # fmt: skip
            assert run.returncode == 0, f"{line}\n{run.stdout}\n{run.stderr}"
        elif instruction == "USER":
            user = rest
        elif instruction == "CMD":
            cmd = json.loads(rest)
        else:
            assert instruction == "EXPOSE", f"an instruction this test does not know: {line}"
    assert user == "10001:10001"
    assert installs == [
        ["pip", "install", "/opt/blazerpc/core[speed]"],
        ["pip", "install", "-r", "requirements.txt"],
    ]

    # blazerpc is the checkout's, installed by path into the fresh environment.
    found = subprocess.run(
        [str(python), "-c", "from importlib import metadata; d = metadata.distribution('blazerpc'); "
         "print(d.version); print(d.read_text('direct_url.json'))"],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    assert found[0] == metadata.version("blazerpc") == blazerpc.__version__
    assert json.loads(found[1])["url"] == (image / "opt/blazerpc/core").resolve().as_uri()

    # The image's CMD, with the environment's blaze, on a free loopback port.
    assert cmd is not None
    assert cmd[:3] == ["blaze", "serve", "app.py:app"]
    port = _free_port()
    command = [str(python.parent / "blaze"), *cmd[1:]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    process = subprocess.Popen(
        command, cwd=workdir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    proc = Spawned(process)
    try:
        proc.wait_for(lambda lines: any("Server listening" in line for line in lines))
        with blazerpc.SyncClient(f"127.0.0.1:{port}", timeout=30) as client:
            assert client.predict("sentiment", text=["good", "bad"]) == pytest.approx([0.95, 0.95])
        assert proc.stop() == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
