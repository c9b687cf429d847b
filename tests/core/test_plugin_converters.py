"""Array converters from plugins serialize a framework's tensors that a model returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, TensorInput, TensorOutput, hookimpl
from blazerpc.testing import serve_app
from blazerpc.wire import ArrayConverter

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


class FakeTensor:
    """A framework's array type: no __array__, numpy cannot convert it on its own."""

    def __init__(self, values: list[float]) -> None:
        self.values = values


class SubFakeTensor(FakeTensor):
    pass


class OtherFakeTensor(FakeTensor):
    pass


class FakeTensorPlugin:
    def __init__(self) -> None:
        self.converted: list[str] = []

    def _convert(self, value: FakeTensor) -> np.ndarray:
        self.converted.append(f"generic:{type(value).__name__}")
        return np.asarray(value.values, dtype=np.float64)

    def _convert_other(self, value: FakeTensor) -> np.ndarray:
        self.converted.append(f"exact:{type(value).__name__}")
        return np.asarray(value.values, dtype=np.float64) * 10

    @hookimpl
    def blazerpc_array_converters(self) -> list[ArrayConverter]:
        # The base class first: an exact type must still win over it.
        return [
            ArrayConverter(FakeTensor, self._convert),
            ArrayConverter(OtherFakeTensor, self._convert_other),
        ]


def doubling_app(result_type: type[FakeTensor], batched: bool, **kwargs: Any) -> BlazeApp:
    """Model "double": a float32 vector in, the same doubled as `result_type` out. With
    `batched`, its first dimension is the "batch" axis (so core batches it)."""
    app = BlazeApp(**kwargs)
    dims: tuple[int | str, ...] = ("batch",) if batched else (3,)

    def double(x: Any) -> Any:
        return result_type((np.asarray(x) * 2).tolist())

    double.__annotations__ = {
        "x": TensorInput[(np.float32, *dims)],
        "return": TensorOutput[(np.float32, *dims)],
    }
    app.model("double")(double)
    return app


async def call_double(app: BlazeApp) -> tuple[list[int], str, list[float]]:
    async with serve_app(app) as server:
        tensor = server.schema.classes["TensorProto"](
            shape=[3], dtype="float32", data=np.array([1, 2, 3], dtype="<f4").tobytes()
        )
        out = (await server.call("double", x=tensor)).result
        got = list(out.shape), out.dtype, np.frombuffer(out.data, dtype=out.dtype).tolist()
    return got


@pytest.mark.parametrize("batched", [False, True], ids=["fixed-shape", "batch-axis"])
@pytest.mark.parametrize(
    ("result_type", "expected", "converted"),
    [
        (FakeTensor, [2.0, 4.0, 6.0], ["generic:FakeTensor"]),
        (SubFakeTensor, [2.0, 4.0, 6.0], ["generic:SubFakeTensor"]),
        (OtherFakeTensor, [20.0, 40.0, 60.0], ["exact:OtherFakeTensor"]),
    ],
)
async def test_plugin_array_converter_serializes_a_returned_tensor(
    result_type: type[FakeTensor], expected: list[float], converted: list[str], batched: bool
) -> None:
    plugin = FakeTensorPlugin()
    shape, dtype, values = await call_double(doubling_app(result_type, batched, plugins=[plugin]))
    assert (shape, dtype, values) == ([3], "float32", expected)
    assert plugin.converted == converted


async def test_without_the_converter_a_foreign_tensor_is_an_internal_error() -> None:
    with pytest.raises(GRPCError) as info:
        await call_double(doubling_app(FakeTensor, batched=False))
    assert info.value.status is Status.INTERNAL
    assert "FakeTensor" in (info.value.message or "")
