"""Models batched or not, for the start-up log (test_batching): ``app`` has batching on,
``app_off`` has it off."""

from __future__ import annotations

from collections.abc import Iterator

from blazerpc import BlazeApp

app = BlazeApp(max_batch_size=16, batch_timeout_ms=5)


@app.model("rows")
def rows(x: list[int]) -> list[int]:
    return x


@app.model("scalar")
def scalar(x: int) -> int:
    return x


@app.model("unrowed", batching=False)
def unrowed(x: list[int]) -> list[int]:
    return x


@app.model("tokens", streaming=True)
def tokens(x: list[int]) -> Iterator[int]:
    yield from x


app_off = BlazeApp(enable_batching=False)


@app_off.model("follows")
def follows(x: list[int]) -> list[int]:
    return x


@app_off.model("forced", batching=True, batch_policy="fixed", max_batch_size=4)
def forced(x: list[int]) -> list[int]:
    return x
