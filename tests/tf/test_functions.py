"""tf_model and tf.Tensor annotations: Keras models, functions and tf.functions built here,
served over a real loopback server and compared with calling TensorFlow directly."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from tfhelp import ATOL, RTOL, array, batched_app, rng_batches, tensor, unbatched_app

from blazerpc import BlazeApp, ConfigurationError, ModelRegistrationError, TensorInput, TensorOutput
from blazerpc.testing import RunningServer, serve_app
from blazerpc_tf import tf_model

BATCH = "batch"
Features = Annotated[tf.Tensor, tf.TensorSpec([None, 4], tf.float32)]
Scores = Annotated[tf.Tensor, tf.TensorSpec([None, 3], tf.float32)]
SIZES = [1, 3, 2, 5, 1, 4]  # rows per request


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    """A small Keras model with fixed weights: 4 features -> 3 softmax scores."""
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="classifier",
    )


def direct(model: Any, batches: list[np.ndarray]) -> list[np.ndarray]:
    """What TensorFlow itself answers, one request at a time."""
    return [np.asarray(model(tf.constant(x), training=False)) for x in batches]


async def call_all(server: RunningServer, model: str, batches: list[np.ndarray], **fields: Any) -> list[Any]:
    return await asyncio.gather(*[server.call(model, x=tensor(x), **fields) for x in batches])


# --- @tf_model on a function ---------------------------------------------------------------


async def test_bare_tf_model_serves_a_keras_model_behind_a_function(classifier: keras.Model) -> None:
    app = BlazeApp()
    seen: list[type] = []

    @app.model("classify")
    @tf_model
    def classify(x: TensorInput[np.float32, BATCH, 4]) -> TensorOutput[np.float32, BATCH, 3]:
        """Softmax scores."""
        seen.append(type(x))
        return classifier(x, training=False)  # a tf.Tensor: tf_model hands back numpy

    batches = rng_batches([2, 1, 5], 4)

    async with serve_app(app) as server:
        got = [array(r.result) for r in await call_all(server, "classify", batches)]
    for served, expected in zip(got, direct(classifier, batches), strict=True):
        assert served.shape == expected.shape
        np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL)
    assert seen
    assert all(issubclass(t, tf.Tensor) for t in seen)
    # The function keeps its name, docs and annotations (the schema is built from them).
    assert classify.__name__ == "classify"
    assert classify.__doc__ == "Softmax scores."
    out = tf_model(lambda x: tf.constant([[1.0, 2.0]]))(np.zeros((1, 2), np.float32))
    assert type(out) is np.ndarray


async def test_tf_tensor_annotations_give_tensor_fields_and_the_model_tf_tensors() -> None:
    app = BlazeApp()
    received: list[Any] = []

    @app.model("scale")
    def scale(x: Features, factor: float) -> Scores:
        received.append(x)
        return x[:, :3] * factor  # a tf.Tensor result, converted by the plugin's converter

    @app.model("anything")
    def anything(x: tf.Tensor) -> tf.Tensor:
        return tf.reverse(x, axis=[0])

    @app.model("spec")  # a tf.TensorSpec as the annotation itself
    def spec(x: tf.TensorSpec([None, 2], tf.int16)) -> tf.TensorSpec([None], tf.int16):
        return tf.reduce_max(x, axis=1)

    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    ints = np.arange(6, dtype=np.int16).reshape(3, 2)

    async with serve_app(app) as server:
        scaled = await server.call("scale", x=tensor(x), factor=0.5)
        reversed_ = await server.call("anything", x=tensor(ints))
        with pytest.raises(GRPCError) as info:  # a declared shape is checked like any other
            await server.call("spec", x=tensor(x))
        assert info.value.status is Status.INVALID_ARGUMENT
        np.testing.assert_array_equal(array((await server.call("spec", x=tensor(ints))).result), [1, 3, 5])
        assert server.method("spec").inputs[0].wire.tensor.dims == ("batch", 2)
        scale_method, any_method, scaled, reversed_ = (
            server.method("scale"),
            server.method("anything"),
            array(scaled.result),
            array(reversed_.result),
        )
    np.testing.assert_array_equal(scaled, x[:, :3] * 0.5)
    np.testing.assert_array_equal(reversed_, ints[::-1])
    assert reversed_.dtype == np.int16
    assert isinstance(received[0], tf.Tensor)
    assert received[0].dtype == tf.float32
    x_field, result_field = scale_method.inputs[0].wire, scale_method.outputs[0].wire
    assert (x_field.tensor.dtype, x_field.tensor.dims) == ("float32", ("batch", 4))
    assert (result_field.tensor.dtype, result_field.tensor.dims) == ("float32", ("batch", 3))
    assert x_field.describe == "tf.Tensor float32[batch, 4]"
    assert any_method.inputs[0].wire.tensor.dims is None
    assert any_method.inputs[0].wire.tensor.dtype is None


def test_without_the_plugin_a_tf_tensor_annotation_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BLAZERPC_DISABLE_PLUGIN_AUTOLOAD", "1")
    app = BlazeApp()
    with pytest.raises(ModelRegistrationError, match=r"pip install \./plugins/blazerpc-tf \(from the root"):

        @app.model("scale")
        def scale(x: tf.Tensor) -> tf.Tensor:
            return x


# --- batching -------------------------------------------------------------------------------


async def _served(app: BlazeApp, model: str, batches: list[np.ndarray]) -> list[np.ndarray]:
    async with serve_app(app) as server:
        got = [array(r.result) for r in await call_all(server, model, batches)]
    return got


def _classifier_app(app: BlazeApp, classifier: keras.Model, annotations: str, calls: list[int]) -> BlazeApp:
    """`app` serving `classifier` as model "classify"; `calls` gets the rows of each call."""
    if annotations == "tf.Tensor":
        # Decoded to tf.Tensor per request; the batch is joined with tf.concat.
        @app.model("classify")
        def classify(x: Features) -> Scores:
            assert isinstance(x, tf.Tensor)
            calls.append(int(x.shape[0]))
            return classifier(x, training=False)

    else:
        # Joined as numpy; tf_model converts the whole batch once.
        @app.model("classify")
        @tf_model
        def classify_numpy(x: TensorInput[np.float32, BATCH, 4]) -> TensorOutput[np.float32, BATCH, 3]:
            assert isinstance(x, tf.Tensor)
            calls.append(int(x.shape[0]))
            return classifier(x, training=False)

    return app


@pytest.mark.parametrize("annotations", ["tf.Tensor", "TensorInput"])
async def test_batched_calls_give_the_numbers_of_unbatched_ones(
    classifier: keras.Model, annotations: str
) -> None:
    batches = rng_batches(SIZES, 4, seed=1)
    batched_calls: list[int] = []
    unbatched_calls: list[int] = []
    batched = await _served(
        _classifier_app(batched_app(sum(SIZES)), classifier, annotations, batched_calls), "classify", batches
    )
    unbatched = await _served(
        _classifier_app(unbatched_app(), classifier, annotations, unbatched_calls), "classify", batches
    )
    assert batched_calls == [sum(SIZES)], "every request joined one model call"
    assert sorted(unbatched_calls) == sorted(SIZES)
    for one, other, expected in zip(batched, unbatched, direct(classifier, batches), strict=True):
        assert one.shape == other.shape == expected.shape
        np.testing.assert_allclose(one, other, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(one, expected, rtol=RTOL, atol=ATOL)


async def test_requests_with_different_trailing_dims_are_never_joined() -> None:
    app = batched_app(4)
    calls: list[tuple[int, ...]] = []

    @app.model("total")
    def total(
        x: Annotated[tf.Tensor, tf.TensorSpec([None, None], tf.float32)],
    ) -> Annotated[tf.Tensor, tf.TensorSpec([None], tf.float32)]:
        calls.append(tuple(x.shape))
        return tf.reduce_sum(x, axis=1)

    a, b = np.ones((2, 3), np.float32), np.ones((2, 5), np.float32)
    c, d = np.full((2, 3), 2, np.float32), np.full((2, 5), 3, np.float32)

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("total", x=tensor(v)) for v in (a, b, c, d)])
        got = [array(r.result) for r in replies]
    assert [g.tolist() for g in got] == [[3, 3], [5, 5], [6, 6], [15, 15]]
    assert sorted(calls) == [(4, 3), (4, 5)]


# --- tf.function ------------------------------------------------------------------------------


async def test_a_tf_function_without_input_signature_is_traced_once_for_every_batch_size() -> None:
    weights = tf.constant(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))

    @tf.function
    def project(x: Features) -> Scores:
        return tf.nn.tanh(tf.matmul(x, weights))

    app = unbatched_app()
    app.model("project")(project)  # registered directly: the plugin's adapter signs it
    batches = rng_batches([1, 2, 3, 5, 8], 4, seed=2)

    async with serve_app(app) as server:
        got = [array((await server.call("project", x=tensor(x))).result) for x in batches]
    assert project.experimental_get_tracing_count() == 1, "one trace serves every batch size"
    for served, x in zip(got, batches, strict=True):
        np.testing.assert_allclose(served, np.tanh(x @ weights.numpy()), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(served, project(tf.constant(x)).numpy(), rtol=RTOL, atol=ATOL)


async def test_a_tf_function_with_input_signature_needs_no_annotations() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([], tf.float32)])
    def stats(x, shift):  # type: ignore[no-untyped-def]
        return {"centered": x - tf.reduce_mean(x, axis=1, keepdims=True) + shift, "norm": tf.norm(x, axis=1)}

    app = batched_app(6)
    app.model("stats", batching=False)(tf_model(stats))
    batches = rng_batches([1, 2, 3], 4, seed=3)

    async with serve_app(app) as server:
        replies = await asyncio.gather(
            *[server.call("stats", x=tensor(x), shift=i + 0.5) for i, x in enumerate(batches)]
        )
        method, replies = server.method("stats"), replies
    assert [f.name for f in method.inputs] == ["x", "shift"]
    assert method.inputs[1].wire.describe == "float32"  # a rank-0 spec is a scalar field
    assert method.inputs[1].wire.describe == "float32"  # a rank-0 spec is a scalar field
    assert [f.name for f in method.outputs] == ["centered", "norm"]
    assert method.outputs[0].wire.tensor.dims == ("batch", 4)
    assert method.outputs[1].wire.tensor.dims == ("batch",)
    assert stats.experimental_get_tracing_count() == 1
    for i, (reply, x) in enumerate(zip(replies, batches, strict=True)):
        expected = stats(tf.constant(x), tf.constant(np.float32(i + 0.5)))
        np.testing.assert_allclose(array(reply.centered), expected["centered"].numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(array(reply.norm), expected["norm"].numpy(), rtol=RTOL, atol=ATOL)


def _doubling(compiled: bool, traced: list[Any]) -> BlazeApp:
    app = unbatched_app()

    @app.model("double")
    @tf_model(compile=compiled)
    def double(x: TensorInput[np.float32, BATCH, 4]) -> TensorOutput[np.float32, BATCH, 4]:
        traced.append(x.shape)  # Python runs only while tracing, once compiled
        return x * 2.0

    return app


async def test_compile_traces_a_python_function_once_and_eager_runs_it_every_time() -> None:
    batches = rng_batches([1, 2, 3, 4], 4, seed=4)
    traced: dict[bool, list[Any]] = {True: [], False: []}
    results = {
        compiled: await _served(_doubling(compiled, traced[compiled]), "double", batches)
        for compiled in traced
    }
    assert len(traced[True]) == 1
    assert traced[True][0].as_list() == [None, 4]
    assert len(traced[False]) == len(batches)
    for a, b, x in zip(results[True], results[False], batches, strict=True):
        np.testing.assert_array_equal(a, x * 2)
        np.testing.assert_array_equal(b, x * 2)


# --- Keras models ----------------------------------------------------------------------------


async def test_a_keras_model_registered_directly_gets_its_schema_from_its_inputs(
    classifier: keras.Model,
) -> None:
    app = batched_app(sum(SIZES))
    app.model("clf")(classifier)
    batches = rng_batches(SIZES, 4, seed=5)

    async with serve_app(app) as server:
        replies = await asyncio.gather(*[server.call("clf", features=tensor(x)) for x in batches])
        method, got = server.method("clf"), [array(r.result) for r in replies]
    assert [(f.name, f.wire.tensor.dims) for f in method.inputs] == [("features", ("batch", 4))]
    assert method.outputs[0].wire.tensor.dims == ("batch", 3)
    for served, expected in zip(got, direct(classifier, batches), strict=True):
        np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL)


async def test_a_keras_model_with_two_inputs_and_two_outputs() -> None:
    keras.utils.set_random_seed(11)
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    hidden = keras.layers.Dense(4, activation="relu")(joined)
    model = keras.Model([a, b], [keras.layers.Dense(1)(hidden), keras.layers.Dense(2)(hidden)])
    app = unbatched_app()
    app.model("two")(tf_model(model))
    xa, xb = rng_batches([3], 3, seed=6)[0], rng_batches([3], 2, seed=7)[0]

    async with serve_app(app) as server:
        method, reply = server.method("two"), await server.call("two", a=tensor(xa), b=tensor(xb))
    assert [f.name for f in method.inputs] == ["a", "b"]
    assert [f.name for f in method.outputs] == ["result_0", "result_1"]
    first, second = model([tf.constant(xa), tf.constant(xb)], training=False)
    np.testing.assert_allclose(array(reply.result_0), first.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(array(reply.result_1), second.numpy(), rtol=RTOL, atol=ATOL)


def test_a_keras_model_without_known_inputs_is_refused_with_what_to_do() -> None:
    class Subclassed(keras.Model):
        def call(self, x):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(ModelRegistrationError, match="serve a function instead"):
        BlazeApp().model("sub")(Subclassed())


# --- async, streaming, devices ---------------------------------------------------------------


async def test_async_and_streaming_models_get_tensors_and_answer_numpy() -> None:
    app = unbatched_app()

    @app.model("negate")
    @tf_model
    async def negate(x: TensorInput[np.float32, BATCH, 2]) -> TensorOutput[np.float32, BATCH, 2]:
        assert isinstance(x, tf.Tensor)
        return -x

    @app.model("powers", streaming=True)
    @tf_model(device="/CPU:0")
    def powers(x: TensorInput[np.float32, 2], n: int) -> TensorOutput[np.float32, 2]:
        for k in range(1, n + 1):
            yield tf.pow(x, float(k))

    x = np.array([[1.5, -2.0]], np.float32)

    async with serve_app(app) as server:
        negated = array((await server.call("negate", x=tensor(x))).result)
        streamed = [array(m.result) for m in await server.stream("powers", x=tensor(x[0]), n=3)]
    np.testing.assert_array_equal(negated, -x)
    assert len(streamed) == 3
    for k, item in enumerate(streamed, start=1):
        np.testing.assert_allclose(item, x[0] ** k, rtol=RTOL)


def test_a_device_this_machine_lacks_fails_at_registration() -> None:
    with pytest.raises(ConfigurationError, match=r"'/GPU:64' is not available.*CPU:0"):

        @tf_model(device="/GPU:64")
        def f(x: TensorInput[np.float32, 2]) -> TensorOutput[np.float32, 2]:
            return x


# --- errors -----------------------------------------------------------------------------------


async def test_bad_tensors_are_invalid_argument_and_tensorflow_errors_keep_their_status(
    classifier: keras.Model,
) -> None:
    app = unbatched_app()

    @app.model("classify")
    def classify(x: Features) -> Scores:
        return classifier(x, training=False)

    weights = tf.ones((4, 2))

    @app.model("matmul")
    @tf_model
    def matmul(x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, weights)  # an x with 5 columns: TensorFlow's InvalidArgumentError

    good = np.ones((2, 4), np.float32)
    bad_requests = {
        "float64 data": tensor(good.astype(np.float64)),
        "3 columns": tensor(np.ones((2, 3), np.float32)),
        "rank 1": tensor(np.ones(4, np.float32)),
        "short data": {"shape": [2, 4], "dtype": "float32", "data": b"\0" * 12},
    }

    errors = {}
    async with serve_app(app) as server:
        for what, x in bad_requests.items():
            with pytest.raises(GRPCError) as info:
                await server.call("classify", x=x)
            errors[what] = info.value
        with pytest.raises(GRPCError) as info:
            await server.call("matmul", x=tensor(np.ones((2, 5), np.float32)))
        tf_error = info.value
        still = array((await server.call("classify", x=tensor(good))).result)
    for what, error in errors.items():
        assert error.status is Status.INVALID_ARGUMENT, what
        assert "x" in (error.message or ""), what
    assert "expected dtype float32, got float64" in (errors["float64 data"].message or "")
    assert tf_error.status is Status.INVALID_ARGUMENT
    assert "InvalidArgumentError" in (tf_error.message or "")
    np.testing.assert_allclose(still, direct(classifier, [good])[0], rtol=RTOL, atol=ATOL)
