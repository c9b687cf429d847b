"""Inputs the client refuses before sending: `blazerpc.Client` and `blaze call` say so in
the same words, naming the input, the type its field takes and the value given, and
nothing reaches the server (a real `blaze serve`, whose access log would show it)."""

from __future__ import annotations

import json
import pickle
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import blaze_call

from blazerpc import CallError, Client, ClientInputError, SyncClient
from blazerpc.testing import ServeProcess, blaze_command

REFUSED = "refused by the client, nothing sent: "


@pytest.fixture(scope="module")
def client(refusals: ServeProcess) -> Iterator[SyncClient]:
    with refusals.client(timeout=10) as c:
        yield c


def calls_logged(proc: ServeProcess, model: str) -> int:
    return sum(1 for e in list(proc.logs) if e.get("event") == "call" and e.get("model") == model)


def wait_for_calls(proc: ServeProcess, model: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while calls_logged(proc, model) < count:
        assert time.monotonic() < deadline, f"the server logged {calls_logged(proc, model)} calls of {model}"
        time.sleep(0.02)


#: (model, inputs as JSON, the refusal after its prefix): each expressible both as
#: keyword arguments and as `blaze call --data`.
CASES = [
    (
        "generate",
        {"n": 1.5, "prompt": "a"},
        "input 'n' of model 'generate' expects int64, got 1.5 (float)",
    ),
    (
        "generate",
        {"n": "3", "prompt": "a"},
        "input 'n' of model 'generate' expects int64, got '3' (str)",
    ),
    (
        "generate",
        {"n": 1, "prompt": 5},
        "input 'prompt' of model 'generate' expects string, got 5 (int)",
    ),
    (
        "generate",
        {"n": 1, "prompt": ["a"]},
        "input 'prompt' of model 'generate' expects string, got ['a'] (list)",
    ),
    (
        "generate",
        {"n": 1, "promt": "a"},
        "model 'generate' has no input 'promt' (its inputs: n, prompt)",
    ),
    (
        "scale",
        {"x": [[1, 2, 3], [4]]},
        "input 'x' of model 'scale' expects float32[batch, 3], got [[1, 2, 3], [4]] (list): "
        "nested lists of different lengths",
    ),
    (
        "scale",
        {"x": [["a", "b", "c"]]},
        "input 'x' of model 'scale' expects float32[batch, 3], got [['a', 'b', 'c']] (list): "
        "not an array of numbers",
    ),
    (
        "scale",
        {"x": [[1e40, 0, 0]]},
        "input 'x' of model 'scale' expects float32[batch, 3], got [[1e+40, 0, 0]] (list): "
        "float64 values too large for float32: "
        "1e+40 would become inf in float32 (largest finite: 3.40282e+38)",
    ),
    (
        "kinds",
        {"on": 1, "ratio": 0.5, "small": 1, "ids": [1], "blob": ""},
        "input 'on' of model 'kinds' expects bool, got 1 (int)",
    ),
    (
        "kinds",
        {"on": True, "ratio": 1e39, "small": 1, "ids": [1], "blob": ""},
        "input 'ratio' of model 'kinds' expects float, got 1e+39 (float): "
        "it would become inf in float (largest finite: 3.40282e+38)",
    ),
    (
        "kinds",
        {"on": True, "ratio": 0.5, "small": 2**40, "ids": [1], "blob": ""},
        "input 'small' of model 'kinds' expects int32, got 1099511627776 (int): "
        "outside int32's [-2147483648, 2147483647]",
    ),
    (
        "kinds",
        {"on": True, "ratio": 0.5, "small": 1, "ids": [1, 2.5], "blob": ""},
        "input 'ids' of model 'kinds' expects list[int64], got [1, 2.5] (list): item 1 is 2.5 (float)",
    ),
    (
        "kinds",
        {"on": True, "ratio": 0.5, "small": 1, "ids": "12", "blob": ""},
        "input 'ids' of model 'kinds' expects list[int64], got '12' (str)",
    ),
]
IDS = [message.split(" expects ")[0].split(" has ")[0] + f" {i}" for i, (_, _, message) in enumerate(CASES)]


#: A call of each model that succeeds.
GOOD: dict[str, dict[str, Any]] = {
    "generate": {"n": 1, "prompt": "a"},
    "scale": {"x": [[1, 2, 3]]},
    "kinds": {"on": True, "ratio": 0.5, "small": 1, "ids": [1], "blob": b""},
}


def python_inputs(model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The JSON inputs as Python values (a bytes field takes bytes, not base64)."""
    return {k: b"" if (model, k) == ("kinds", "blob") else v for k, v in inputs.items()}


@pytest.mark.parametrize(("model", "inputs", "message"), CASES, ids=IDS)
def test_client_and_blaze_call_refuse_in_the_same_words_and_send_nothing(
    refusals: ServeProcess, client: SyncClient, model: str, inputs: dict[str, Any], message: str
) -> None:
    before = calls_logged(refusals, model)
    with pytest.raises(ClientInputError) as caught:
        client.predict(model, python_inputs(model, inputs))
    error = caught.value
    assert str(error) == error.message == REFUSED + message
    assert not isinstance(error, CallError)  # no gRPC status: the server said nothing
    assert isinstance(error, ValueError)
    assert error.model == model
    field = message.split("'")[1] if message.startswith("input") else message.split("'")[3]
    assert error.field == field

    done = blaze_call(refusals, model, "--data", json.dumps(inputs))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error: {REFUSED}{message}\n"

    # A good call of the same model is the first one the server sees.
    client.predict(model, GOOD[model])
    wait_for_calls(refusals, model, before + 1)  # calls are logged in the order they end
    assert calls_logged(refusals, model) == before + 1


def test_the_refusal_carries_what_was_refused_and_pickles(client: SyncClient) -> None:
    with pytest.raises(ClientInputError) as caught:
        client.predict("generate", n=1.5, prompt="a")
    error = caught.value
    assert (error.model, error.field, error.expected, error.value) == ("generate", "n", "int64", 1.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.message, copy.field, copy.expected) == (
        ClientInputError,
        error.message,
        "n",
        "int64",
    )


async def test_the_async_client_refuses_in_the_same_words(refusals: ServeProcess) -> None:
    async with Client(refusals.address, timeout=10) as client:
        with pytest.raises(ClientInputError, match=r"^refused by the client, nothing sent: input 'n' "):
            await client.predict("generate", n=1.5, prompt="a")
        with pytest.raises(ClientInputError, match=r"expects list\[string\], got 'hi' \(str\)"):
            await client.encode("sentiment", text="hi")
        with pytest.raises(ClientInputError, match="expects string, got 3 "):
            async for _ in client.stream("words", text=3):
                pass


def test_a_version_is_a_string_as_on_the_server(refusals: ServeProcess, client: SyncClient) -> None:
    with pytest.raises(ClientInputError) as caught:
        client.predict("sentiment", version=2, text=["good"])  # type: ignore[arg-type]
    assert caught.value.message == (
        f"{REFUSED}version must be a string, as the server registers versions: "
        "version='2', not version=2 (int)"
    )
    with pytest.raises(ClientInputError, match="version='2', not version=2 "):
        client.model("sentiment", 2)  # type: ignore[arg-type]
    assert client.predict("sentiment", version="2", text=["good"]) == [0.75]
    done = blaze_call(refusals, "sentiment", "--version", "2", "--data", '{"text": ["good"]}')
    assert (done.returncode, done.stdout, done.stderr) == (0, '{"result": [0.75]}\n', "")


def test_an_ambiguous_version_and_predict_of_a_stream_are_refused(
    refusals: ServeProcess, client: SyncClient
) -> None:
    with pytest.raises(ClientInputError) as caught:
        client.predict("tagger", text="x")
    assert caught.value.message == (
        f"{REFUSED}model 'tagger' has several versions (a, b): choose one with version="
    )
    done = blaze_call(refusals, "tagger", "--data", '{"text": "x"}')
    assert (done.returncode, done.stderr) == (1, f"Error: {caught.value.message}\n")
    with pytest.raises(ClientInputError) as caught:
        client.predict("words", text="a b")
    assert caught.value.message == f"{REFUSED}model 'words' streams its results: use client.stream()"
    assert list(client.stream("words", text="a b")) == ["a", "b"]


def test_blaze_bench_refuses_in_the_same_words(refusals: ServeProcess) -> None:
    done = subprocess.run(
        [
            *blaze_command(),
            "bench",
            refusals.address,
            "generate",
            "--data",
            '{"n": 1.5}',
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"Error: {REFUSED}input 'n' of model 'generate' expects int64, got 1.5 (float)\n"


def test_what_the_server_refuses_is_still_the_servers_status(client: SyncClient) -> None:
    with pytest.raises(CallError) as caught:
        client.predict("scale", x=[[1, 2]])  # the shape is the server's to check
    assert caught.value.message == "field 'x': expected shape float32[batch, 3], got shape [1, 2]"
