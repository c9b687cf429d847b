"""Run by test_plugin_types.py as a pytest session of its own (copied in as a test file):
``blazerpc_register_plugin`` registers a plugin for one test, and the next test no longer
sees it. Tests run in file order."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from blazerpc import BlazeApp, TypeMappingError, hookimpl
from blazerpc.plugins import new_plugin_manager
from blazerpc.wire import FieldContext, WireType, scalar_wire_type


class Marker:
    """A type only PLUGIN maps."""


class MarkerPlugin:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is Marker:
            return scalar_wire_type(FieldDescriptorProto.TYPE_DOUBLE, "Marker", decode=float)
        return None


PLUGIN = MarkerPlugin()


def model(x: Marker) -> float:
    return 1.0


def test_registered_for_this_test(blazerpc_register_plugin: Any) -> None:
    blazerpc_register_plugin(PLUGIN)
    assert new_plugin_manager().is_registered(PLUGIN)
    app = BlazeApp()
    app.model("m")(model)
    assert [m.rpc for m in app.schema().methods] == ["PredictM"]


def test_gone_in_the_next_test() -> None:
    assert not new_plugin_manager().is_registered(PLUGIN)
    with pytest.raises(TypeMappingError, match="Marker"):
        BlazeApp().model("m")(model)
