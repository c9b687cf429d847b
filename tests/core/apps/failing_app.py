"""Models that fail, for what the server's error log says about them (and leaves out)."""

from __future__ import annotations

from collections.abc import Iterator

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from blazerpc import BlazeApp, InvalidInputError

app = BlazeApp()


@app.model("explode")
def explode(text: str, blob: bytes) -> str:
    words = text.split()  # a local holding the request's payload
    raise ValueError(f"cannot score {len(words)} words")


@app.model("explode_stream", streaming=True)
def explode_stream(text: str) -> Iterator[str]:
    yield "first"
    raise RuntimeError("stream broke")


@app.model("reject")
def reject(text: str) -> str:
    raise InvalidInputError("text is not allowed")


@app.model("missing")
def missing(text: str) -> str:
    raise GRPCError(Status.NOT_FOUND, "no such item")
