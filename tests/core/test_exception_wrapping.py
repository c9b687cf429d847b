"""Exception mapping wraps what it maps: an exception from a middleware's ``on_request``
reaches the ``ExceptionMiddleware`` that come before it in the chain, then core's
mapping; one after it does not see it. Over a real server and grpclib's client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from grpclib.client import UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, CallContext, ExceptionMiddleware, Middleware
from blazerpc.testing import serve_app


class QuotaExceeded(Exception):
    pass


class Quota(Middleware):
    """Raises its own exception type, not a GRPCError: an ExceptionMiddleware maps it."""

    async def on_request(self, context: CallContext) -> None:
        if dict(context.metadata).get("x-user") == "greedy":
            raise QuotaExceeded("user 'greedy' used up the quota")
        if dict(context.metadata).get("x-user") == "buggy":
            raise ZeroDivisionError("division by zero")


class QuotaErrors(ExceptionMiddleware):
    exception_map: ClassVar[Mapping[type[BaseException], Status]] = {QuotaExceeded: Status.RESOURCE_EXHAUSTED}


class Seen(Middleware):
    """Records the status each call's on_response sees."""

    def __init__(self) -> None:
        self.statuses: list[Status | None] = []

    async def on_response(self, context: CallContext) -> None:
        self.statuses.append(context.status)


def _app(middleware: list[Middleware]) -> BlazeApp:
    app = BlazeApp(middleware=middleware)

    @app.model("echo")
    async def echo(x: int) -> int:
        return x

    return app


async def _call(app: BlazeApp, user: str) -> int:
    async with serve_app(app) as server:
        method = server.method("echo")
        rpc = UnaryUnaryMethod(
            server.channel,
            method.path,
            server.schema.classes[method.request],
            server.schema.classes[method.response],
        )
        reply = await rpc(server.request("echo", x=7), timeout=10, metadata={"x-user": user})
        return int(reply.result)


async def test_an_exception_middleware_before_a_middleware_maps_what_it_raises() -> None:
    seen = Seen()
    app = _app([seen, QuotaErrors(), Quota()])
    with pytest.raises(GRPCError) as info:
        await _call(app, "greedy")
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert info.value.message == "user 'greedy' used up the quota"
    assert seen.statuses == [Status.RESOURCE_EXHAUSTED]  # the outer middleware saw that status
    assert await _call(app, "polite") == 7


async def test_an_exception_middleware_after_it_does_not_wrap_it() -> None:
    app = _app([Quota(), QuotaErrors()])
    with pytest.raises(GRPCError) as info:
        await _call(app, "greedy")
    # QuotaErrors comes after Quota: it wraps the model, not Quota; core's mapping answers.
    assert info.value.status is Status.INTERNAL
    assert info.value.message == "middleware 'Quota' raised QuotaExceeded: user 'greedy' used up the quota"


async def test_an_unmapped_middleware_exception_is_internal_and_names_the_middleware() -> None:
    seen = Seen()
    app = _app([seen, QuotaErrors(), Quota()])
    with pytest.raises(GRPCError) as info:
        await _call(app, "buggy")
    assert info.value.status is Status.INTERNAL
    assert info.value.message == "middleware 'Quota' raised ZeroDivisionError: division by zero"
    assert seen.statuses == [Status.INTERNAL]
