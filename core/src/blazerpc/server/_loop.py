"""Which event loop serves: uvloop when it is installed (core's ``speed`` extra), else asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from ..exceptions import ConfigurationError

__all__ = ["LoopName", "loop_factory", "loop_name"]

LoopName = Literal["auto", "asyncio", "uvloop"]


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the loop ``name``: ``auto`` is uvloop if it can be imported."""
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ConfigurationError(
                "--loop uvloop needs uvloop: pip install 'uvloop>=0.19' (core's speed extra)"
            ) from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``, for the start-up log."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
