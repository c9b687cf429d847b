"""Sentence embeddings with all-MiniLM-L6-v2, served through PyTorch and through ONNX Runtime.

    blaze serve examples/embeddings/app.py:app

Models:
    embed       text -> float32[batch, 384], the PyTorch encoder (blazerpc-torch)
    embed-onnx  text -> float32[batch, 384], the same encoder exported to ONNX (blazerpc-onnx)
    embed-ids   the ONNX graph itself, schema from the graph: input_ids and
                attention_mask int64[batch, sequence] -> sentence_embedding float32[batch, 384]

Environment:
    EMBEDDINGS_DEVICE    torch device for `embed` (default cpu); one that does not exist
                         stops the server at start-up
    EMBEDDINGS_BATCHING  on (default) or off
    EMBEDDINGS_ONNX      where the exported graph is kept (default: minilm.onnx next to
                         this file); exported at the first start if missing, or "off" to
                         serve `embed` alone
    EMBEDDINGS_THREADS   threads each framework uses for one call (default: its own choice)
"""

from __future__ import annotations

import os
from pathlib import Path

import minilm
import numpy as np
import torch

from blazerpc import BlazeApp, TensorOutput
from blazerpc.contrib.pytorch import torch_model

DEVICE = os.environ.get("EMBEDDINGS_DEVICE", "cpu")
BATCHING = os.environ.get("EMBEDDINGS_BATCHING", "on") != "off"
ONNX = os.environ.get("EMBEDDINGS_ONNX", str(Path(__file__).resolve().parent / "minilm.onnx"))
THREADS = int(os.environ.get("EMBEDDINGS_THREADS", "0"))  # 0: each framework's default

app = BlazeApp(enable_batching=BATCHING, max_batch_size=32, batch_timeout_ms=5.0)

# --- PyTorch -------------------------------------------------------------------------------

on_device = torch_model(device=DEVICE)  # raises here, at start-up, if DEVICE does not exist
if THREADS:
    torch.set_num_threads(THREADS)
encoder = minilm.load_encoder(DEVICE)
torch_tokenizer = minilm.load_tokenizer()


@app.model("embed")
@on_device
def embed(text: list[str]) -> TensorOutput[np.float32, "batch", 384]:
    """One L2-normalized embedding per text (batched: concurrent requests share a call)."""
    if not text:
        return minilm.empty()
    input_ids, attention_mask = minilm.tokenize(torch_tokenizer, text, "pt")
    return encoder(input_ids.to(DEVICE), attention_mask.to(DEVICE))


# --- ONNX Runtime --------------------------------------------------------------------------

if ONNX != "off":
    import onnxruntime

    from blazerpc.contrib.onnx import ONNXModel

    if not Path(ONNX).is_file():
        minilm.export_onnx(ONNX)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    # Without providers: the best this onnxruntime has (CUDA first, if it has it; CPU here).
    onnx_model = ONNXModel(ONNX, session_options=options)
    onnx_tokenizer = minilm.load_tokenizer()

    @app.model("embed-onnx")
    def embed_onnx(text: list[str]) -> TensorOutput[np.float32, "batch", 384]:
        """The same embeddings, computed by the exported graph."""
        if not text:
            return minilm.empty()
        input_ids, attention_mask = minilm.tokenize(onnx_tokenizer, text, "np")
        return onnx_model.predict(input_ids=input_ids, attention_mask=attention_mask)[0]

    # The graph as it is: no annotations, the schema comes from its inputs and outputs.
    app.model("embed-ids")(onnx_model)
