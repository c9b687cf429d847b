"""The access log: one line per call, from :class:`~blazerpc.LoggingMiddleware`.

On by default: a server that says nothing about the calls it answers is hard to
operate, and a line costs a few microseconds against a call's hundreds. ``blaze serve
--no-access-log`` (or ``options={"access_log": False}`` on ``BlazeApp.serve`` and
``blazerpc.testing.serve_app``) turns it off; a busy service that has metrics may well
want that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..cli._options import ServeOption
from ..hookspecs import hookimpl
from ..server.middleware import LoggingMiddleware, Middleware

if TYPE_CHECKING:
    from ..app import BlazeApp

OPTION = "access_log"


@hookimpl(trylast=True)
def blazerpc_serve_options() -> Sequence[ServeOption]:
    return [
        ServeOption(
            OPTION,
            bool,
            True,
            "Log one line per call: method, model, peer, status, duration.",
        )
    ]


@hookimpl(trylast=True)
def blazerpc_middleware(app: BlazeApp, options: Mapping[str, Any]) -> Sequence[Middleware]:
    # Off, it is not in the chain at all: its calls pay nothing for it.
    return [LoggingMiddleware()] if options.get(OPTION, True) else []
