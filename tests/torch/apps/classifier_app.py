"""A small seeded classifier served with the seed README's import path, for `blaze serve`.

TORCH_DEVICE picks the device (the tests use one that does not exist to check start-up).
"""

import os

import numpy as np
import torch

from blazerpc import BlazeApp, TensorInput, TensorOutput
from blazerpc.contrib.pytorch import TorchTensor, torch_model


def make_classifier() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


classifier = make_classifier()
app = BlazeApp()


@app.model("classify")
@torch_model(device=os.environ.get("TORCH_DEVICE", "cpu"))
def classify(features: TensorInput[np.float32, "batch", 6]) -> TensorOutput[np.float32, "batch", 3]:
    return torch.softmax(classifier(features), dim=-1)


@app.model("logits")
def logits(features: TorchTensor[torch.float32, "batch", 6]) -> TorchTensor[torch.float32, "batch", 3]:
    with torch.inference_mode():
        return classifier(features)
