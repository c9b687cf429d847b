"""Options that plugins add to ``blaze serve``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ServeOption"]


@dataclass(frozen=True)
class ServeOption:
    """An option of ``blaze serve`` contributed by a plugin.

    ``name`` is a Python identifier; the flag is derived from it (``metrics_port`` ->
    ``--metrics-port``). The parsed value reaches ``blazerpc_startup`` as
    ``server.options[name]``, or ``default`` when the flag is not given.
    """

    name: str
    type: type
    default: Any
    help: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"serve option name {self.name!r} must be a Python identifier")
