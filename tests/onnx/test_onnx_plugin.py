"""blazerpc-onnx: graphs built here with onnx.helper, served over loopback with no annotations,
called over gRPC and compared with onnxruntime itself (and with numpy)."""

from __future__ import annotations

import asyncio
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from graphs import (
    Classifier,
    masked_mean_graph,
    scale_graph,
    sequence_graph,
    square_graph,
    strings_graph,
    time_major_graph,
)
from grpclib.const import Status
from grpclib.exceptions import GRPCError

import blazerpc_onnx
from blazerpc import BlazeApp, ModelRegistrationError, TensorOutput
from blazerpc.testing import RunningServer, serve_app, serve_process
from blazerpc_onnx import ONNXModel
from plugin_support import BatchWatcher, array, call_process, load_app_module, plugins_list_json, tensor

APPS = Path(__file__).resolve().parent / "apps"
RNG = np.random.default_rng(4)
CPU = ["CPUExecutionProvider"]


def features(rows: int) -> np.ndarray:
    return RNG.standard_normal((rows, 4)).astype(np.float32)


@pytest.fixture
def classifier(tmp_path: Path) -> tuple[Classifier, Path]:
    clf = Classifier.make(seed=11)
    return clf, clf.save(tmp_path / "classifier.onnx")


def onnxruntime_run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The framework called directly, with its own session."""
    outputs: list[np.ndarray] = ort.InferenceSession(str(path), providers=CPU).run(None, feed)
    return outputs


# --- a graph served as it is ------------------------------------------------------------


def test_the_schema_comes_from_the_graph(classifier: tuple[Classifier, Path]) -> None:
    _, path = classifier
    app = BlazeApp()
    model = ONNXModel(path, providers=CPU)
    assert app.model("clf")(model) is model  # registration returns what it was given
    proto = app.proto()
    assert "message ClfRequest {\n  // float32, shape [batch, 4]\n  TensorProto input_1 = 1;\n}" in proto
    assert (
        "message ClfResponse {\n  // float32, shape [batch, 3]\n  TensorProto logits = 1;\n"
        "  // float32, shape [batch, 3]\n  TensorProto probabilities = 2;\n}"
    ) in proto
    method = app.schema().methods[0]
    assert [f.wire.describe for f in method.inputs] == ["float32[batch, 4]"]
    assert [f.wire.describe for f in method.outputs] == ["float32[batch, 3]", "float32[batch, 3]"]


async def test_served_graph_returns_what_onnxruntime_computes(classifier: tuple[Classifier, Path]) -> None:
    clf, path = classifier
    app = BlazeApp()
    app.model("clf")(ONNXModel(path, providers=CPU))
    inputs = [features(n) for n in (1, 2, 9)]

    async with serve_app(app) as server:
        got = [await server.call("clf", input_1=tensor(x)) for x in inputs]
    for x, reply in zip(inputs, got, strict=True):
        logits, probabilities = array(reply.logits), array(reply.probabilities)
        want_logits, want_probabilities = onnxruntime_run(path, {"input.1": x})
        np.testing.assert_array_equal(logits, want_logits)
        np.testing.assert_array_equal(probabilities, want_probabilities)
        np_logits, np_probabilities = clf.numpy(x)
        np.testing.assert_allclose(logits, np_logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(probabilities, np_probabilities, rtol=1e-5, atol=1e-6)


async def test_batched_calls_give_the_same_numbers_as_unbatched_ones(
    classifier: tuple[Classifier, Path],
) -> None:
    _, path = classifier
    inputs = [features(n) for n in (3, 1, 2, 5, 1, 4)]
    watcher = BatchWatcher()
    # "fixed" dispatches when max_batch_size rows wait: all these requests, in one call.
    batched_app = BlazeApp(
        plugins=[watcher],
        batch_policy="fixed",
        max_batch_size=sum(len(x) for x in inputs),
        batch_timeout_ms=60_000,
    )
    batched_app.model("clf")(ONNXModel(path, providers=CPU))
    unbatched_app = BlazeApp(enable_batching=False)
    unbatched_app.model("clf")(ONNXModel(path, providers=CPU))

    async def call_all(server: RunningServer) -> list[Any]:
        return list(await asyncio.gather(*[server.call("clf", input_1=tensor(x)) for x in inputs]))

    async with serve_app(batched_app) as server:
        batched = await call_all(server)
    async with serve_app(unbatched_app) as server:
        unbatched = await call_all(server)
    assert watcher.requests_per_batch("clf") == [len(inputs)]
    for x, b, u in zip(inputs, batched, unbatched, strict=True):
        want_logits, want_probabilities = onnxruntime_run(path, {"input.1": x})
        for field, want in (("logits", want_logits), ("probabilities", want_probabilities)):
            got_b, got_u = array(getattr(b, field)), array(getattr(u, field))
            assert got_b.shape == (len(x), 3)
            np.testing.assert_allclose(got_b, got_u, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(got_b, want, rtol=1e-6, atol=1e-7)


async def test_named_dims_are_shared_between_inputs(tmp_path: Path) -> None:
    path = masked_mean_graph(tmp_path / "masked_mean.onnx")
    app = BlazeApp()
    app.model("pool")(ONNXModel(path, providers=CPU))
    method = app.schema().methods[0]
    assert [(f.name, f.wire.describe) for f in method.inputs] == [
        ("features", "float32[batch, seq, 2]"),
        ("mask", "int64[batch, seq]"),
    ]
    x = RNG.standard_normal((2, 5, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int64)

    async with serve_app(app) as server:
        good = await server.call("pool", features=tensor(x), mask=tensor(mask))
        with pytest.raises(GRPCError) as info:
            await server.call("pool", features=tensor(x), mask=tensor(mask[:, :4]))
        good, error = good, info.value
    want = np.stack([x[0, :3].mean(axis=0), x[1].mean(axis=0)])
    np.testing.assert_allclose(array(good.mean), want, rtol=1e-6)
    np.testing.assert_array_equal(array(good.mean), onnxruntime_run(path, {"features": x, "mask": mask})[0])
    assert error.status is Status.INVALID_ARGUMENT
    assert "dimension 'seq' is 5 in field 'features' but 4 in field 'mask'" in (error.message or "")


async def test_a_later_dim_named_batch_is_not_the_batch_axis(tmp_path: Path) -> None:
    """Time-major x[seq, batch, 4]: "batch" is a dim of its own (it was tied to the first
    dim, so any request with seq != batch was refused), and the model is not batched:
    joining requests along seq would change the numbers."""
    path = time_major_graph(tmp_path / "time_major.onnx")
    app = BlazeApp()
    app.model("rnn_like")(ONNXModel(path, providers=CPU))
    method = app.schema().methods[0]
    assert [f.wire.describe for f in method.inputs] == ["float32[seq, batch_2, 4]"]
    assert [f.wire.describe for f in method.outputs] == ["float32[batch_2, 4]"]
    assert all(f.wire.batch is None for f in (*method.inputs, *method.outputs))
    x = RNG.standard_normal((5, 2, 4)).astype(np.float32)

    async with serve_app(app) as server:
        result = await server.call("rnn_like", x=tensor(x))
    got = array(result.total)
    np.testing.assert_array_equal(got, onnxruntime_run(path, {"x": x})[0])
    np.testing.assert_allclose(got, x.sum(axis=0), rtol=1e-6)


async def test_a_first_dim_whose_name_is_used_again_keeps_its_equality(tmp_path: Path) -> None:
    path = square_graph(tmp_path / "square.onnx")
    app = BlazeApp()
    app.model("square")(ONNXModel(path, providers=CPU))
    method = app.schema().methods[0]
    assert [f.wire.describe for f in (*method.inputs, *method.outputs)] == ["float32[N, N]", "float32[N, N]"]
    m = RNG.standard_normal((3, 3)).astype(np.float32)

    async with serve_app(app) as server:
        good = await server.call("square", m=tensor(m))
        with pytest.raises(GRPCError) as info:
            await server.call("square", m=tensor(m[:2]))
        good, error = good, info.value
    np.testing.assert_allclose(array(good.product), m @ m, rtol=1e-5)
    assert error.status is Status.INVALID_ARGUMENT
    assert "dimension 'N' is 2 in field 'm' but 3 in field 'm'" in (error.message or "")


async def test_a_rank_0_input_keeps_its_shape(tmp_path: Path) -> None:
    path = scale_graph(tmp_path / "scale.onnx")
    app = BlazeApp()
    app.model("scale")(ONNXModel(path, providers=CPU))
    method = app.schema().methods[0]
    assert [(f.name, f.wire.describe) for f in method.inputs] == [
        ("x", "float32[batch, 3]"),
        ("s", "float32[]"),
    ]
    x = features(2)[:, :3]
    s = np.array(2.5, np.float32)

    async with serve_app(app) as server:
        good = await server.call("scale", x=tensor(x), s=tensor(s))
        with pytest.raises(GRPCError) as info:
            await server.call("scale", x=tensor(x), s=tensor(np.ones((2, 2), np.float32)))
        good, error = good, info.value
    np.testing.assert_array_equal(array(good.y), onnxruntime_run(path, {"x": x, "s": s})[0])
    np.testing.assert_allclose(array(good.y), x * s, rtol=1e-6)
    # Refused by BlazeRPC before ONNX Runtime sees it (it used to fail there as INTERNAL).
    assert error.status is Status.INVALID_ARGUMENT
    assert "field 's': expected a tensor of rank 0 (float32[]), got shape [2, 2]" in (error.message or "")


async def test_string_tensors_are_lists_and_fixed_shapes_are_not_batched(tmp_path: Path) -> None:
    path = strings_graph(tmp_path / "strings.onnx")
    app = BlazeApp()
    app.model("strings")(ONNXModel(path, providers=CPU))
    assert "repeated string text = 1;" in app.proto()
    assert "repeated string echo = 1;" in app.proto()

    async with serve_app(app) as server:
        reply = await server.call(
            "strings", text=["abc", "Déjà vu"], scale=tensor(np.array([1.0, 2.5, -3.0]))
        )
    assert list(reply.echo) == ["abc", "Déjà vu"]
    assert array(reply.doubled).tolist() == [2.0, 5.0, -6.0]


def test_a_graph_output_with_no_wire_form_is_refused_at_registration(tmp_path: Path) -> None:
    path = sequence_graph(tmp_path / "sequence.onnx")
    with pytest.raises(
        ModelRegistrationError, match=r"model 'seq': output 'pair' has type seq\(tensor\(float\)\)"
    ):
        BlazeApp().model("seq")(ONNXModel(path, providers=CPU))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (tensor(np.zeros((2, 4), np.float64)), "expected dtype float32, got float64"),
        (tensor(np.zeros((2, 3), np.float32)), "expected shape float32[batch, 4], got shape [2, 3]"),
        (tensor(np.zeros((2, 4, 1), np.float32)), "expected a tensor of rank 2"),
        ({"shape": [1, 4], "dtype": "float32", "data": b"\0" * 8}, "needs 16 bytes of data, got 8"),
    ],
)
async def test_bad_tensors_get_invalid_argument(
    classifier: tuple[Classifier, Path], x: dict[str, Any], message: str
) -> None:
    _, path = classifier
    app = BlazeApp()
    app.model("clf")(ONNXModel(path, providers=CPU))

    async with serve_app(app) as server:
        with pytest.raises(GRPCError) as info:
            await server.call("clf", input_1=x)
        error = info.value
    assert error.status is Status.INVALID_ARGUMENT
    assert "field 'input_1'" in (error.message or "")
    assert message in (error.message or "")


# --- ONNXModel itself -------------------------------------------------------------------


def test_predict_takes_inputs_by_position_or_name(classifier: tuple[Classifier, Path]) -> None:
    _, path = classifier
    model = ONNXModel(str(path), providers=CPU)
    x = features(3)
    want = onnxruntime_run(path, {"input.1": x})
    for got in (model.predict(x), model.predict(**{"input.1": x}), model.predict(x.tolist())):
        assert len(got) == 2
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    assert model.input_names == ["input.1"]
    assert model.output_names == ["logits", "probabilities"]
    with pytest.raises(TypeError, match="missing inputs"):
        model.predict()
    with pytest.raises(TypeError, match="has no input 'x'"):
        model.predict(x=x)
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        model.predict(x, x)


def test_unavailable_providers_fall_back_to_cpu_with_a_warning(classifier: tuple[Classifier, Path]) -> None:
    _, path = classifier
    missing = sorted(set(ort.get_all_providers()) - set(ort.get_available_providers()))
    if not missing:
        pytest.skip("this onnxruntime build has every provider")
    with pytest.warns(RuntimeWarning, match=f"{missing[0]} is not available") as record:
        model = ONNXModel(path, providers=[missing[0], "CPUExecutionProvider"])
    assert "falling back to CPUExecutionProvider" in str(record[0].message)
    assert model.providers == ["CPUExecutionProvider"]
    with pytest.warns(RuntimeWarning, match="falling back to CPUExecutionProvider"):
        only_missing = ONNXModel(path, providers=[(missing[0], {})])
    assert only_missing.providers == ["CPUExecutionProvider"]
    x = features(2)
    np.testing.assert_array_equal(only_missing.predict(x)[1], onnxruntime_run(path, {"input.1": x})[1])


def test_available_providers_give_no_warning_and_typos_are_errors(
    classifier: tuple[Classifier, Path],
) -> None:
    _, path = classifier
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ONNXModel(path, providers=CPU).providers == CPU
        assert "CPUExecutionProvider" in ONNXModel(path).providers
    with pytest.raises(ValueError, match="CUDAProvider is not an ONNX Runtime execution provider"):
        ONNXModel(path, providers=["CUDAProvider"])


async def test_ortvalue_results_are_converted(classifier: tuple[Classifier, Path]) -> None:
    _, path = classifier
    model = ONNXModel(path, providers=CPU)
    app = BlazeApp()

    @app.model("logits")
    def logits(x: np.ndarray) -> TensorOutput[np.float32, "batch", 3]:
        feed = {"input.1": ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x))}
        return model.session.run_with_ort_values(["logits"], feed)[0]

    x = features(4)

    async with serve_app(app) as server:
        got = await server.call("logits", x=tensor(x))
    np.testing.assert_array_equal(array(got.result), onnxruntime_run(path, {"input.1": x})[0])


# --- the real command line ---------------------------------------------------------------


async def test_blaze_serve_runs_the_seed_readme_example(
    classifier: tuple[Classifier, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = classifier
    monkeypatch.setenv("CLF_MODEL", str(path))  # for the server and for the schema here
    schema = load_app_module(APPS / "clf_app.py").app.schema()
    x = features(6)
    with serve_process(f"{APPS / 'clf_app.py'}:app") as proc:
        graph = await call_process(proc.host, proc.port, schema, "graph", input_1=tensor(x))
        seed = await call_process(proc.host, proc.port, schema, "classifier", image=tensor(x))
    want_logits, want_probabilities = onnxruntime_run(path, {"input.1": x})
    np.testing.assert_array_equal(array(graph.logits), want_logits)
    np.testing.assert_array_equal(array(graph.probabilities), want_probabilities)
    np.testing.assert_array_equal(array(seed.result), want_logits)


def test_blaze_plugins_list_shows_the_plugin_and_its_version() -> None:
    records = {r["name"]: r for r in plugins_list_json()}
    record = records["onnx"]
    assert record["distribution"] == "blazerpc-onnx"
    assert record["version"] == metadata.version("blazerpc-onnx") == blazerpc_onnx.__version__
    assert record["loaded"] is True
    assert record["hooks"] == ["blazerpc_adapt_model", "blazerpc_array_converters"]


def test_the_contrib_import_path_is_the_plugin() -> None:
    from blazerpc.contrib.onnx import ONNXModel as ContribModel

    assert ContribModel is ONNXModel
