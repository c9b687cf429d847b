"""Batching settings: per-model settings over the app's, batching=True on a model, the
start-up log, and settings refused at start-up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from batching_support import DepthRecorder
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import APPS, Gate, wait_until

from blazerpc import BlazeApp, ConfigurationError
from blazerpc.testing import serve_app


async def test_per_model_settings_override_the_apps() -> None:
    calls: dict[str, list[list[int]]] = {"small": [], "fixed": [], "off": []}
    gate = Gate()
    depth = DepthRecorder()
    app = BlazeApp(max_batch_size=32, batch_policy="adaptive", plugins=[depth.plugin()])

    @app.model("small", max_batch_size=2)
    def small(x: list[int]) -> list[int]:
        calls["small"].append(list(x))
        gate()
        return x

    @app.model("fixed", batch_policy="fixed", max_batch_size=3, batch_timeout_ms=30_000)
    def fixed(x: list[int]) -> list[int]:
        calls["fixed"].append(list(x))
        return x

    @app.model("off", batching=False)
    def off(x: list[int]) -> list[int]:
        calls["off"].append(list(x))
        time.sleep(0.01)
        return x

    async with serve_app(app) as server:
        first = asyncio.ensure_future(server.call("small", x=[0]))
        await wait_until(gate.entered.is_set)
        rest = [asyncio.ensure_future(server.call("small", x=[i])) for i in range(1, 6)]
        await depth.queued("small", 5)
        gate.release.set()
        await asyncio.gather(first, *rest)
        # The app's adaptive policy would send the first of these alone, at once.
        await asyncio.gather(*[server.call("fixed", x=[i]) for i in range(3)])
        await asyncio.gather(*[server.call("off", x=[i]) for i in range(4)])
    assert calls["small"][0] == [0]
    assert sorted(v for call in calls["small"][1:] for v in call) == [1, 2, 3, 4, 5]
    assert [len(call) for call in calls["small"][1:]] == [2, 2, 1]  # not one batch of 5
    assert [sorted(call) for call in calls["fixed"]] == [[0, 1, 2]]
    assert sorted(calls["off"]) == [[0], [1], [2], [3]]


async def test_batching_true_on_a_model_batches_it_in_an_app_with_batching_off() -> None:
    calls: dict[str, list[list[int]]] = {"forced": [], "follows": []}
    gates = {"forced": Gate(), "follows": Gate()}
    depth = DepthRecorder()
    app = BlazeApp(enable_batching=False, max_concurrency=1, plugins=[depth.plugin()])

    @app.model("forced", batching=True)
    def forced(x: list[int]) -> list[int]:
        calls["forced"].append(list(x))
        gates["forced"]()
        return x

    @app.model("follows")
    def follows(x: list[int]) -> list[int]:
        calls["follows"].append(list(x))
        gates["follows"]()
        return x

    async with serve_app(app) as server:
        for model, gate in gates.items():
            first = asyncio.ensure_future(server.call(model, x=[0]))
            await wait_until(gate.entered.is_set)
            rest = [asyncio.ensure_future(server.call(model, x=[i])) for i in range(1, 4)]
            await depth.queued(model, 3)
            gate.release.set()
            await asyncio.gather(first, *rest)
    assert calls["forced"][0] == [0]
    assert [sorted(call) for call in calls["forced"][1:]] == [[1, 2, 3]]
    assert sorted(calls["follows"]) == [[0], [1], [2], [3]]


def test_batching_true_on_a_model_without_a_batch_axis_fails_at_start_up() -> None:
    app = BlazeApp()

    @app.model("scalar", batching=True)
    def scalar(x: int) -> int:
        return x

    with pytest.raises(
        ConfigurationError,
        match=r"model 'scalar' is registered with batching=True but cannot be batched: input 'x' "
        r"\(int\) has no batch axis; give every input and output a batch axis",
    ):
        app.schema()


#: What the start-up log says of an unbatched sync model without a max_concurrency.
SYNC = "; sync, so up to 32 calls at a time (the model threads, shared by every sync model)"


@pytest.mark.parametrize(
    ("target", "lines"),
    [
        (
            "app",
            {
                "rows": "Batching model rows v1: adaptive policy, up to 16 rows, 5 ms, 1 batch at a time",
                "scalar": "Model scalar v1 is not batched: input 'x' (int) has no batch axis" + SYNC,
                "unrowed": "Model unrowed v1 is not batched: it is registered with batching=False" + SYNC,
                "tokens": "Model tokens v1 streams: not batched and not limited",
            },
        ),
        (
            "app_off",
            {
                "follows": "Model follows v1 is not batched: the app has enable_batching=False "
                "(batching=True on @app.model batches one model)" + SYNC,
                "forced": "Batching model forced v1: fixed policy, up to 4 rows, 10 ms, 1 batch at a time",
            },
        ),
    ],
)
def test_the_start_up_log_says_which_models_are_batched_and_why_not(
    target: str, lines: dict[str, str]
) -> None:

    from blazerpc.testing import serve_process

    with serve_process(f"{APPS / 'batching_plans_app'}.py:{target}") as proc:
        logs = list(proc.logs)
    plans = {
        e["model"]: e["event"]
        for e in logs
        if str(e.get("event", "")).startswith(("Batching model", "Model ")) and "model" in e
    }
    assert plans == lines
    assert all(e["level"] == "info" for e in logs if e.get("event") in lines.values())


async def test_inputs_of_different_lengths_in_one_request_are_invalid() -> None:
    app = BlazeApp()

    @app.model("pair")
    def pair(a: list[int], b: list[int]) -> list[int]:
        return [x + y for x, y in zip(a, b, strict=True)]

    async with serve_app(app) as server:
        with pytest.raises(GRPCError) as info:
            await server.call("pair", a=[1, 2, 3], b=[1])
        assert list((await server.call("pair", a=[1, 2], b=[10, 20])).result) == [11, 22]
        error = info.value
    assert error.status is Status.INVALID_ARGUMENT
    assert "different batch lengths" in (error.message or "")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be a whole number >= 1"),
        ({"batch_timeout_ms": -1}, "batch_timeout_ms must be a number >= 0"),
        ({"max_concurrency": 1.5}, "max_concurrency must be a whole number >= 1"),
        ({"max_queue_size": 0}, "max_queue_size must be a whole number >= 1"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BlazeApp(**settings)
    app = BlazeApp()
    with pytest.raises(ConfigurationError, match=message):
        app.model("m", **settings)(lambda x: x)


def test_an_unknown_policy_is_refused_at_start_up_with_the_known_ones() -> None:
    app = BlazeApp(batch_policy="nope")

    @app.model("double")
    def double(x: list[int]) -> list[int]:
        return x

    with pytest.raises(ConfigurationError, match="unknown batch_policy 'nope'; available: adaptive, fixed"):
        app.schema()
