"""Registering models: names, versions, signatures, and errors that name the model, the
parameter and the type. Nothing is served: the schema is built in this process.

Every annotation in this module is a string (`from __future__ import annotations`), so
each test also checks that string annotations work.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple, Optional, TypedDict

import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from blazerpc import BlazeApp, ConfigurationError, ModelRegistrationError, TensorOutput, TypeMappingError

# --- helpers -------------------------------------------------------------------------------


class Unmappable:
    """A type nothing maps."""


def foreign_type(module: str, name: str) -> type:
    """A class that looks like it comes from `module` (torch, tensorflow...)."""
    return type(name, (), {"__module__": module})


def model_with(**annotations: Any) -> Any:
    """A model function `(x) -> ...` with the given (non-string) annotations."""

    def model(x: Any) -> Any:
        return x

    model.__annotations__ = annotations
    return model


def fields(app: BlazeApp, message: str) -> list[tuple[str, int, int, int, bool]]:
    """(name, number, type, label, proto3_optional) of each field of `message`."""
    for proto in app.schema().file.message_type:
        if proto.name == message:
            return [(f.name, f.number, f.type, f.label, f.proto3_optional) for f in proto.field]
    raise KeyError(message)


def rpcs(app: BlazeApp) -> list[tuple[str, str, str]]:
    service = app.schema().file.service[0]
    return [(m.name, m.input_type, m.output_type) for m in service.method]


OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED


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


# --- generators and streaming --------------------------------------------------------------


def sync_tokens(prompt: str) -> Iterator[str]:
    yield from prompt.split()


async def async_tokens(prompt: str) -> AsyncIterator[str]:
    for token in prompt.split():
        yield token


def plain(prompt: str) -> str:
    return prompt


async def coroutine(prompt: str) -> str:
    return prompt


@pytest.mark.parametrize("func", [sync_tokens, async_tokens])
def test_generator_without_streaming(func: Any) -> None:
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("generate")(func)
    message = str(info.value)
    assert "'generate'" in message
    assert func.__qualname__ in message
    assert "streaming=True" in message


@pytest.mark.parametrize("func", [plain, coroutine])
def test_streaming_on_a_non_generator(func: Any) -> None:
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("generate", streaming=True)(func)
    message = str(info.value)
    assert "'generate'" in message
    assert func.__qualname__ in message
    assert "not a generator" in message


def test_streamed_item_type_is_the_response() -> None:
    app = BlazeApp()

    def item_annotation(prompt: str) -> str:  # the item type itself
        yield prompt

    app.model("sync", streaming=True)(sync_tokens)
    app.model("async", streaming=True)(async_tokens)
    app.model("item", streaming=True)(item_annotation)
    for base in ("Sync", "Async", "Item"):
        assert fields(app, f"{base}Response") == [("result", 1, F.TYPE_STRING, OPTIONAL, False)]
    assert [m.streaming for m in app.schema().methods] == [True, True, True]


@pytest.mark.parametrize(
    "annotation",
    [typing.Iterator, typing.AsyncIterator, collections.abc.Iterator, collections.abc.AsyncIterator],
    ids=["typing.Iterator", "typing.AsyncIterator", "abc.Iterator", "abc.AsyncIterator"],
)
def test_streaming_iterator_needs_its_item_type(annotation: Any) -> None:
    def bare(prompt: str) -> Any:
        yield prompt

    bare.__annotations__ = {"prompt": str, "return": annotation}
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("bare", streaming=True)(bare)
    assert str(info.value) == "model 'bare': say what each streamed message holds, e.g. Iterator[str]"


# --- signatures ----------------------------------------------------------------------------


def test_parameter_without_annotation() -> None:
    def predict(text: str, top_k) -> list[str]:  # type: ignore[no-untyped-def]
        return []

    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("search")(predict)
    assert str(info.value) == "model 'search': parameter 'top_k' has no type annotation"


def test_missing_return_annotation() -> None:
    def predict(text: str):  # type: ignore[no-untyped-def]
        return 1.0

    def returns_none(text: str) -> None:
        pass

    for func in (predict, returns_none):
        with pytest.raises(ModelRegistrationError) as info:
            BlazeApp().model("sentiment")(func)
        message = str(info.value)
        assert "'sentiment'" in message
        assert func.__qualname__ in message
        assert "needs a return annotation" in message


def test_var_positional_and_keyword_parameters() -> None:
    def star_args(*inputs: str) -> str:
        return ""

    def star_kwargs(text: str, **options: str) -> str:
        return ""

    for func, name in ((star_args, "inputs"), (star_kwargs, "options")):
        with pytest.raises(ModelRegistrationError) as info:
            BlazeApp().model("varargs")(func)
        message = str(info.value)
        assert "'varargs'" in message
        assert f"*{name}" in message


def test_unresolvable_string_annotation() -> None:
    def predict(text: NotDefinedAnywhere) -> str:  # type: ignore[name-defined]
        return ""

    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("broken")(predict)
    message = str(info.value)
    assert "'broken'" in message
    assert "NotDefinedAnywhere" in message


def test_string_annotations_and_forward_references() -> None:
    app = BlazeApp()

    def predict(vector: Embedding, scale: float = 2.0) -> Label:
        return ""

    assert predict.__annotations__ == {"vector": "Embedding", "scale": "float", "return": "Label"}
    app.model("later")(predict)
    assert fields(app, "LaterRequest") == [
        ("vector", 1, F.TYPE_DOUBLE, REPEATED, False),
        ("scale", 2, F.TYPE_DOUBLE, OPTIONAL, True),
    ]
    assert fields(app, "LaterResponse") == [("result", 1, F.TYPE_STRING, OPTIONAL, False)]


def test_fields_in_declaration_order_with_optionals() -> None:
    app = BlazeApp()

    @app.model("search")
    def search(
        query: str,
        tags: list[str],
        limit: int = 10,
        cursor: Optional[bytes] = None,  # noqa: UP045 - typing.Optional works too
        lang: str | None = None,
    ) -> list[str]:
        return []

    assert fields(app, "SearchRequest") == [
        ("query", 1, F.TYPE_STRING, OPTIONAL, True),  # required, but with presence
        ("tags", 2, F.TYPE_STRING, REPEATED, False),
        ("limit", 3, F.TYPE_INT64, OPTIONAL, True),
        ("cursor", 4, F.TYPE_BYTES, OPTIONAL, True),
        ("lang", 5, F.TYPE_STRING, OPTIONAL, True),
    ]


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


# --- results -------------------------------------------------------------------------------


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


# Defined after the model that refers to them: forward references, resolved at registration.
Embedding = list[float]
Label = str


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
