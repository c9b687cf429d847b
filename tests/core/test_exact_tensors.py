"""A tensor given as its wire form (`blaze call`'s `data_base64` and `{"dtype", "data"}`
objects, the client's `{"shape", "dtype", "data"}` mapping) is sent exactly as given: the
server's own dtype check answers, over a real `blaze serve`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np
import pytest
from grpclib.const import Status
from support import blaze_call

from blazerpc import CallError, ClientInputError, SyncClient
from blazerpc.testing import ServeProcess


@pytest.fixture(scope="module")
def client(refusals: ServeProcess) -> Iterator[SyncClient]:
    with refusals.client(timeout=10) as c:
        yield c


def base64_tensor(array: np.ndarray) -> dict[str, object]:
    return {
        "shape": list(array.shape),
        "dtype": array.dtype.name,
        "data_base64": base64.b64encode(array.tobytes()).decode(),
    }


INT64 = np.array([[1, 2, 3]], dtype=np.int64)


def test_data_base64_of_another_dtype_reaches_the_server_as_given(refusals: ServeProcess) -> None:
    # scale's x is float32[batch, 3]: the int64 bytes are not converted on the way.
    done = blaze_call(refusals, "scale", "--data", json.dumps({"x": base64_tensor(INT64)}))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "INVALID_ARGUMENT: field 'x': expected dtype float32, got int64\n"


def test_a_dtype_and_data_object_is_sent_with_its_own_dtype(refusals: ServeProcess) -> None:
    done = blaze_call(
        refusals, "scale", "--data", json.dumps({"x": {"dtype": "float64", "data": [[1, 2, 3]]}})
    )
    assert (done.returncode, done.stderr) == (
        1,
        "INVALID_ARGUMENT: field 'x': expected dtype float32, got float64\n",
    )
    done = blaze_call(
        refusals, "scale", "--data", json.dumps({"x": {"dtype": "float32", "data": [[1, 2, 3]]}})
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, '{"result": [[2.0, 4.0, 6.0]]}\n', "")


def test_the_bytes_come_back_as_they_went(refusals: ServeProcess) -> None:
    # echo takes and returns any dtype and shape: the exact bytes make the round trip.
    for array in (
        INT64,
        np.array([1.5, -2.0]),
        np.arange(6, dtype=np.uint16).reshape(2, 3),
    ):
        sent = base64_tensor(array)
        done = blaze_call(refusals, "echo", "--data", json.dumps({"x": sent}), "--tensors", "base64")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"result": sent}


def test_a_shape_that_does_not_match_the_data_is_still_refused_before_sending(
    refusals: ServeProcess,
) -> None:
    tensor = {"shape": [2], "dtype": "int64", "data_base64": base64.b64encode(INT64.tobytes()).decode()}
    done = blaze_call(refusals, "echo", "--data", json.dumps({"x": tensor}))
    assert done.returncode == 1
    assert done.stderr.startswith("Error: refused by the client, nothing sent: input 'x' of model 'echo' ")
    assert done.stderr.endswith(": data_base64 holds 24 bytes; shape [2] of int64 needs 16\n")


def test_the_client_sends_a_wire_mapping_exactly(client: SyncClient) -> None:
    wire = {"shape": [1, 3], "dtype": "int64", "data": INT64.tobytes()}
    with pytest.raises(CallError) as caught:
        client.predict("scale", x=wire)
    assert (caught.value.status, caught.value.message) == (
        Status.INVALID_ARGUMENT,
        "field 'x': expected dtype float32, got int64",
    )
    # An array is converted to the declared dtype when that keeps its kind, as documented.
    assert client.predict("scale", x=INT64).tolist() == [[2.0, 4.0, 6.0]]
    result = client.predict("echo", x=wire)
    assert result.dtype == np.int64
    assert result.tolist() == [[1, 2, 3]]
    # The server, not the client, checks that the bytes fit the shape.
    with pytest.raises(CallError) as caught:
        client.predict("echo", x={"shape": [2], "dtype": "int64", "data": INT64.tobytes()})
    assert caught.value.message == "field 'x': shape [2] of int64 needs 16 bytes of data, got 24"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ({"shape": [1], "dtype": "int64"}, "a tensor given as a mapping has the keys shape, dtype and data"),
        ({"shape": [-1], "dtype": "int64", "data": b""}, "its shape must be a list of sizes >= 0, got [-1]"),
        ({"shape": [1], "dtype": np.int64, "data": b""}, "its dtype must be a dtype name such as 'float32'"),
        ({"shape": [1], "dtype": "int64", "data": [1]}, "its data must be bytes, got list"),
    ],
)
def test_a_wire_mapping_that_is_not_one_is_refused(client: SyncClient, wire: dict, reason: str) -> None:
    with pytest.raises(ClientInputError) as caught:
        client.predict("echo", x=wire)
    assert caught.value.message.startswith("refused by the client, nothing sent: input 'x' of model 'echo' ")
    assert reason in caught.value.message
