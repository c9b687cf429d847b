"""Registering models: the decorator, model names, versions and RPC names, and types that
cannot be mapped (with errors that name the model, the parameter and the type)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from registration_support import OPTIONAL, REPEATED, fields, foreign_type, model_with, rpcs

from blazerpc import BlazeApp, ConfigurationError, ModelRegistrationError, TypeMappingError

# --- helpers -------------------------------------------------------------------------------


class Unmappable:
    """A type nothing maps."""


# --- the decorator -------------------------------------------------------------------------


def test_decorator_returns_the_function_unchanged() -> None:
    app = BlazeApp()

    def predict(text: list[str]) -> list[float]:
        return [1.0] * len(text)

    async def apredict(text: str) -> str:
        return text

    def stream(n: int) -> Iterator[int]:
        yield from range(n)

    assert app.model("sync")(predict) is predict
    assert app.model("async")(apredict) is apredict
    assert app.model("stream", streaming=True)(stream) is stream
    assert predict(["a", "b"]) == [1.0, 1.0]
    assert [spec.func for spec in app.models] == [predict, apredict, stream]
    assert [spec.kind for spec in app.models] == ["function", "coroutine", "generator"]


# --- names and versions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("sentiment", "Sentiment"),
        ("text-embed", "TextEmbed"),
        ("text_embed", "TextEmbed"),
        ("image-classifier_v2", "ImageClassifierV2"),
        ("gpt2", "Gpt2"),
    ],
)
def test_rpc_and_message_names(name: str, base: str) -> None:
    app = BlazeApp()

    @app.model(name)
    def predict(text: str) -> float:
        return 0.0

    (method,) = app.schema().methods
    assert method.rpc == f"Predict{base}"
    assert method.request == f"{base}Request"
    assert method.response == f"{base}Response"
    assert method.path == f"/blazerpc.InferenceService/Predict{base}"
    assert (method.model, method.version) == (name, "1")
    assert rpcs(app) == [(f"Predict{base}", f".blazerpc.{base}Request", f".blazerpc.{base}Response")]


def test_text_embed_naming_in_the_proto() -> None:
    app = BlazeApp()

    @app.model("text-embed")
    def embed(text: str) -> list[float]:
        return []

    proto = app.proto()
    assert "rpc PredictTextEmbed(TextEmbedRequest) returns (TextEmbedResponse);" in proto
    assert "message TextEmbedRequest {" in proto
    assert "message TextEmbedResponse {" in proto


def test_explicit_versions_are_served_side_by_side() -> None:
    app = BlazeApp()

    @app.model("sentiment")
    def v1(text: str) -> float:
        return 0.0

    @app.model("sentiment", version="2")
    def v2(text: str) -> list[float]:
        return []

    @app.model("sentiment", version="2.1")
    def v2_1(text: list[str]) -> str:
        return ""

    methods = app.schema().methods
    assert [(m.model, m.version, m.rpc, m.request, m.response) for m in methods] == [
        ("sentiment", "1", "PredictSentiment", "SentimentRequest", "SentimentResponse"),
        ("sentiment", "2", "PredictSentimentV2", "SentimentV2Request", "SentimentV2Response"),
        ("sentiment", "2.1", "PredictSentimentV2_1", "SentimentV2_1Request", "SentimentV2_1Response"),
    ]
    # Each version keeps its own messages.
    assert fields(app, "SentimentResponse") == [("result", 1, F.TYPE_DOUBLE, OPTIONAL, False)]
    assert fields(app, "SentimentV2Response") == [("result", 1, F.TYPE_DOUBLE, REPEATED, False)]
    assert fields(app, "SentimentV2_1Request") == [("text", 1, F.TYPE_STRING, REPEATED, False)]


@pytest.mark.parametrize(
    ("first", "second"),
    [(None, None), ("2", "2"), (None, "1")],
    ids=["default-twice", "same-explicit", "default-is-1"],
)
def test_same_name_and_version_twice(first: str | None, second: str | None) -> None:
    app = BlazeApp()

    @app.model("sentiment", version=first)
    def original(text: str) -> float:
        return 0.0

    def again(text: str) -> float:
        return 1.0

    with pytest.raises(ModelRegistrationError) as info:
        app.model("sentiment", version=second)(again)
    message = str(info.value)
    assert "'sentiment'" in message
    assert f"version '{second or '1'}'" in message
    assert "already registered" in message
    assert original.__qualname__ in message
    assert [spec.func for spec in app.models] == [original]


@pytest.mark.parametrize(
    ("first", "second", "rpc"),
    [
        (("my-model", None), ("my_model", None), "PredictMyModel"),
        (("my-model", None), ("myModel", None), "PredictMyModel"),
        (("MyModel", None), ("myModel", None), "PredictMyModel"),
        (("sentiment", "2"), ("sentiment-v2", None), "PredictSentimentV2"),
        (("m", "2.1"), ("m", "2_1"), "PredictMV2_1"),
    ],
)
def test_names_that_would_be_the_same_rpc(
    first: tuple[str, str | None], second: tuple[str, str | None], rpc: str
) -> None:
    app = BlazeApp()
    app.model(first[0], version=first[1])(model_with(x=int, **{"return": int}))
    with pytest.raises(ModelRegistrationError) as info:
        app.model(second[0], version=second[1])(model_with(x=int, **{"return": int}))
    message = str(info.value)
    assert repr(first[0]) in message
    assert repr(second[0]) in message
    assert rpc in message
    assert len(app.models) == 1


@pytest.mark.parametrize(
    "name",
    ["", "1model", "my model", "model!", "-model", "_model", "mod.el", "modèle", "a/b", "model\n", 3, None],
)
def test_invalid_model_names(name: Any) -> None:
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model(name)(model_with(x=int, **{"return": int}))
    assert f"model name {name!r} is not valid" in str(info.value)


@pytest.mark.parametrize("version", ["", "v 2", "-1", ".2", "2/3", "2-beta", "2\n", 2])
def test_invalid_versions(version: Any) -> None:
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("sentiment", version=version)(model_with(x=int, **{"return": int}))
    assert f"model 'sentiment': version {version!r} is not valid" in str(info.value)


@pytest.mark.parametrize(
    ("version", "rpc"), [("2", "PredictMV2"), ("v3", "PredictMVv3"), ("2024_01", "PredictMV2024_01")]
)
def test_valid_versions(version: str, rpc: str) -> None:
    app = BlazeApp()
    app.model("m", version=version)(model_with(x=int, **{"return": int}))
    (method,) = app.schema().methods
    assert (method.version, method.rpc) == (version, rpc)


# --- types that cannot be mapped -----------------------------------------------------------


def test_list_of_lists() -> None:
    def predict(matrix: list[list[int]]) -> int:
        return 0

    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("nested")(predict)
    message = str(info.value)
    assert "'nested'" in message
    assert "'matrix'" in message
    assert "list of lists" in message


@pytest.mark.parametrize("annotation", [list[int] | None, Optional[list[int]]])  # noqa: UP045
def test_optional_list(annotation: Any) -> None:
    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("maybe")(model_with(x=annotation, **{"return": int}))
    message = str(info.value)
    assert "'maybe'" in message
    assert "'x'" in message
    assert "list[int] | None" in message


@pytest.mark.parametrize(
    ("annotation", "described"),
    [
        (Unmappable, f"{__name__}.Unmappable"),
        (list[Unmappable], f"{__name__}.Unmappable"),
        (Unmappable | None, f"{__name__}.Unmappable"),
        (dict[str, int], "dict[str, int]"),
        (int | str, "int | str"),
        (set[int], "set[int]"),
    ],
)
def test_unmappable_parameter(annotation: Any, described: str) -> None:
    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("lookup")(model_with(x=annotation, **{"return": int}))
    message = str(info.value)
    assert f"model 'lookup': parameter 'x' has type {described}" in message
    assert "Supported: str, int, float, bool, bytes, list[T], T | None" in message
    assert "pip install" not in message


def test_unmappable_result_and_tuple_item() -> None:
    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("lookup")(model_with(x=int, **{"return": Unmappable}))
    assert f"model 'lookup': result field 'result' has type {__name__}.Unmappable" in str(info.value)

    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("pair")(model_with(x=int, **{"return": tuple[int, Unmappable]}))
    assert f"model 'pair': result field 'result_1' has type {__name__}.Unmappable" in str(info.value)


@pytest.mark.parametrize(
    ("module", "name", "distribution"),
    [
        ("torch", "Tensor", "blazerpc-torch"),
        ("torch.nn.parameter", "Parameter", "blazerpc-torch"),
        ("tensorflow", "Tensor", "blazerpc-tf"),
        ("keras", "KerasTensor", "blazerpc-tf"),
        ("onnxruntime", "OrtValue", "blazerpc-onnx"),
    ],
)
@pytest.mark.parametrize("wrap", ["bare", "list", "optional"])
def test_framework_type_names_the_plugin_to_install(
    module: str, name: str, distribution: str, wrap: str
) -> None:
    cls = foreign_type(module, name)
    annotation = {"bare": cls, "list": list[cls], "optional": cls | None}[wrap]  # type: ignore[valid-type]
    with pytest.raises(TypeMappingError) as info:
        BlazeApp().model("embed")(model_with(x=annotation, **{"return": float}))
    message = str(info.value)
    assert f"model 'embed': parameter 'x' has type {module}.{name}" in message
    assert f"pip install ./plugins/{distribution} (from the root of the BlazeRPC repository" in message


def test_failed_registration_leaves_the_app_unchanged() -> None:
    app = BlazeApp()
    with pytest.raises(TypeMappingError):
        app.model("lookup")(model_with(x=Unmappable, **{"return": int}))
    assert app.models == ()
    with pytest.raises(ConfigurationError, match="no models"):
        app.schema()

    @app.model("lookup")
    def lookup(x: int) -> int:
        return x

    assert [m.rpc for m in app.schema().methods] == ["PredictLookup"]
