"""blazerpc.Client and SyncClient against real `blaze serve` processes: the schema comes
from reflection alone (these tests never import the apps they call)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from support import APPS, QUICKSTART, app_target, certificates, load_app_module

from blazerpc import BlazeApp, CallError, Client, ClientInputError, SyncClient
from blazerpc.client._schema import ServiceSchema
from blazerpc.testing import ServeProcess, serve_app, serve_process


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    with serve_process(app_target("client_app")) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(served: ServeProcess) -> Iterator[SyncClient]:
    with served.client(timeout=10) as c:  # blazerpc.testing's way to a SyncClient
        yield c


@pytest.fixture(scope="module")
def types_client(types_server: ServeProcess) -> Iterator[SyncClient]:
    with SyncClient(types_server.address, timeout=10) as c:
        yield c


def _error(call: object, *args: object, **kwargs: object) -> CallError:
    with pytest.raises(CallError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def _refused(call: object, *args: object, **kwargs: object) -> str:
    """The message of the client's refusal, without its prefix."""
    with pytest.raises(ClientInputError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.message.startswith(ClientInputError.PREFIX)
    return caught.value.message.removeprefix(ClientInputError.PREFIX)


# --- what the client learns -------------------------------------------------------------


def test_models_come_from_reflection_with_names_versions_and_signatures(client: SyncClient) -> None:
    listed = {(m.name, m.version): m for m in client.models()}
    assert set(listed) == {
        ("sentiment", "1"),
        ("sentiment", "2"),
        ("text-embed", "1.5"),
        ("scale", "1"),
        ("sleepy", "1"),
        ("flaky", "1"),
        ("words", "1"),
    }
    assert listed["sentiment", "2"].rpc == "PredictSentimentV2"
    assert listed["text-embed", "1.5"].path == "/blazerpc.InferenceService/PredictTextEmbedV1_5"
    assert listed["scale", "1"].signature == "(x: float32[batch, 3], factor: double) -> float32[batch, 3]"
    assert listed["words", "1"].signature == "(text: string) -> stream string"
    assert listed["words", "1"].streaming
    x = listed["scale", "1"].inputs[0]
    assert (x.name, x.type, x.dtype, x.dims) == ("x", "tensor", "float32", ("batch", 3))
    assert listed["sleepy", "1"].doc == "Sleeps for `seconds`, then returns them."


def test_a_server_without_schema_comments_is_still_callable_by_its_rpc_names() -> None:
    app = _load_schema_file()
    app.ClearField("source_code_info")
    schema = ServiceSchema([app])
    assert {m.name for m in schema.models} >= {"sentiment", "sentiment_v2", "text_embed_v1_5"}
    assert schema.find("sentiment", "2").info.rpc == "PredictSentimentV2"
    assert schema.find("text-embed", "1.5").info.rpc == "PredictTextEmbedV1_5"
    assert schema.find("scale").info.inputs[0].dtype is None  # not documented: any dtype


def _load_schema_file() -> FileDescriptorProto:
    return load_app_module(APPS / "client_app.py").app.schema().file


# --- calls ------------------------------------------------------------------------------


def test_predict_returns_the_result_value(client: SyncClient) -> None:
    assert client.predict("sentiment", text=["good", "bad"]) == [0.95, 0.95]


def test_versions_are_chosen_by_name(client: SyncClient) -> None:
    assert client.predict("sentiment", text=["x"]) == [0.95]  # the unversioned RPC
    assert client.predict("sentiment", version="1", text=["x"]) == [0.95]
    assert client.predict("sentiment", version="2", text=["x"]) == [0.5]
    assert client.predict("text-embed", text=["abc"]).tolist() == [[3, 1, 2, 3]]  # its only version
    error = _error(client.predict, "sentiment", version="3", text=["x"])
    assert error.status is Status.UNIMPLEMENTED
    assert "model 'sentiment' version '3'" in error.message
    assert "its versions: 1, 2" in error.message


def test_tensors_go_as_arrays_and_come_back_as_read_only_arrays(client: SyncClient) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    result = client.predict("scale", x=x, factor=2.0)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, x * 2)
    assert not result.flags.writeable


def test_nested_lists_become_the_declared_dtype(client: SyncClient) -> None:
    result = client.predict("scale", x=[[1, 2, 3]], factor=0.5)  # ints, declared float32
    assert result.dtype == np.float32
    assert result.tolist() == [[0.5, 1.0, 1.5]]
    np.testing.assert_array_equal(client.predict("scale", x=np.ones((1, 3)), factor=1), [[1, 1, 1]])


def test_a_value_that_would_change_kind_is_refused_before_sending(types_client: SyncClient) -> None:
    message = _refused(types_client.predict, "fixed", x=[[1.5, 2, 3], [4, 5, 6]])  # declared int32
    assert message == (
        "input 'x' of model 'fixed' expects int32[2, 3], got [[1.5, 2, 3], [4, 5, 6]] (list): "
        "expected int32 values, got float64"
    )


def test_python_ints_fill_an_unsigned_tensor_when_every_value_fits(types_client: SyncClient) -> None:
    result = types_client.predict("invert", image=[[0, 255], [1, 2]])  # int64 from numpy, declared uint8
    assert result.dtype == np.uint8
    assert result.tolist() == [[255, 0], [254, 253]]
    message = _refused(types_client.predict, "invert", image=[[0, 256]])
    assert message.startswith("input 'image' of model 'invert' expects uint8[")
    assert message.endswith(
        "got [[0, 256]] (list): int64 values out of range for uint8: 256 is outside uint8's [0, 255]"
    )
    assert _refused(types_client.predict, "invert", image=[[-1, 0]]).endswith(
        "-1 is outside uint8's [0, 255]"
    )


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        (
            "fixed",
            {"x": [[2**40, 0, 0], [0, 0, 0]]},
            "input 'x' of model 'fixed' expects int32[2, 3], got [[1099511627776, 0, 0], [0, 0, 0]] "
            "(list): int64 values out of range for int32: "
            "1099511627776 is outside int32's [-2147483648, 2147483647]",
        ),
        (
            "affine",
            {"x": [[1e40, 0, 0]], "w": [[1], [1], [1]]},
            "input 'x' of model 'affine' expects float32[batch, 3], got [[1e+40, 0, 0]] (list): "
            "float64 values too large for float32: "
            "1e+40 would become inf in float32 (largest finite: 3.40282e+38)",
        ),
    ],
)
def test_a_value_the_declared_dtype_cannot_hold_is_refused_before_sending(
    types_client: SyncClient, model: str, inputs: dict, message: str
) -> None:
    assert _refused(types_client.predict, model, inputs) == message


def test_inputs_as_a_mapping_for_names_that_clash_with_arguments(client: SyncClient) -> None:
    assert client.predict("sleepy", {"seconds": 0.0}) == 0.0


@pytest.mark.parametrize(
    ("model", "inputs", "expected"),
    [
        ("echo_str", {"value": "héllo"}, "olléh"),
        ("echo_int", {"value": 2**40}, 2**40 + 1),
        ("echo_float", {"value": 1.25}, 2.5),
        ("echo_bool", {"value": True}, False),
        ("echo_bytes", {"value": b"\x00\xff"}, b"\xff\x00"),
        ("echo_async", {"value": "up"}, "UP"),
        ("numpy_list_result", {"n": 2}, [-2, -1, 0, 1]),
    ],
)
def test_scalars_and_lists(types_client: SyncClient, model: str, inputs: dict, expected: object) -> None:
    assert types_client.predict(model, inputs) == expected


def test_several_results_come_back_as_a_dict_by_field_name(types_client: SyncClient) -> None:
    assert types_client.predict("split_words", text="a b") == {
        "result_0": "A B",
        "result_1": 2,
        "result_2": ["a", "b"],
    }
    assert types_client.predict("stats", values=[1.0, 3.0]) == {"total": 4.0, "count": 2, "mean": 2.0}
    assert types_client.predict("single_dataclass", value=4) == {"doubled": 8}
    summary = types_client.predict("summarize", x=np.array([1.0, 3.0]), label="ab")
    assert summary["label"] == "ba"
    assert summary["normalized"].tolist() == [0.0, 1.0]


def test_optional_fields_present_and_absent(types_client: SyncClient) -> None:
    assert types_client.predict("optional", number=None, text=None, ratio=None, flag=None, blob=None) == {
        f"result_{i}": None for i in range(5)
    }
    present = types_client.predict("optional", number=0, text="ab", ratio=0.0, flag=False, blob=b"")
    assert present == {"result_0": 1, "result_1": "ba", "result_2": 0.0, "result_3": True, "result_4": b""}
    assert types_client.predict("maybe_tensor") is None
    assert types_client.predict("maybe_tensor", x=[1, 2]).tolist() == [2.0, 3.0]  # x + 1


@pytest.mark.parametrize(
    "dtype",
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ],
)
def test_tensors_of_every_dtype_round_trip(types_client: SyncClient, dtype: str) -> None:
    x = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    result = types_client.predict("double", x=x)
    assert result.dtype == x.dtype
    np.testing.assert_array_equal(result, x + x)


def test_keyword_only_parameters(types_client: SyncClient) -> None:
    assert types_client.predict("keyword_only", text="a", times=3) == "a-a-a"


# --- streaming ---------------------------------------------------------------------------


def test_stream_yields_each_message(client: SyncClient) -> None:
    assert list(client.stream("words", text="one two three")) == ["one", "two", "three"]


def test_leaving_a_stream_early_ends_the_call(client: SyncClient) -> None:
    words = client.stream("words", text="a b c d")
    assert next(words) == "a"
    words.close()  # cancels the call; the client stays usable
    assert client.predict("sentiment", text=["x"]) == [0.95]


async def test_an_error_in_the_middle_of_a_stream_raises_after_the_messages_before_it() -> None:
    async def run(address: str) -> tuple[list[object], CallError]:
        got: list[object] = []

        async def consume(client: Client) -> None:
            async for item in client.stream("fail_midway", n=3):
                got.append(item)

        async with Client(address, timeout=10) as client:
            with pytest.raises(CallError) as caught:
                await consume(client)
        return got, caught.value

    with serve_process(app_target("streaming")) as proc:
        got, error = await run(proc.address)
    assert got == [0, 1, 2]
    assert error.status is Status.INTERNAL


def test_predict_on_a_streaming_model_says_to_use_stream(client: SyncClient) -> None:
    assert "use client.stream()" in _refused(client.predict, "words", text="a")


# --- errors, timeouts, metadata ----------------------------------------------------------


def test_the_servers_status_and_message_come_back_as_call_error(client: SyncClient) -> None:
    error = _error(client.predict, "scale", x=np.ones((2, 4), np.float32), factor=1.0)
    assert error.status is Status.INVALID_ARGUMENT
    assert error.code == "INVALID_ARGUMENT"
    assert error.message == "field 'x': expected shape float32[batch, 3], got shape [2, 4]"
    assert str(error) == f"INVALID_ARGUMENT: {error.message}"
    assert isinstance(error, GRPCError)  # code catching grpclib's errors catches it too
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.message) == (error.status, error.message)


def test_an_unknown_model_or_input_is_named(client: SyncClient) -> None:
    error = _error(client.predict, "nosuch")
    assert error.status is Status.UNIMPLEMENTED
    assert error.message.startswith("the server does not serve model 'nosuch'; it serves: sentiment, ")
    assert "text-embed v1.5" in error.message
    message = _refused(client.predict, "sentiment", txt=["x"])
    assert message == "model 'sentiment' has no input 'txt' (its inputs: text)"


def test_metadata_reaches_the_servers_middleware(served: ServeProcess) -> None:
    with SyncClient(served.address, metadata={"x-deny": "by default"}) as denied:
        error = _error(denied.predict, "sentiment", text=["x"])
        assert (error.status, error.message) == (Status.PERMISSION_DENIED, "denied: by default")
        # A call's own metadata is sent after the client's.
        error = _error(denied.predict, "sentiment", text=["x"], metadata=[("x-deny", "per call")])
        assert error.status is Status.PERMISSION_DENIED


def test_a_call_past_its_timeout_is_deadline_exceeded(client: SyncClient) -> None:
    error = _error(client.predict, "sleepy", seconds=5.0, timeout=0.2)
    assert error.status is Status.DEADLINE_EXCEEDED
    assert client.predict("sleepy", seconds=0.01, timeout=5) == 0.01


def test_a_server_that_is_not_there_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with SyncClient(f"127.0.0.1:{port}", timeout=5) as client:
        error = _error(client.predict, "sentiment", text=["x"])
    assert error.status is Status.UNAVAILABLE
    assert f"cannot reach 127.0.0.1:{port}" in error.message


async def test_a_server_without_models_of_ours_is_unimplemented(types_server: ServeProcess) -> None:
    client = Client(types_server.address)
    try:
        with pytest.raises(CallError) as caught:
            await client.predict("sentiment", text=["x"])
        error = caught.value
    finally:
        client.close()
    assert error.status is Status.UNIMPLEMENTED
    assert "does not serve model 'sentiment'" in error.message


# --- async client, concurrency, event loops ---------------------------------------------


async def test_async_client_serves_concurrent_calls_over_one_connection(served: ServeProcess) -> None:
    async with Client(served.address, timeout=10) as client:
        got = await asyncio.gather(*[client.predict("sleepy", seconds=0.2) for _ in range(20)])
    assert got == [0.2] * 20


async def test_sync_client_works_from_threads_and_inside_a_running_loop(client: SyncClient) -> None:
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.predict("sentiment", text=["x"])))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[0.95]] * 8

    got = client.predict("sentiment", text=["y"])
    assert got == [0.95]


def test_a_closed_sync_client_refuses_calls(served: ServeProcess) -> None:
    client = SyncClient(served.address)
    assert client.predict("sentiment", text=["x"]) == [0.95]
    client.close()
    client.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        client.predict("sentiment", text=["x"])


async def test_serve_app_gives_a_client_to_the_server_it_started() -> None:
    app = BlazeApp()

    @app.model("double")
    async def double(x: int) -> int:
        return 2 * x

    async with serve_app(app) as server, server.client(timeout=5) as client:
        got = await client.predict("double", x=21)
    assert got == 42


# --- TLS ---------------------------------------------------------------------------------


def test_tls_and_mutual_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = certificates(tmp_path)
    server_tls = ("--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]))
    with serve_process(f"{QUICKSTART}:app", *server_tls) as proc:
        with SyncClient(proc.address, ca_file=str(certs["ca"]), timeout=10) as client:
            assert client.predict("sentiment", text=["good"]) == [0.95]
        monkeypatch.setenv("SSL_CERT_FILE", str(certs["ca"]))  # the test CA as the system's
        with SyncClient(f"https://{proc.address}", timeout=10) as client:  # https:// turns TLS on
            assert client.predict("sentiment", text=["good"]) == [0.95]
        with SyncClient(proc.address, timeout=10) as plaintext:  # TLS server, plaintext client
            assert _error(plaintext.predict, "sentiment", text=["x"]).status is Status.UNAVAILABLE
    mutual = (*server_tls, "--ssl-ca-certs", str(certs["ca"]))
    with serve_process(f"{QUICKSTART}:app", *mutual) as proc:
        with SyncClient(
            proc.address,
            ca_file=str(certs["ca"]),
            cert_file=str(certs["client"]),
            key_file=str(certs["client-key"]),
            timeout=10,
        ) as client:
            assert client.predict("sentiment", text=["good"]) == [0.95]
        with SyncClient(proc.address, ca_file=str(certs["ca"]), timeout=10) as anonymous:
            assert _error(anonymous.predict, "sentiment", text=["x"]).status is Status.UNAVAILABLE


def test_tls_arguments_that_contradict_each_other_are_refused(tmp_path: Path) -> None:
    context = ssl.create_default_context()
    with pytest.raises(ValueError, match="ca_file cannot go with ssl=False"):
        Client("127.0.0.1:1", ssl=False, ca_file="ca.pem")
    with pytest.raises(ValueError, match="cert_file, key_file cannot go with an ssl context"):
        Client("127.0.0.1:1", ssl=context, cert_file="c.pem", key_file="k.pem")
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        Client("127.0.0.1:1", key_file="k.pem")
    with pytest.raises(ValueError, match="is https:// but ssl=False"):
        Client("https://127.0.0.1:1", ssl=False)
    with pytest.raises(ValueError, match="bad port in address 'localhost:http'"):
        Client("localhost:http")
    with pytest.raises(FileNotFoundError):  # TLS files are loaded when the client is made
        Client("127.0.0.1:1", ca_file=str(tmp_path / "missing.pem"))


async def test_client_metadata_goes_with_the_discovery_too() -> None:
    """A proxy or server that wants credentials on every call sees them on the
    reflection call as well (grpclib's RecvRequest event shows what arrived)."""
    from grpclib.events import RecvRequest, listen

    from blazerpc.server import BlazeServer

    app = BlazeApp()

    @app.model("echo")
    def echo(text: str) -> str:
        return text

    seen: list[tuple[str, str | None]] = []

    async def record(event: RecvRequest) -> None:
        seen.append((event.method_name, dict(event.metadata).get("authorization")))

    server = BlazeServer(app, options={"access_log": False})
    info = await server.start("127.0.0.1", 0)
    listen(server._server, RecvRequest, record)
    try:
        async with Client(info.address, timeout=10, metadata={"authorization": "Bearer t"}) as client:
            got = await client.predict("echo", text="hi")
    finally:
        await server.stop()
    assert got == "hi"
    assert seen == [
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "Bearer t"),
        ("/blazerpc.InferenceService/PredictEcho", "Bearer t"),
    ]
