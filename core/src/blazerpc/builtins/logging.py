"""Start-up and shutdown lines in the server's log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from ..hookspecs import hookimpl
from ..server._loop import loop_name

if TYPE_CHECKING:
    from ..app import BlazeApp
    from ..server import ServerInfo

_log = structlog.get_logger("blazerpc")


@hookimpl(trylast=True)
def blazerpc_startup(app: BlazeApp, server: ServerInfo) -> None:
    for method in server.methods:
        kind = "server-streaming" if method.streaming else "unary"
        _log.info(
            f"Loaded model: {method.model} v{method.version}",
            model=method.model,
            version=method.version,
            rpc=method.rpc,
            kind=kind,
        )
    scheme = "TLS" if server.tls else "plaintext"
    _log.info(
        f"Server listening on {server.address}",
        host=server.host,
        port=server.port,
        transport=scheme,
        event_loop=loop_name(asyncio.get_running_loop()),
    )


@hookimpl(trylast=True)
def blazerpc_shutdown(app: BlazeApp, server: ServerInfo) -> None:
    _log.info("Server stopped", address=server.address)
