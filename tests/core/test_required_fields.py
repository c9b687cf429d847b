"""Required inputs over a real `blaze serve`: a request without a parameter that has no
default is refused with INVALID_ARGUMENT naming it, whatever its type; 0, "" and false
sent explicitly are values. Through grpcurl, a grpcio stub compiled from `blaze proto`,
other languages' protoc output, the Python client and `blaze call`.

Request scalars have presence (proto3 ``optional``) so that "not sent" and "sent 0" differ
on the wire; lists have none: absent and empty are both a list of no items.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpclib.const import Status
from support import app_target

from blazerpc import CallError, Client, SyncClient
from blazerpc.testing import ServeProcess, blaze_command, run_grpcio_client, serve_process

ZEROS = {"t": "", "n": 0, "x": 0.0, "b": False, "raw": ""}
SEEN_ZEROS = repr(("", 0, 0.0, False, b""))


def missing(field: str, proto: str, zero: str) -> str:
    """What a request without required scalar ``field`` is told."""
    return (
        f"field '{field}': is required but was not set: "
        f"send it as {proto} ({zero} is a value; null means not set)"
    )


#: What a request without each of lookup's fields is told.
MISSING = {
    "t": missing("t", "string", '""'),
    "n": missing("n", "int64", "0"),
    "x": missing("x", "double", "0.0"),
    "b": missing("b", "bool", "false"),
    "raw": missing("raw", "bytes", '""'),
}
REQUIRED_SCALAR = (
    '  // Required: a request without it is refused ("optional" gives it presence: 0, "" and false '
    "are values).\n"
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with serve_process(app_target("required_app")) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: ServeProcess) -> Iterator[SyncClient]:
    with server.client(timeout=10) as c:
        yield c


def test_the_batched_model_is_batched(server: ServeProcess) -> None:
    # The batched-path tests below mean something only if `lengths` really is batched.
    lines = [str(e.get("event", "")) for e in server.logs if e.get("model") == "lengths"]
    assert lines
    assert not any("not batched" in line for line in lines), lines


# --- grpcurl ----------------------------------------------------------------------------


def _grpcurl(grpcurl: str, server: ServeProcess, model: str, data: Any) -> subprocess.CompletedProcess[str]:
    command = [grpcurl, "-plaintext", "-d", json.dumps(data), server.address]
    command.append(f"blazerpc.InferenceService/Predict{model}")
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _grpcurl_ok(grpcurl: str, server: ServeProcess, model: str, data: Any) -> Any:
    done = _grpcurl(grpcurl, server, model, data)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _grpcurl_refused(grpcurl: str, server: ServeProcess, model: str, data: Any) -> str:
    """The server's message for a call it refused with INVALID_ARGUMENT."""
    done = _grpcurl(grpcurl, server, model, data)
    assert done.returncode != 0, done.stdout
    assert "Code: InvalidArgument" in done.stderr, done.stderr
    return done.stderr.split("Message: ", 1)[1].strip()


def test_grpcurl_empty_request_is_refused_naming_the_first_field(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_refused(grpcurl, server, "Lookup", {}) == MISSING["t"]


@pytest.mark.parametrize("field", list(ZEROS))
def test_grpcurl_each_missing_scalar_is_named(grpcurl: str, server: ServeProcess, field: str) -> None:
    data = {name: value for name, value in ZEROS.items() if name != field}
    assert _grpcurl_refused(grpcurl, server, "Lookup", data) == MISSING[field]


def test_grpcurl_zero_values_sent_are_values(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_ok(grpcurl, server, "Lookup", ZEROS) == {"result": SEEN_ZEROS}
    sent = {"t": "a", "n": -3, "x": 2.5, "b": True, "raw": "AQI="}
    assert _grpcurl_ok(grpcurl, server, "Lookup", sent) == {"result": repr(("a", -3, 2.5, True, b"\x01\x02"))}


def test_grpcurl_null_for_a_scalar_is_refused_naming_it(grpcurl: str, server: ServeProcess) -> None:
    # grpcurl's JSON reader refuses null for a scalar itself (before sending), naming the
    # field; JSON null that reaches the server (protobuf's JSON, `blaze call`) is "not
    # set", refused below.
    done = _grpcurl(grpcurl, server, "Lookup", {**ZEROS, "n": None})
    assert done.returncode != 0
    assert "cannot set field n to null" in done.stderr


def test_grpcurl_numpy_scalars_are_required_too(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_refused(grpcurl, server, "Narrow", {"f": 1.5}) == missing("k", "int32", "0")
    assert _grpcurl_refused(grpcurl, server, "Narrow", {"k": 0}) == missing("f", "float", "0.0")
    assert _grpcurl_ok(grpcurl, server, "Narrow", {"k": 0, "f": 0}) == {
        "result": repr(("int8", 0, "float32", 0.0))
    }


def test_grpcurl_optional_and_defaulted_inputs_may_be_left_out(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_ok(grpcurl, server, "Options", {}) == {"result": repr((None, None, 1.5, "none"))}
    zeros = {"limit": 0, "label": "", "scale": 0, "note": ""}
    assert _grpcurl_ok(grpcurl, server, "Options", zeros) == {"result": repr((0, "", 0.0, ""))}


def test_grpcurl_tensors_required_and_optional(grpcurl: str, server: ServeProcess) -> None:
    image = {"shape": [2], "dtype": "int64", "data": "AQAAAAAAAAACAAAAAAAAAA=="}
    message = _grpcurl_refused(grpcurl, server, "Tensor", {"k": 1})
    assert message == "field 'image': is required but was not set"
    assert _grpcurl_refused(grpcurl, server, "Tensor", {"image": image}) == missing("k", "int64", "0")
    reply = _grpcurl_ok(grpcurl, server, "Tensor", {"image": image, "k": 0})
    assert reply == {"result": repr(([1, 2], None, 0))}


def test_grpcurl_a_list_left_out_is_an_empty_list(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_ok(grpcurl, server, "Items", {"k": 0}) == {"result": repr(([], 0))}
    assert _grpcurl_ok(grpcurl, server, "Items", {"words": [], "k": 2}) == {"result": repr(([], 2))}
    assert _grpcurl_refused(grpcurl, server, "Items", {"words": ["a"]}).startswith(
        "field 'k': is required but was not set"
    )


def test_grpcurl_batched_model_empty_list_gives_no_rows(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_ok(grpcurl, server, "Lengths", {}) == {}  # grpcurl leaves out an empty list
    assert _grpcurl_ok(grpcurl, server, "Lengths", {"text": []}) == {}
    assert _grpcurl_ok(grpcurl, server, "Lengths", {"text": ["ab", "c"]}) == {"result": ["2", "1"]}


def test_grpcurl_streaming_model_refuses_before_the_stream(grpcurl: str, server: ServeProcess) -> None:
    assert _grpcurl_refused(grpcurl, server, "Countdown", {"label": "x"}) == missing("start", "int64", "0")
    done = _grpcurl(grpcurl, server, "Countdown", {"start": 0})
    assert (done.returncode, done.stdout.strip()) == (0, "")
    done = _grpcurl(grpcurl, server, "Countdown", {"start": 2})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{", '"result":', '"t2"', "}", "{", '"result":', '"t1"', "}"]


def test_reflection_shows_presence_and_which_fields_are_required(grpcurl: str, server: ServeProcess) -> None:
    def describe(symbol: str) -> str:
        command = [grpcurl, "-plaintext", server.address, "describe", symbol]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    lookup = describe("blazerpc.LookupRequest")
    for line in ("optional string t = 1;", "optional int64 n = 2;", "optional bytes raw = 5;"):
        assert REQUIRED_SCALAR + "  " + line in lookup
    options = describe("blazerpc.OptionsRequest")
    assert "Required" not in options
    assert "\n  optional int64 limit = 1;" in options
    tensor = describe("blazerpc.TensorRequest")
    assert "  // Required: a request without it is refused.\n  .blazerpc.TensorProto image = 1;" in tensor
    assert "\n  .blazerpc.TensorProto mask = 2;" in tensor  # optional: no comment
    # Responses are unchanged: no presence for a plain result.
    assert "\n  string result = 1;" in describe("blazerpc.LookupResponse")


# --- `blaze proto`: stubs of other languages ----------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("required_proto")
    done = subprocess.run(
        [*blaze_command(), "proto", app_target("required_app"), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out / "blaze_service.proto"


def test_exported_proto_marks_required_scalars(exported: Path) -> None:
    text = exported.read_text()
    assert REQUIRED_SCALAR + "  optional int64 n = 2;\n" in text
    assert "message OptionsRequest {\n  optional int64 limit = 1;\n" in text
    assert "  repeated string words = 1;\n" in text  # a list: no presence, no comment


def test_protoc_generates_presence_for_cpp_and_java(exported: Path, tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.fail("protoc is not on PATH; install it (apt-get install protobuf-compiler)")
    cpp, java = tmp_path / "cpp", tmp_path / "java"
    cpp.mkdir()
    java.mkdir()
    done = subprocess.run(
        [protoc, f"--proto_path={exported.parent}", f"--cpp_out={cpp}", f"--java_out={java}", exported.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header = (cpp / "blaze_service.pb.h").read_text()
    assert "bool has_n() const;" in header
    assert "bool has_limit() const;" in header
    java_text = "".join(p.read_text() for p in java.rglob("*.java"))
    assert "boolean hasN()" in java_text


@pytest.fixture(scope="module")
def stubs(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("required_stubs")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={exported.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            exported.name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


# argv: the directory of the generated modules, the server's address. Prints JSON: each
# call's result, or [status, details].
STUB_CLIENT = r"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc
from google.protobuf import json_format

import blaze_service_pb2 as pb
import blaze_service_pb2_grpc as pb_grpc


def outcome(call):
    try:
        return call()
    except grpc.RpcError as exc:
        return [exc.code().name, exc.details()]


out = {}
with grpc.insecure_channel(sys.argv[2]) as channel:
    stub = pb_grpc.InferenceServiceStub(channel)
    zeros = pb.LookupRequest(t="", n=0, x=0.0, b=False, raw=b"")
    out["zeros_have_presence"] = [zeros.HasField(f) for f in ("t", "n", "x", "b", "raw")]
    out["empty"] = outcome(lambda: stub.PredictLookup(pb.LookupRequest(), timeout=10).result)
    out["zeros"] = outcome(lambda: stub.PredictLookup(zeros, timeout=10).result)
    no_n = pb.LookupRequest(t="a", x=1.0, b=True, raw=b"r")
    out["no_n"] = outcome(lambda: stub.PredictLookup(no_n, timeout=10).result)
    # protobuf's JSON: null is "not set".
    from_json = json_format.Parse('{"t": null, "n": 0, "x": 0, "b": false, "raw": ""}', pb.LookupRequest())
    out["json_null"] = outcome(lambda: stub.PredictLookup(from_json, timeout=10).result)
    out["options"] = outcome(lambda: stub.PredictOptions(pb.OptionsRequest(), timeout=10).result)
    out["items"] = outcome(lambda: stub.PredictItems(pb.ItemsRequest(k=0), timeout=10).result)
    out["lengths"] = outcome(lambda: list(stub.PredictLengths(pb.LengthsRequest(), timeout=10).result))
    out["countdown_missing"] = outcome(
        lambda: [m.result for m in stub.PredictCountdown(pb.CountdownRequest(), timeout=10)]
    )
    out["countdown_zero"] = outcome(
        lambda: [m.result for m in stub.PredictCountdown(pb.CountdownRequest(start=0), timeout=10)]
    )
print(json.dumps(out))
"""


def test_grpcio_stub_from_the_exported_proto(stubs: Path, server: ServeProcess) -> None:
    done = run_grpcio_client(STUB_CLIENT, str(stubs), server.address)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["zeros_have_presence"] == [True] * 5
    assert out["empty"] == ["INVALID_ARGUMENT", MISSING["t"]]
    assert out["zeros"] == SEEN_ZEROS
    assert out["no_n"] == ["INVALID_ARGUMENT", MISSING["n"]]
    assert out["json_null"] == ["INVALID_ARGUMENT", MISSING["t"]]
    assert out["options"] == repr((None, None, 1.5, "none"))
    assert out["items"] == repr(([], 0))
    assert out["lengths"] == []
    assert out["countdown_missing"] == ["INVALID_ARGUMENT", missing("start", "int64", "0")]
    assert out["countdown_zero"] == []


# --- the Python client and `blaze call` -------------------------------------------------


def test_client_lists_required_inputs_without_optional(client: SyncClient) -> None:
    models = {m.name: m for m in client.models()}
    assert models["lookup"].signature == "(t: string, n: int64, x: double, b: bool, raw: bytes) -> string"
    options = "limit: optional int64, label: optional string, scale: optional double, note: optional string"
    assert models["options"].signature == f"({options}) -> string"
    assert models["countdown"].signature == "(start: int64, label: optional string) -> stream string"
    assert [f.optional for f in models["tensor"].inputs] == [False, False, False]


@pytest.mark.parametrize("field", list(ZEROS))
def test_client_omitted_or_none_input_is_refused_naming_it(client: SyncClient, field: str) -> None:
    given = {"t": "", "n": 0, "x": 0.0, "b": False, "raw": b""}
    for inputs in ({k: v for k, v in given.items() if k != field}, {**given, field: None}):
        with pytest.raises(CallError) as caught:
            client.predict("lookup", inputs)
        assert (caught.value.status, caught.value.message) == (Status.INVALID_ARGUMENT, MISSING[field])


def test_client_zero_values_and_optional_inputs(client: SyncClient) -> None:
    assert client.predict("lookup", t="", n=0, x=0.0, b=False, raw=b"") == SEEN_ZEROS
    assert client.predict("options") == repr((None, None, 1.5, "none"))
    assert client.predict("options", limit=0, label="", scale=0.0, note="") == repr((0, "", 0.0, ""))
    assert client.predict("items", k=0) == repr(([], 0))
    assert client.predict("lengths", text=[]) == []
    assert client.predict("lengths") == []


async def test_async_client_stream_refuses_a_missing_input(server: ServeProcess) -> None:
    async with Client(server.address, timeout=10) as client:
        with pytest.raises(CallError) as caught:
            async for _ in client.stream("countdown", label="x"):
                pass
        assert caught.value.status is Status.INVALID_ARGUMENT
        assert caught.value.message == missing("start", "int64", "0")
        assert [item async for item in client.stream("countdown", start=0)] == []
        assert [item async for item in client.stream("countdown", start=1)] == ["t1"]


@pytest.mark.parametrize("data", ["{}", '{"t": null}', '{"n": 0, "x": 0, "b": false, "raw": ""}'])
def test_blaze_call_names_the_missing_input(server: ServeProcess, data: str) -> None:
    done = subprocess.run(
        [*blaze_command(), "call", server.address, "lookup", "--data", data],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"INVALID_ARGUMENT: {MISSING['t']}"


def test_blaze_call_sends_zero_values(server: ServeProcess) -> None:
    done = subprocess.run(
        [*blaze_command(), "call", server.address, "lookup", "--data", json.dumps(ZEROS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": SEEN_ZEROS}
