"""Models for the access log: a unary model, one that fails, a streaming one, and a
middleware of the app's own that rejects calls carrying ``reject`` metadata."""

from __future__ import annotations

from collections.abc import Iterator

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, CallContext, Middleware


class RejectMiddleware(Middleware):
    async def on_request(self, context: CallContext) -> None:
        if "reject" in dict(context.metadata):
            raise GRPCError(Status.PERMISSION_DENIED, "rejected by the app")


app = BlazeApp(middleware=[RejectMiddleware()])


@app.model("echo")
def echo(text: list[str]) -> list[str]:
    return text


@app.model("fail")
def fail(message: str) -> str:
    raise ValueError(message)


@app.model("count", streaming=True)
def count(n: int) -> Iterator[int]:
    yield from range(n)
