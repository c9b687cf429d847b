"""The READMEs' install commands: each names this repository's distributions by path
(none is on PyPI, where `blazerpc` is another project's name), and the README's
Installation section, run as written in a fresh virtualenv, installs this project."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
PLUGINS = ROOT / "plugins"
#: Plugins whose framework is too large to install in core's test run: their commands
#: are checked, not run.
HEAVY = {"blazerpc-torch", "blazerpc-tf"}


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]


OURS = {
    canonicalize_name(_project(p)["name"]): p
    for p in [CORE, *sorted(PLUGINS.iterdir())]
    if (p / "pyproject.toml").exists()
}
READMES = sorted(
    p
    for p in ROOT.rglob("README.md")
    if not any(part.startswith(".") or part == "build" for part in p.relative_to(ROOT).parts)
)


#: Options that would take requirements or indexes from elsewhere.
_UNDOCUMENTED = {"-r", "-c", "--requirement", "--constraint", "-i", "--index-url", "--extra-index-url", "-f"}


@dataclass(frozen=True)
class Install:
    """One `pip install` command of a README."""

    readme: Path
    text: str
    #: The command's words from `pip` on (`python -m pip install ./core` is `pip install ./core`).
    words: tuple[str, ...]

    @property
    def targets(self) -> list[tuple[str, bool]]:
        """What it installs, without the options: each word, and whether pip reads it as
        a path (after ``-e``, or with a ``/`` or a leading ``.``, as pip decides)."""
        found, editable = [], False
        for word in self.words[2:]:
            if editable:
                found.append((word, True))
                editable = False
            elif word in ("-e", "--editable"):
                editable = True
            elif word in _UNDOCUMENTED:
                raise AssertionError(f"{self}: {word} is not a form the README documents")
            elif not word.startswith("-"):
                found.append((word, "/" in word or word.startswith(".")))
        return found

    def paths(self) -> list[tuple[Path, set[str]]]:
        """Each path it installs from, with the extras asked for."""
        result = []
        for target, is_path in self.targets:
            if is_path:
                path, _, extras = target.partition("[")
                result.append(((ROOT / path).resolve(), set(extras.rstrip("]").split(",")) - {""}))
        return result

    def __str__(self) -> str:
        return f"{self.readme.relative_to(ROOT)}: {self.text!r}"


def _commands(readme: Path, markdown: str) -> list[Install]:
    """Every `pip install` in the code blocks and inline code of ``markdown``, in order."""
    found = []
    for match in re.finditer(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", markdown, re.S):
        chunk = (match.group(1) or match.group(2)).replace("\\\n", " ")
        for line in chunk.splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word not in ("&&", "||", ";", "|"):
                    command.append(word)
                    continue
                if command[:3] == ["python", "-m", "pip"] or command[:4] == ["python3", "-m", "pip"]:
                    command = command[command.index("pip") :]
                if command[:2] == ["pip", "install"]:
                    text = " ".join(shlex.quote(w) for w in command)
                    found.append(Install(readme, text, tuple(command)))
                command = []
    return found


def _installation_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Installation\n(.*?)^## ", text, re.S | re.M)
    assert match, "README.md has no '## Installation' section"
    return match.group(1)


ALL = [c for readme in READMES for c in _commands(readme, readme.read_text())]
INSTALLATION = _commands(ROOT / "README.md", _installation_section())


def test_the_readmes_have_install_commands() -> None:
    assert len(ALL) >= 10
    assert {c.readme.relative_to(ROOT).as_posix() for c in ALL} >= {
        "README.md",
        "core/README.md",
        "examples/embeddings/README.md",
        *(f"plugins/{p.name}/README.md" for p in PLUGINS.iterdir() if (p / "README.md").exists()),
    }


@pytest.mark.parametrize("command", ALL, ids=str)
def test_every_install_command_takes_our_distributions_from_their_paths(command: Install) -> None:
    extras = set(_project(CORE).get("optional-dependencies", {}))
    for path, asked in command.paths():
        assert (path / "pyproject.toml").exists(), f"{command}: {path} is not a project of this repository"
        assert path in OURS.values(), f"{command}: {path} is not one of this repository's distributions"
        assert asked <= extras, f"{command}: {path.name} has no extra {sorted(asked - extras)}"
    for target, is_path in command.targets:
        if is_path:
            continue
        try:
            name = canonicalize_name(Requirement(target).name)
        except InvalidRequirement:
            raise AssertionError(f"{command}: {target!r} is neither a path nor a requirement") from None
        # By name, pip takes it from the index: for `blazerpc`, another project's.
        assert not name.startswith("blazerpc"), f"{command}: {target} from the index"
        assert not (ROOT / target).is_dir(), (
            f"{command}: pip takes {target!r} from the index: write ./{target}"
        )
    paths = {path for path, _ in command.paths()}
    plugins = paths - {CORE}
    if plugins and CORE not in paths and "--no-deps" not in command.words:
        # A plugin alone resolves its `blazerpc` requirement from the index unless the core
        # is installed already: the one form the Installation section documents (and runs).
        assert command in INSTALLATION, f"{command}: a plugin without ./core in the same command"


def _fresh_tree(tmp: Path) -> Path:
    """A copy of the repository's installable sources, as a fresh clone has them."""
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__", ".*")
    tree = tmp / "blazerpc"
    shutil.copytree(CORE, tree / "core", ignore=ignore)
    shutil.copytree(PLUGINS, tree / "plugins", ignore=ignore)
    return tree


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_the_installation_section_run_as_written_installs_this_project(tmp_path: Path) -> None:
    heavy = {OURS[name] for name in HEAVY}
    runnable = [c for c in INSTALLATION if not heavy & {p for p, _ in c.paths()}]
    assert any({CORE} == {p for p, _ in c.paths()} for c in runnable), "no command installs the core alone"
    tree = _fresh_tree(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PIP_NO_INPUT="1")
    for command in runnable:
        # `pip install ...` as written, with this virtualenv's python (`python -m pip`).
        done = _run([str(bin_dir / "python"), "-m", *command.words], tree, env)
        assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    blaze = str(bin_dir / "blaze")
    version = _run([blaze, "--version"], tmp_path, env)
    assert (version.returncode, version.stdout) == (0, f"blazerpc {_project(CORE)['version']}\n"), (
        version.stderr
    )
    where = _run([str(bin_dir / "python"), "-c", "import blazerpc; print(blazerpc.__file__)"], tmp_path, env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where  # ours, installed, not the checkout's

    listed = _run([blaze, "plugins", "list", "--all", "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert plugins["scalars"]["distribution"] == "blazerpc"  # core's built-ins
    installed = {canonicalize_name(p.name) for c in runnable for p, _ in c.paths() if p != CORE}
    assert "blazerpc-metrics" in installed, "the Installation section installs no light plugin to check"
    for distribution in installed:
        entry = next((p for p in plugins.values() if p["distribution"] == distribution), None)
        assert entry is not None, f"{distribution} is not in blaze plugins list: {listed.stdout}"
        assert (entry["loaded"], entry["error"]) == (True, None), entry
        assert entry["version"] == _project(OURS[distribution])["version"]
