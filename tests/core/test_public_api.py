"""What public calls return is public: ``BlazeApp.models``, ``.limits``, ``.schema()`` and
``ServerInfo.methods`` give types exported with ``__all__``; and the TLS arguments of
``BlazeApp.serve`` and ``blaze serve`` are checked alike."""

from __future__ import annotations

import importlib
import ssl
import subprocess

import numpy as np
import pytest
from support import app_target

import blazerpc.types
from blazerpc import BlazeApp, ConfigurationError, Limits, Model, TensorInput
from blazerpc.testing import blaze_command, serve_app
from blazerpc.wire import FieldSchema, MethodSchema, Schema


@pytest.mark.parametrize("module", ["blazerpc", "blazerpc.wire", "blazerpc.types", "blazerpc.server"])
def test_every_name_in_all_is_there_and_public(module: str) -> None:
    imported = importlib.import_module(module)
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ lists {name!r}, which it lacks"
        assert not name.startswith("_") or name.endswith("__"), f"{module}.__all__ lists {name!r}"


def _app() -> BlazeApp:
    app = BlazeApp(max_concurrent_calls=7, enable_batching=False)

    @app.model("sentiment")
    def sentiment(text: str, scale: float = 1.0) -> float:
        """Score a text."""
        return scale * len(text)

    @app.model("embed", version="2")
    async def embed(x: TensorInput[np.float32, 3]) -> list[float]:
        return [float(v) for v in x]

    return app


def test_the_app_describes_itself_with_public_types() -> None:
    app = _app()
    sentiment, embed = app.models
    assert isinstance(sentiment, Model)
    assert isinstance(embed, Model)
    assert (sentiment.name, sentiment.version, sentiment.streaming, sentiment.kind) == (
        "sentiment",
        "1",
        False,
        "function",
    )
    assert (embed.name, embed.version, embed.kind) == ("embed", "2", "coroutine")
    assert sentiment.func(text="ab") == 2.0

    assert isinstance(app.limits, Limits)
    assert app.limits.max_concurrent_calls == 7
    assert app.limits == Limits(max_concurrent_calls=7)

    schema = app.schema()
    assert isinstance(schema, Schema)
    assert [(m.model, m.version, m.rpc) for m in schema.methods] == [
        ("sentiment", "1", "PredictSentiment"),
        ("embed", "2", "PredictEmbedV2"),
    ]
    method = schema.methods[0]
    assert isinstance(method, MethodSchema)
    assert method.path == "/blazerpc.InferenceService/PredictSentiment"
    assert all(isinstance(f, FieldSchema) for f in (*method.inputs, *method.outputs))
    assert [(f.name, f.has_default) for f in method.inputs] == [("text", False), ("scale", True)]
    assert schema.classes[method.request](text="hi").text == "hi"


def test_limits_refuse_values_that_cannot_work() -> None:
    with pytest.raises(ConfigurationError, match="max_message_size must be a whole number >= 1, got 0"):
        Limits(max_message_size=0)
    with pytest.raises(ConfigurationError, match="default_timeout must be a number of seconds > 0"):
        BlazeApp(default_timeout=-1)


async def test_a_started_server_lists_its_methods_as_public_types() -> None:
    async with serve_app(_app()) as server:
        assert all(isinstance(m, MethodSchema) for m in server.info.methods)
        assert [m.rpc for m in server.info.methods] == ["PredictSentiment", "PredictEmbedV2"]
        assert server.schema.methods == server.info.methods


def test_scalar_types_are_the_numpy_types_a_field_may_hold() -> None:
    assert blazerpc.types.SCALAR_TYPES["float32"] is np.float32
    assert blazerpc.types.SCALAR_TYPES["bool"] is np.bool_
    assert "complex64" in blazerpc.types.TENSOR_DTYPES
    assert "complex64" not in blazerpc.types.SCALAR_TYPES
    app = BlazeApp()
    for name, np_type in blazerpc.types.SCALAR_TYPES.items():

        def identity(x: object) -> object:
            return x

        identity.__annotations__ = {"x": np_type, "return": np_type}
        app.model(name)(identity)
    assert len(app.schema().methods) == len(blazerpc.types.SCALAR_TYPES)


def test_serve_refuses_an_ssl_context_together_with_certificate_files() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ConfigurationError, match=r"pass ssl or ssl_certfile .*not both"):
        _app().serve("127.0.0.1", 0, ssl=context, ssl_certfile="server.pem")


def test_serve_refuses_a_key_without_a_certificate() -> None:
    with pytest.raises(ConfigurationError, match=r"^ssl_keyfile and ssl_ca_certs need ssl_certfile$"):
        _app().serve("127.0.0.1", 0, ssl_keyfile="server.key")


def test_blaze_serve_refuses_a_ca_file_without_a_certificate() -> None:
    done = subprocess.run(
        [*blaze_command(), "serve", app_target("serving_app"), "--port", "0", "--ssl-ca-certs", "ca.pem"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--ssl-keyfile and --ssl-ca-certs need --ssl-certfile" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
