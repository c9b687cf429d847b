"""A working third-party plugin, installed by the tests as distribution ``blazerpc-fake``.

It adds a ``blaze hello`` command and two ``blaze serve`` options, maps ``Kelvin`` to a
double field, and writes what its start-up hook received to ``$FAKEPLUG_OUT`` (or raises
``$FAKEPLUG_FAIL`` as its error, to abort start-up).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from blazerpc import hookimpl
from blazerpc.cli import ServeOption
from blazerpc.wire import FieldContext, WireType, scalar_wire_type


class Kelvin(float):
    """A temperature; travels as a double."""


@hookimpl
def blazerpc_map_type(annotation: Any, context: FieldContext) -> WireType | None:
    if annotation is not Kelvin:
        return None
    return scalar_wire_type(FieldDescriptorProto.TYPE_DOUBLE, "Kelvin", decode=Kelvin, encode=float)


@hookimpl
def blazerpc_cli(cli: typer.Typer) -> None:
    @cli.command()
    def hello(name: str = "world") -> None:
        """Say hello (a command added by blazerpc-fake)."""
        typer.echo(f"Hello, {name}, from blazerpc-fake")


@hookimpl
def blazerpc_serve_options() -> Sequence[ServeOption]:
    return [
        ServeOption(name="greeting", type=str, default="none", help="What blazerpc-fake says at start-up."),
        ServeOption(name="repeat_count", type=int, default=1, help="How often blazerpc-fake says it."),
    ]


@hookimpl
def blazerpc_startup(app: Any, server: Any) -> None:
    failure = os.environ.get("FAKEPLUG_FAIL")
    if failure:
        raise RuntimeError(failure)
    out = os.environ.get("FAKEPLUG_OUT")
    if out:
        seen = {
            "options": dict(server.options),
            "port": server.port,
            "models": [method.model for method in server.methods],
        }
        Path(out).write_text(json.dumps(seen))
