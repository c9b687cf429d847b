"""A plugin that imports fine but implements a hook that does not exist
(``blazerpc_map_typo``); installed by the tests as ``blazerpc-typo``."""

from __future__ import annotations

from typing import Any

from blazerpc import hookimpl


@hookimpl
def blazerpc_map_typo(annotation: Any, context: Any) -> None:
    return None
