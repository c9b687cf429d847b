"""blazerpc-torch: small real modules built here, served over loopback, called over gRPC and
compared with calling torch directly; batched and unbatched calls give the same numbers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from grpclib.const import Status
from grpclib.exceptions import GRPCError

import blazerpc_torch
from blazerpc import BlazeApp, ConfigurationError, ModelRegistrationError, TensorInput, TensorOutput
from blazerpc.testing import serve_app, serve_process
from blazerpc_torch import TorchTensor, torch_model
from blazerpc_torch._model import _to_device
from blazerpc_torch._types import request_tensor
from plugin_support import (
    BatchWatcher,
    Gate,
    array,
    call_as_one_batch,
    call_process,
    load_app_module,
    plugins_list_json,
    tensor,
)

APPS = Path(__file__).resolve().parent / "apps"
RNG = np.random.default_rng(20261125)


class MLP(torch.nn.Module):
    """A two-layer perceptron whose forward declares the schema."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: TorchTensor[torch.float32, "batch", 4]) -> TorchTensor[torch.float32, "batch", 3]:
        return self.out(torch.relu(self.hidden(x)))


def expected(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x.copy())).numpy()


def features(rows: int, cols: int = 4) -> np.ndarray:
    return RNG.standard_normal((rows, cols)).astype(np.float32)


# --- three ways to serve a module ------------------------------------------------------


def mlp_app(module: MLP, **settings: Any) -> BlazeApp:
    """The same module as a TorchTensor function, a torch_model function and a module."""
    app = BlazeApp(**settings)

    @app.model("tensors")
    def tensors(x: TorchTensor[torch.float32, "batch", 4]) -> TorchTensor[torch.float32, "batch", 3]:
        assert isinstance(x, torch.Tensor)
        with torch.no_grad():
            return module(x)

    @app.model("decorated")
    @torch_model(device="cpu")
    def decorated(x: TensorInput[np.float32, "batch", 4]) -> TensorOutput[np.float32, "batch", 3]:
        assert isinstance(x, torch.Tensor)
        return module(x)

    app.model("module")(module)
    return app


@pytest.mark.parametrize("model", ["tensors", "decorated", "module"])
async def test_served_module_returns_what_torch_computes(model: str) -> None:
    module = MLP()
    app = mlp_app(module)
    inputs = [features(n) for n in (1, 3, 7)]

    async with serve_app(app) as server:
        result = [array((await server.call(model, x=tensor(x))).result) for x in inputs]
    for x, got in zip(inputs, result, strict=True):
        assert got.dtype == np.float32
        assert got.shape == (len(x), 3)
        np.testing.assert_allclose(got, expected(module, x), rtol=1e-6, atol=1e-6)


def test_schema_comes_from_the_annotations() -> None:
    proto = mlp_app(MLP()).proto()
    for name in ("Tensors", "Decorated", "Module"):
        assert f"message {name}Request {{\n  // float32, shape [batch, 4]\n  TensorProto x = 1;\n}}" in proto
        assert (
            f"message {name}Response {{\n  // float32, shape [batch, 3]\n  TensorProto result = 1;\n}}"
            in proto
        )


@pytest.mark.parametrize("model", ["tensors", "decorated", "module"])
async def test_batched_calls_give_the_same_numbers_as_unbatched_ones(model: str) -> None:
    module = MLP(seed=3)
    inputs = [features(n) for n in (2, 1, 3, 1, 2, 4, 1, 2)]
    want = [expected(module, x) for x in inputs]

    gate, watcher = Gate(), BatchWatcher()
    module.register_forward_pre_hook(lambda *_: gate())
    batched_app = mlp_app(module, plugins=[watcher], max_batch_size=64)
    unbatched_app = mlp_app(module, enable_batching=False)

    async with serve_app(batched_app) as server:
        replies = await call_as_one_batch(
            server,
            model,
            gate,
            watcher,
            [{"x": tensor(x)} for x in inputs],
            rows=lambda r: r["x"]["shape"][0],
        )
        got_batched = [array(r.result) for r in replies]
    async with serve_app(unbatched_app) as server:
        got = list(
            await asyncio.gather(*[server.call(model, x=tensor(x)) for x in inputs]),
        )
    got_unbatched = [array(r.result) for r in got]
    # The first request ran alone, the seven others in one model call.
    assert watcher.requests_per_batch(model) == [1, len(inputs) - 1]
    for b, u, w in zip(got_batched, got_unbatched, want, strict=True):
        np.testing.assert_allclose(b, u, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(b, w, rtol=1e-6, atol=1e-6)


# --- torch_model -------------------------------------------------------------------------


class Pair(NamedTuple):
    total: Any
    scaled: Any


def test_torch_model_moves_inputs_runs_in_inference_mode_and_returns_numpy() -> None:
    seen: list[tuple[Any, ...]] = []

    def original(x: TensorInput[np.float32, "batch", 2], label: str) -> tuple[Any, Any, Any]:
        seen.append((type(x), x.device, torch.is_inference_mode_enabled(), label))
        return x * 2, (x.sum(), Pair(x.sum(dim=1), [x[0], {"first": x[0, 0]}])), "unchanged"

    wrapped = torch_model(original)
    result = wrapped(np.ones((2, 2), np.float32), "text")
    doubled, (total, pair), text = result

    assert seen == [(torch.Tensor, torch.device("cpu"), True, "text")]
    assert isinstance(result, tuple)
    assert isinstance(doubled, np.ndarray)
    np.testing.assert_array_equal(doubled, np.full((2, 2), 2, np.float32))
    # A 0-d tensor is a 0-d array of its dtype, wherever it is in the result.
    assert isinstance(total, np.ndarray)
    assert (total.shape, total.dtype, total.item()) == ((), np.float32, 4.0)
    assert isinstance(pair, Pair)
    assert isinstance(pair.total, np.ndarray)
    assert isinstance(pair.scaled[0], np.ndarray)
    first = pair.scaled[1]["first"]
    assert isinstance(first, np.ndarray)
    assert (first.shape, first.dtype, first.item()) == ((), np.float32, 1.0)
    assert text == "unchanged"
    assert not torch.is_inference_mode_enabled()


async def test_0d_results_keep_their_dtype_over_grpc() -> None:
    """x.sum() of float16 / int32 is a 0-d tensor: it goes out with its own dtype, for a
    bare torch.Tensor result, a declared one, and still fills a float field."""
    app = BlazeApp()

    @app.model("bare")
    @torch_model
    def bare(x: TorchTensor[Any, "n"]) -> torch.Tensor:
        return x.sum()

    @app.model("declared")
    @torch_model
    def declared(
        x: TorchTensor[torch.float16, "n"],
    ) -> tuple[TorchTensor[torch.float16, ()], TensorOutput[np.int32, ()], float]:
        return x.sum(), x.to(torch.int32).sum(), x.to(torch.float32).sum()

    x16 = np.array([1.5, 2.25, -0.5], np.float16)
    x32 = np.array([1, -7, 100], np.int32)

    async with serve_app(app) as server:
        bare16, bare32, both = (
            await server.call("bare", x=tensor(x16)),
            await server.call("bare", x=tensor(x32)),
            await server.call("declared", x=tensor(x16)),
        )
    method = app.schema().methods[1]
    assert [f.wire.describe for f in method.outputs] == ["torch.Tensor[float16[]]", "int32[]", "float"]
    for reply, want in ((bare16.result, x16.sum()), (bare32.result, x32.sum()), (both.result_0, x16.sum())):
        assert (reply.dtype, list(reply.shape)) == (want.dtype.name, [])
        assert array(reply) == want
    assert (both.result_1.dtype, array(both.result_1)) == ("int32", 3)
    assert both.result_2 == 3.25


def test_torch_model_keeps_the_signature_so_the_schema_is_built_from_it() -> None:
    def original(x: TorchTensor[torch.float16, "batch", 5], k: int = 3) -> TensorOutput[np.float16, "batch"]:
        raise NotImplementedError

    for wrapped in (torch_model(original), torch_model(device="cpu")(original)):
        assert inspect.signature(wrapped) == inspect.signature(original)
        assert wrapped.__name__ == "original"
        app = BlazeApp()
        app.model("m")(wrapped)
        method = app.schema().methods[0]
        assert [(f.name, f.wire.describe) for f in method.inputs] == [
            ("x", "torch.Tensor[float16[batch, 5]]"),
            ("k", "int"),
        ]
        assert method.outputs[0].wire.describe == "float16[batch]"


async def test_tuple_results_become_numbered_fields_over_grpc() -> None:
    app = BlazeApp()

    @app.model("stats")
    @torch_model
    def stats(
        x: TensorInput[np.float64, "batch", 3],
    ) -> tuple[TensorOutput[np.float64, "batch"], TensorOutput[np.int64, "batch"]]:
        return x.mean(dim=1), x.argmax(dim=1)

    x = RNG.standard_normal((5, 3))

    async with serve_app(app) as server:
        reply = await server.call("stats", x=tensor(x))
    np.testing.assert_allclose(array(reply.result_0), x.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(array(reply.result_1), x.argmax(axis=1))


async def test_streaming_generator_under_torch_model() -> None:
    app = BlazeApp()

    @app.model("cumsum", streaming=True)
    @torch_model
    def cumsum(x: TensorInput[np.float32, 4]) -> Iterator[TensorOutput[np.float32, 4]]:
        total = torch.zeros(4)
        for _ in range(3):
            assert torch.is_inference_mode_enabled()
            total = total + x
            yield total

    async with serve_app(app) as server:
        replies = await server.stream("cumsum", x=tensor(np.arange(4, dtype=np.float32)))
    assert [array(r.result).tolist() for r in replies] == [[0, k, 2 * k, 3 * k] for k in (1, 2, 3)]


async def test_tensors_returned_without_torch_model_are_converted() -> None:
    app = BlazeApp()

    @app.model("half")
    def half(x: TorchTensor[torch.float32, "batch", 2]) -> TensorOutput[np.float32, "batch", 2]:
        # bfloat16 has no numpy type; with grad, the converter detaches it too.
        return (x.to(torch.bfloat16) * 0.5).requires_grad_()

    x = np.array([[1.0, -3.0], [0.25, 8.0]], np.float32)

    async with serve_app(app) as server:
        got = await server.call("half", x=tensor(x))
    np.testing.assert_array_equal(array(got.result), x * 0.5)


def test_request_arrays_are_copied_only_when_read_only() -> None:
    read_only = np.frombuffer(np.arange(6, dtype=np.float32).tobytes(), np.float32)
    writable = np.arange(6, dtype=np.float32)
    assert not read_only.flags.writeable

    for convert in (request_tensor, lambda a: _to_device(a, torch.device("cpu"))):
        copied, shared = convert(read_only), convert(writable)
        assert copied.data_ptr() != read_only.ctypes.data
        assert shared.data_ptr() == writable.ctypes.data
        copied.add_(1)  # a model writing to its input never touches the request's bytes
        np.testing.assert_array_equal(read_only, np.arange(6, dtype=np.float32))


async def test_a_model_may_write_to_its_input_tensor() -> None:
    app = BlazeApp()

    @app.model("inplace")
    def inplace(x: TorchTensor[torch.int32, "batch"]) -> TorchTensor[torch.int32, "batch"]:
        return x.mul_(3)

    async with serve_app(app) as server:
        got = await server.call("inplace", x=tensor(np.array([1, 2, 3], np.int32)))
    assert array(got.result).tolist() == [3, 6, 9]


# --- start-up errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:99", "there is no GPU 99" if torch.cuda.is_available() else "CUDA is not available"),
        ("bogus", "not a torch device"),
    ],
)
def test_an_unavailable_device_fails_when_the_model_is_declared(device: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        torch_model(device=device)
    assert "Devices available here: cpu" in str(info.value) or device == "bogus"


def test_blaze_serve_with_an_unavailable_device_exits_at_start_up() -> None:
    with (
        pytest.raises(RuntimeError) as info,
        serve_process(f"{APPS / 'classifier_app.py'}:app", env={"TORCH_DEVICE": "cuda:99"}),
    ):
        pass
    output = str(info.value)
    assert "torch_model(device='cuda:99')" in output
    assert "Devices available here: cpu" in output


def test_async_functions_are_refused() -> None:
    async def model(x: TorchTensor[torch.float32, 2]) -> TorchTensor[torch.float32, 2]:
        return x

    with pytest.raises(ConfigurationError, match="async"):
        torch_model(model)


def test_a_module_without_forward_annotations_is_refused_at_registration() -> None:
    app = BlazeApp()
    with pytest.raises(
        ModelRegistrationError, match=r"model 'seq': Sequential.forward has no type annotation"
    ):
        app.model("seq")(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_a_module_under_torch_model_with_a_device_is_refused_with_the_models_name() -> None:
    app = BlazeApp()
    wrapped = torch_model(device="cpu")(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(
        ModelRegistrationError, match=r"^model 'seq': Sequential.forward has no type annotation"
    ):
        app.model("seq")(wrapped)


async def test_a_module_under_torch_model_with_a_device_is_served_and_callable() -> None:
    module = MLP(seed=5)
    module.train()
    app = BlazeApp()
    on_cpu = torch_model(device="cpu")(module)
    assert app.model("placed")(on_cpu) is on_cpu
    assert not module.training
    x = features(4)

    async with serve_app(app) as server:
        got = await server.call("placed", x=tensor(x))
    np.testing.assert_allclose(array(got.result), expected(module, x), rtol=1e-6, atol=1e-6)
    direct = on_cpu(x)  # called directly: numpy in, numpy out, as registered
    assert isinstance(direct, np.ndarray)
    np.testing.assert_allclose(direct, expected(module, x), rtol=1e-6, atol=1e-6)


def test_registering_a_module_puts_it_in_eval_mode() -> None:
    module = MLP()
    module.train()
    BlazeApp().model("mlp")(module)
    assert not module.training


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["tensors", "decorated", "module"])
@pytest.mark.parametrize(
    ("x", "message"),
    [
        (tensor(np.zeros((2, 4), np.float64)), "expected dtype float32, got float64"),
        (tensor(np.zeros((2, 5), np.float32)), "expected shape float32[batch, 4], got shape [2, 5]"),
        (tensor(np.zeros(4, np.float32)), "expected a tensor of rank 2"),
        ({"shape": [2, 4], "dtype": "float32", "data": b"\0" * 31}, "needs 32 bytes of data, got 31"),
    ],
)
async def test_bad_tensors_get_invalid_argument(model: str, x: dict[str, Any], message: str) -> None:
    app = mlp_app(MLP())

    async with serve_app(app) as server:
        with pytest.raises(GRPCError) as info:
            await server.call(model, x=x)
        error = info.value
    assert error.status is Status.INVALID_ARGUMENT
    assert message in (error.message or "")
    assert "field 'x'" in (error.message or "")


# --- the real command line ---------------------------------------------------------------


async def test_blaze_serve_runs_the_seed_readme_example() -> None:
    module = load_app_module(APPS / "classifier_app.py")
    x = features(5, cols=6)
    with torch.no_grad():
        want_logits = module.classifier(torch.from_numpy(x)).numpy()
    want_probs = torch.softmax(torch.from_numpy(want_logits), dim=-1).numpy()

    schema = module.app.schema()

    with serve_process(f"{APPS / 'classifier_app.py'}:app") as proc:
        got = {
            model: array((await call_process(proc.host, proc.port, schema, model, features=tensor(x))).result)
            for model in ("logits", "classify")
        }
    np.testing.assert_allclose(got["logits"], want_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["classify"], want_probs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["classify"].sum(axis=1), 1.0, rtol=1e-6)


def test_blaze_plugins_list_shows_the_plugin_and_its_version() -> None:
    records = {r["name"]: r for r in plugins_list_json()}
    torch_record = records["torch"]
    assert torch_record["distribution"] == "blazerpc-torch"
    assert torch_record["version"] == metadata.version("blazerpc-torch") == blazerpc_torch.__version__
    assert torch_record["loaded"] is True
    assert torch_record["hooks"] == ["blazerpc_adapt_model", "blazerpc_array_converters", "blazerpc_map_type"]


def test_the_contrib_import_path_is_the_plugin() -> None:
    from blazerpc.contrib.pytorch import TorchTensor as ContribTensor
    from blazerpc.contrib.pytorch import torch_model as contrib_torch_model

    assert contrib_torch_model is torch_model
    assert ContribTensor is TorchTensor
