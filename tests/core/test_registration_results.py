"""Registering models: the fields of results (tuples, TypedDict, NamedTuple, dataclass,
tensors) and list defaults."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, TypedDict

import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from registration_support import OPTIONAL, REPEATED, fields, model_with

from blazerpc import BlazeApp, ModelRegistrationError, TensorOutput


def test_tuple_result_fields() -> None:
    app = BlazeApp()

    @app.model("classify")
    def classify(text: str) -> tuple[str, float, list[int]]:
        return "", 0.0, []

    assert fields(app, "ClassifyResponse") == [
        ("result_0", 1, F.TYPE_STRING, OPTIONAL, False),
        ("result_1", 2, F.TYPE_DOUBLE, OPTIONAL, False),
        ("result_2", 3, F.TYPE_INT64, REPEATED, False),
    ]


def test_tuple_result_of_any_length_is_rejected() -> None:
    def predict(text: str) -> tuple[int, ...]:
        return ()

    with pytest.raises(ModelRegistrationError, match=r"'ranks'.*fixed number"):
        BlazeApp().model("ranks")(predict)


class LabelDict(TypedDict):
    label: str
    score: float


class LabelTuple(NamedTuple):
    label: str
    score: float


@dataclasses.dataclass
class LabelData:
    label: str
    score: float


@pytest.mark.parametrize("result", [LabelDict, LabelTuple, LabelData])
def test_structured_results_become_named_fields(result: type) -> None:
    app = BlazeApp()
    app.model("label")(model_with(x=str, **{"return": result}))
    assert fields(app, "LabelResponse") == [
        ("label", 1, F.TYPE_STRING, OPTIONAL, False),
        ("score", 2, F.TYPE_DOUBLE, OPTIONAL, False),
    ]


def test_tensor_result() -> None:
    app = BlazeApp()

    def predict(x: int) -> TensorOutput[np.float32, "batch", 10]:
        return np.zeros((1, 10), np.float32)

    app.model("logits")(predict)
    ((name, number, type_, label, _),) = fields(app, "LogitsResponse")
    assert (name, number, type_, label) == ("result", 1, F.TYPE_MESSAGE, OPTIONAL)
    assert app.schema().methods[0].outputs[0].wire.describe == "float32[batch, 10]"


@pytest.mark.parametrize("default", [[1, 2], None, (3,)])
def test_a_list_parameter_cannot_default_to_anything_but_empty(default: object) -> None:
    app = BlazeApp()

    def model(x: list[int] = default) -> list[int]:  # type: ignore[assignment]
        return x

    with pytest.raises(ModelRegistrationError, match="only an empty default can be honoured"):
        app.model("m")(model)


def test_an_empty_list_default_is_accepted() -> None:
    app = BlazeApp()

    def model(x: list[int] = []) -> list[int]:  # noqa: B006
        return x

    app.model("m")(model)
    assert app.schema().methods[0].inputs[0].wire.repeated
