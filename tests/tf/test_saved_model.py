"""SavedModel directories saved here (a tf.Module and a Keras export), served through the
adapter hook with a schema from their signatures, compared with TensorFlow's own answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from tfhelp import ATOL, RTOL, array, batched_app, rng_batches, tensor, unbatched_app

from blazerpc import BlazeApp, ConfigurationError
from blazerpc.testing import serve_app
from blazerpc_tf import SavedModel, tf_model

SIZES = [2, 1, 4, 3]


class Scorer(tf.Module):
    """Two inputs, two outputs, variables: what a real serving signature looks like."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(42)
        self.w = tf.Variable(rng.standard_normal((4, 3)).astype(np.float32))
        self.b = tf.Variable(rng.standard_normal(3).astype(np.float32))
        self.offsets = tf.Variable(np.array([0.5, -1.0, 2.0, 0.0], np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32, name="features"),
            tf.TensorSpec([None], tf.int32, name="bucket"),
        ]
    )
    def serve(self, features: tf.Tensor, bucket: tf.Tensor) -> dict[str, tf.Tensor]:
        shifted = features + tf.gather(self.offsets, bucket)[:, None]
        logits = tf.matmul(shifted, self.w) + self.b
        return {"probs": tf.nn.softmax(logits), "label": tf.argmax(logits, axis=1, output_type=tf.int64)}


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scorer]:
    path = tmp_path_factory.mktemp("scorer")
    module = Scorer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path, module


def inputs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(x, rng.integers(0, 4, size=len(x)).astype(np.int32)) for x in rng_batches(SIZES, 4, seed=seed)]


async def test_a_saved_model_is_served_with_the_schema_of_its_signature(
    scorer_dir: tuple[Path, Scorer],
) -> None:
    path, module = scorer_dir
    app = batched_app(sum(SIZES))
    app.model("scorer")(SavedModel(path))  # the adapter hook: no annotations to write
    requests = inputs(seed=1)

    async with serve_app(app) as server:
        replies = await asyncio.gather(
            *[server.call("scorer", features=tensor(x), bucket=tensor(b)) for x, b in requests]
        )
        method, replies = server.method("scorer"), replies
    assert [(f.name, f.wire.tensor.dtype, f.wire.tensor.dims) for f in method.inputs] == [
        ("bucket", "int32", ("batch",)),
        ("features", "float32", ("batch", 4)),
    ]
    assert [(f.name, f.wire.tensor.dtype, f.wire.tensor.dims) for f in method.outputs] == [
        ("label", "int64", ("batch",)),
        ("probs", "float32", ("batch", 3)),
    ]
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    for reply, (x, b) in zip(replies, requests, strict=True):
        loaded = signature(features=tf.constant(x), bucket=tf.constant(b))
        original = module.serve(tf.constant(x), tf.constant(b))
        np.testing.assert_allclose(array(reply.probs), loaded["probs"].numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(array(reply.probs), original["probs"].numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(array(reply.label), loaded["label"].numpy())
        assert array(reply.label).dtype == np.int64


async def test_batched_and_unbatched_saved_model_calls_agree(scorer_dir: tuple[Path, Scorer]) -> None:
    path, _ = scorer_dir
    requests = inputs(seed=2)
    results = {}
    for mode, app in (("batched", batched_app(sum(SIZES))), ("unbatched", unbatched_app())):
        model = SavedModel(path)
        app.model("scorer")(model)

        async with serve_app(app) as server:
            replies = await asyncio.gather(
                *[server.call("scorer", features=tensor(x), bucket=tensor(b)) for x, b in requests]
            )
            results[mode] = [(array(r.probs), array(r.label)) for r in replies]
    for (p1, l1), (p2, l2), (x, b) in zip(results["batched"], results["unbatched"], requests, strict=True):
        assert p1.shape == (len(x), 3)
        np.testing.assert_allclose(p1, p2, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(l1, l2)
        direct = SavedModel(path)(features=x, bucket=b)  # the wrapper called directly
        np.testing.assert_allclose(p1, direct["probs"], rtol=RTOL, atol=ATOL)


async def test_a_keras_export_is_served_like_the_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((5,), name="pixels"), keras.layers.Dense(8, activation="gelu"), keras.layers.Dense(2)]
    )
    model.export(str(tmp_path / "exported"), verbose=False)
    app = BlazeApp()
    app.model("exported")(tf_model(SavedModel(tmp_path / "exported")))
    batches = rng_batches([3, 1, 2], 5, seed=9)

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("exported", pixels=tensor(x)) for x in batches])
        method, got = server.method("exported"), [array(r.output_0) for r in replies]
    assert [f.name for f in method.inputs] == ["pixels"]
    for served, x in zip(got, batches, strict=True):
        np.testing.assert_allclose(served, model(x, training=False).numpy(), rtol=RTOL, atol=ATOL)


async def test_bad_input_to_a_saved_model_is_invalid_argument(scorer_dir: tuple[Path, Scorer]) -> None:
    path, _ = scorer_dir
    app = unbatched_app()
    app.model("scorer")(SavedModel(path))
    x, b = np.ones((2, 4), np.float32), np.zeros(2, np.int32)
    bad = {
        "int64 buckets": {"features": tensor(x), "bucket": tensor(b.astype(np.int64))},
        "5 features": {"features": tensor(np.ones((2, 5), np.float32)), "bucket": tensor(b)},
        # Shapes each fine, rows that disagree: TensorFlow's own InvalidArgumentError.
        "3 buckets for 2 rows": {"features": tensor(x), "bucket": tensor(np.zeros(3, np.int32))},
        "bucket out of range": {"features": tensor(x), "bucket": tensor(np.array([0, 9], np.int32))},
    }

    errors = {}
    async with serve_app(app) as server:
        for what, fields in bad.items():
            with pytest.raises(GRPCError) as info:
                await server.call("scorer", **fields)
            errors[what] = info.value
        good = await server.call("scorer", features=tensor(x), bucket=tensor(b))
    for what, error in errors.items():
        assert error.status is Status.INVALID_ARGUMENT, (what, error)
    assert "expected dtype int32, got int64" in (errors["int64 buckets"].message or "")
    assert "InvalidArgumentError" in (errors["bucket out of range"].message or "")
    assert array(good.probs).shape == (2, 3)


def test_loading_problems_fail_at_start_up_with_the_reason(
    scorer_dir: tuple[Path, Scorer], tmp_path: Path
) -> None:
    path, _ = scorer_dir
    with pytest.raises(ConfigurationError, match=r"no signature 'predict' \(it has: serving_default\)"):
        SavedModel(path, signature="predict")
    with pytest.raises(ConfigurationError, match="cannot load the SavedModel"):
        SavedModel(tmp_path / "missing")

    class Texts(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"length": tf.strings.length(text)}

    texts = Texts()
    tf.saved_model.save(texts, str(tmp_path / "texts"), signatures={"serving_default": texts.serve})
    with pytest.raises(ConfigurationError, match="TensorFlow dtype string has no tensor wire form"):
        SavedModel(tmp_path / "texts")
