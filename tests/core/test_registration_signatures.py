"""Registering models: generators and streaming, and what a signature must declare."""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from registration_support import OPTIONAL, REPEATED, fields

from blazerpc import BlazeApp, ModelRegistrationError

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


# Defined after the model that refers to them: forward references, resolved at registration.
Embedding = list[float]
Label = str
