"""A plugin that imports fine but whose hook takes an argument the spec does not have
(``ctx`` instead of ``context``); installed by the tests as ``blazerpc-badargs``."""

from __future__ import annotations

from typing import Any

from blazerpc import hookimpl


class Rankine(float):
    """A temperature this plugin would map, if its hook were right."""


@hookimpl
def blazerpc_map_type(annotation: Any, ctx: Any) -> None:
    return None
