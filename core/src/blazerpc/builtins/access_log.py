"""The access log: one line per call, from :class:`~blazerpc.LoggingMiddleware`.

On by default: a server that says nothing about the calls it answers is hard to
operate, and a line costs a few microseconds against a call's hundreds. ``blaze serve
--no-access-log`` (or ``options={"access_log": False}`` on ``BlazeApp.serve`` and
``blazerpc.testing.serve_app``) turns it off; a busy service that has metrics may well
want that.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..cli._options import ServeOption
from ..hookspecs import hookimpl
from ..server.middleware import LoggingMiddleware, Middleware

if TYPE_CHECKING:
    from ..app import BlazeApp
    from ..server import ServerInfo

OPTION = "access_log"

#: One access log per app, so the server's start-up can switch the one its calls use.
_middleware: weakref.WeakKeyDictionary[BlazeApp, LoggingMiddleware] = weakref.WeakKeyDictionary()


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
def blazerpc_middleware(app: BlazeApp) -> Sequence[Middleware]:
    middleware = _middleware.get(app)
    if middleware is None:
        middleware = _middleware[app] = LoggingMiddleware()
    return [middleware]


@hookimpl
def blazerpc_startup(app: BlazeApp, server: ServerInfo) -> None:
    middleware = _middleware.get(app)
    if middleware is not None:
        # Serve options reach only the lifecycle hooks: switch the app's access log
        # here, before the server reports SERVING.
        middleware.enabled = bool(server.options.get(OPTION, True))
