"""Small real ONNX graphs built with onnx.helper, and the same computations in numpy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # read by every onnxruntime the plugin allows (>= 1.17)


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@dataclass(frozen=True)
class Classifier:
    """x[N, 4] -> relu(x W1 + b1) W2 + b2 = logits[N, 3], probabilities = softmax(logits)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def make(cls, seed: int = 0) -> Classifier:
        rng = np.random.default_rng(seed)
        return cls(*(rng.standard_normal(s).astype(np.float32) for s in [(4, 8), (8,), (8, 3), (3,)]))

    def graph(self, input_name: str = "input.1") -> onnx.GraphProto:
        nodes = [
            helper.make_node("MatMul", [input_name, "W1"], ["h0"]),
            helper.make_node("Add", ["h0", "B1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
            helper.make_node("Add", ["h3", "B2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ]
        weights = {"W1": self.w1, "B1": self.b1, "W2": self.w2, "B2": self.b2}
        return helper.make_graph(
            nodes,
            "classifier",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 4])],
            [
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
            ],
            [numpy_helper.from_array(v, k) for k, v in weights.items()],
        )

    def save(self, path: Path, input_name: str = "input.1") -> Path:
        return save(self.graph(input_name), path)

    def numpy(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = np.maximum(x @ self.w1 + self.b1, 0) @ self.w2 + self.b2
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return logits, e / e.sum(axis=1, keepdims=True)


def masked_mean_graph(path: Path) -> Path:
    """Token features and a mask that share dims: mean of the unmasked rows, per sequence.

    features float32[batch, seq, 2], mask int64[batch, seq] -> mean float32[batch, 2]
    """
    nodes = [
        helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["features", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m", "axis1"], ["count"], keepdims=1),
        helper.make_node("Div", ["total", "count"], ["mean"]),
    ]
    graph = helper.make_graph(
        nodes,
        "masked_mean",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch_size", "seq", 2]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch_size", "seq"]),
        ],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch_size", 2])],
        [
            numpy_helper.from_array(np.array([2], np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        ],
    )
    return save(graph, path)


def strings_graph(path: Path) -> Path:
    """text string[N] -> echo string[N] (Identity); a fixed-shape scale double[3] -> doubled."""
    nodes = [
        helper.make_node("Identity", ["text"], ["echo"]),
        helper.make_node("Add", ["scale", "scale"], ["doubled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "strings",
        [
            helper.make_tensor_value_info("text", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("scale", TensorProto.DOUBLE, [3]),
        ],
        [
            helper.make_tensor_value_info("echo", TensorProto.STRING, [None]),
            helper.make_tensor_value_info("doubled", TensorProto.DOUBLE, [3]),
        ],
    )
    return save(graph, path)


def sequence_graph(path: Path) -> Path:
    """An output that is a sequence of tensors, which has no wire form."""
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["pair"])]
    graph = helper.make_graph(
        nodes,
        "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_sequence_value_info("pair", TensorProto.FLOAT, ["N"])],
    )
    return save(graph, path)


def time_major_graph(path: Path) -> Path:
    """A time-major input: x float32[seq, batch, 4] -> total = sum over seq, float32[batch, 4]."""
    nodes = [helper.make_node("ReduceSum", ["x", "axis0"], ["total"], keepdims=0)]
    graph = helper.make_graph(
        nodes,
        "time_major",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "batch", 4])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array([0], np.int64), "axis0")],
    )
    return save(graph, path)


def square_graph(path: Path) -> Path:
    """A square matrix: m float32[N, N] -> m @ m, float32[N, N]."""
    nodes = [helper.make_node("MatMul", ["m", "m"], ["product"])]
    graph = helper.make_graph(
        nodes,
        "square",
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", "N"])],
        [helper.make_tensor_value_info("product", TensorProto.FLOAT, ["N", "N"])],
    )
    return save(graph, path)


def scale_graph(path: Path) -> Path:
    """A rank-0 input: x float32[N, 3], s float32[] (a scalar) -> x * s, float32[N, 3]."""
    nodes = [helper.make_node("Mul", ["x", "s"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "scale",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    return save(graph, path)
