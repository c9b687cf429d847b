"""Model adapters from plugins turn a framework object into a model."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from blazerpc import BlazeApp, ModelRegistrationError, hookimpl
from blazerpc.testing import serve_app

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


class Linear:
    """A 'framework model': weights and no annotations, not even callable."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights


class LinearAdapter:
    def __init__(self) -> None:
        self.adapted: list[str] = []

    @hookimpl
    def blazerpc_adapt_model(self, obj: Any, name: str) -> Any:
        if not isinstance(obj, Linear):
            return None
        self.adapted.append(name)
        weights = list(obj.weights)
        signature = inspect.Signature(
            [
                inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[float]),
                inspect.Parameter("bias", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=float),
            ],
            return_annotation=float,
        )

        def predict(*args: Any, **kwargs: Any) -> float:
            bound = signature.bind(*args, **kwargs)
            x, bias = bound.arguments["x"], bound.arguments["bias"]
            return sum(w * v for w, v in zip(weights, x, strict=True)) + bias

        predict.__signature__ = signature  # type: ignore[attr-defined]
        return predict


async def test_plugin_adapts_a_framework_object_into_a_model() -> None:
    adapter = LinearAdapter()
    app = BlazeApp(plugins=[adapter])
    obj = Linear([1.0, 2.0, 3.0])
    assert app.model("linear")(obj) is obj
    assert adapter.adapted == ["linear"]

    @app.model("plain")  # an ordinary function is left to core
    def plain(x: int) -> int:
        return x + 1

    async with serve_app(app) as server:
        request = server.schema.pool.FindMessageTypeByName("blazerpc.LinearRequest")
        types = [request.fields_by_name["x"].type, request.fields_by_name["bias"].type]
        linear = (await server.call("linear", x=[1.0, 1.0, 2.0], bias=0.5)).result
        linear, plain_result, types = linear, (await server.call("plain", x=41)).result, types
    assert linear == 9.5
    assert plain_result == 42
    assert types == [FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE]
    assert adapter.adapted == ["linear"]


def test_without_an_adapter_a_framework_object_is_rejected() -> None:
    with pytest.raises(ModelRegistrationError, match="linear"):
        BlazeApp().model("linear")(Linear([1.0]))
