"""Type plugins: hooks registered on an app or for a test map custom types, and may
override a built-in mapping."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from installed_plugins_support import BUILTINS, FIXTURES, WrongArgument

from blazerpc import BlazeApp, TypeMappingError, hookimpl
from blazerpc.plugins import new_plugin_manager
from blazerpc.testing import serve_app
from blazerpc.wire import FieldContext, WireType, scalar_wire_type

pytestmark = pytest.mark.usefixtures("no_plugin_selection")


class Celsius:
    """A temperature a model works with; no built-in maps it."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusPlugin:
    """Maps `Celsius` to a double field; records what its hook and converters see."""

    def __init__(self) -> None:
        self.map_calls = 0
        self.decoded: list[float] = []
        self.encoded: list[float] = []

    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not Celsius:
            return None
        self.map_calls += 1

        def decode(value: float) -> Celsius:
            self.decoded.append(value)
            return Celsius(value)

        def encode(value: Celsius) -> float:
            self.encoded.append(value.degrees)
            return value.degrees

        return scalar_wire_type(FieldDescriptorProto.TYPE_DOUBLE, "Celsius", decode=decode, encode=encode)


def thermo_app(**kwargs: Any) -> tuple[BlazeApp, list[type]]:
    """An app with model "warm" (Celsius in, Celsius out); also returns what the model received."""
    app = BlazeApp(**kwargs)
    received: list[type] = []

    @app.model("warm")
    def warm(t: Celsius, by: float) -> Celsius:
        received.append(type(t))
        return Celsius(t.degrees + by)

    return app, received


def field_type(server: Any, message: str, field: str) -> int:
    return server.schema.pool.FindMessageTypeByName(f"blazerpc.{message}").fields_by_name[field].type


@pytest.mark.parametrize("how", ["app", "fixture"])
async def test_plugin_maps_a_custom_type(how: str, request: pytest.FixtureRequest) -> None:
    plugin = CelsiusPlugin()
    if how == "app":
        app, received = thermo_app(plugins=[plugin])
    else:
        request.getfixturevalue("blazerpc_register_plugin")(plugin)
        app, received = thermo_app()

    async with serve_app(app) as server:
        types = [field_type(server, "WarmRequest", "t"), field_type(server, "WarmResponse", "result")]
        calls_at_start = plugin.map_calls
        replies = [(await server.call("warm", t=t, by=1.25)).result for t in (20.5, -3.0, 0.0)]
        replies, types, calls_at_start, calls_after = replies, types, calls_at_start, plugin.map_calls
    assert replies == [21.75, -1.75, 1.25]
    assert plugin.decoded == [20.5, -3.0, 0.0]
    assert plugin.encoded == [21.75, -1.75, 1.25]
    assert received == [Celsius, Celsius, Celsius]
    assert types == [FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_DOUBLE]
    assert "double t = 1;" in app.proto()
    # Hooks run at registration and start-up, never per request.
    assert calls_at_start > 0
    assert calls_after == calls_at_start


def test_app_plugin_is_not_seen_by_another_app() -> None:
    thermo_app(plugins=[CelsiusPlugin()])
    with pytest.raises(TypeMappingError, match="Celsius"):
        thermo_app()
    assert not any(isinstance(p, CelsiusPlugin) for p in new_plugin_manager().get_plugins())


def test_register_fixture_unregisters_after_the_test(tmp_path: Path) -> None:
    # Two tests in a pytest session of their own: the first registers a plugin with the
    # fixture, the second (run after its teardown) must not see it.
    shutil.copy(FIXTURES / "fixture_scope.py", tmp_path / "test_fixture_scope.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


class Fahrenheit(float):
    """A type only FahrenheitPlugin maps."""


class FahrenheitPlugin:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not Fahrenheit:
            return None
        return scalar_wire_type(
            FieldDescriptorProto.TYPE_FLOAT, "Fahrenheit", decode=Fahrenheit, encode=float
        )


def test_plugin_manager_fixture_lets_an_author_call_hooks_directly(
    blazerpc_plugin_manager: pluggy.PluginManager,
) -> None:
    """What `blazerpc_plugin_manager` gives a plugin author: the real hook specs, the
    installed plugins and core's built-ins, in a manager of the test's own, so a hook
    implementation can be called through pluggy exactly as core calls it."""
    pm = blazerpc_plugin_manager
    assert {name for name, _ in pm.list_name_plugin()} >= BUILTINS

    def map_type(annotation: Any) -> WireType | None:
        context = FieldContext("m", "t", "input", resolve=map_type, to_array=np.asarray)
        wire: WireType | None = pm.hook.blazerpc_map_type(annotation=annotation, context=context)
        return wire

    # The built-ins answer; nothing maps the author's type yet.
    assert getattr(map_type(int), "proto_type", None) == FieldDescriptor.TYPE_INT64
    assert map_type(Fahrenheit) is None

    plugin = FahrenheitPlugin()
    pm.register(plugin)
    wire = map_type(Fahrenheit)
    assert wire is not None
    assert (wire.proto_type, wire.describe) == (FieldDescriptor.TYPE_FLOAT, "Fahrenheit")
    assert wire.decode is not None
    assert type(wire.decode(98.6)) is Fahrenheit
    # A built-in that delegates (list[T]) resolves the item through the author's plugin.
    listed = map_type(list[Fahrenheit])
    assert listed is not None
    assert (listed.repeated, listed.describe) == (True, "list[Fahrenheit]")
    # The specs check the author's hooks as they are registered.
    with pytest.raises(pluggy.PluginValidationError, match="ctx"):
        pm.register(WrongArgument())

    # The manager is the test's own: apps (and other managers) do not see the plugin.
    assert not new_plugin_manager().is_registered(plugin)
    with pytest.raises(TypeMappingError, match="Fahrenheit"):
        BlazeApp().model("m")(model_with_fahrenheit)


def model_with_fahrenheit(t: Fahrenheit) -> float:
    return float(t)


class StrAsBytes:
    """Overrides a built-in mapping: `str` travels as UTF-8 `bytes`."""

    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not str:
            return None
        return scalar_wire_type(
            FieldDescriptorProto.TYPE_BYTES,
            "str as UTF-8",
            decode=lambda raw: raw.decode("utf-8"),
            encode=lambda text: text.encode("utf-8"),
        )


def shout_app(**kwargs: Any) -> BlazeApp:
    app = BlazeApp(**kwargs)

    @app.model("shout")
    def shout(text: str) -> list[str]:
        assert isinstance(text, str)
        return [text.upper(), text]

    return app


async def test_plugin_overrides_a_builtin_mapping() -> None:
    app = shout_app(plugins=[StrAsBytes()])

    async with serve_app(app) as server:
        reply = await server.call("shout", text="héllo".encode())
        result, request_type, response_type = (
            list(reply.result),
            field_type(server, "ShoutRequest", "text"),
            field_type(server, "ShoutResponse", "result"),
        )
    assert result == ["HÉLLO".encode(), "héllo".encode()]
    assert request_type == FieldDescriptor.TYPE_BYTES
    # list[str] maps its items through the plugins too (context.resolve).
    assert response_type == FieldDescriptor.TYPE_BYTES
    # Without the plugin, the built-in mapping is back.
    plain = shout_app().schema().pool.FindMessageTypeByName("blazerpc.ShoutRequest")
    assert plain.fields_by_name["text"].type == FieldDescriptor.TYPE_STRING
