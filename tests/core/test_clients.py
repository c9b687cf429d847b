"""Standard gRPC clients against a real `blaze serve`: grpcio (in a subprocess) and grpcurl.

Neither client is given the app's schema: they learn it from the server's reflection
service, as a user's client would.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import numpy as np
import pytest

from blazerpc.testing import ServeProcess, run_grpcio_client

SERVICES = [
    "blazerpc.InferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
]


def _run_json(script: str, *args: str) -> Any:
    """Run a grpcio script in its own interpreter and parse the JSON it prints."""
    done = run_grpcio_client(script, *args)
    assert done.returncode == 0, f"grpcio client failed:\n{done.stderr}"
    return json.loads(done.stdout)


# --- grpcio ----------------------------------------------------------------------------

# argv: address, RPC name, request fields as JSON. Message classes come from reflection.
# Prints the method's description and every reply; an error ends the replies.
GRPCIO_REFLECTION_CALL = r"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

address, rpc_name, fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def plain(message):
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if isinstance(value, bytes):
            value = value.hex()
        elif not isinstance(value, (str, int, float, bool)):
            value = list(value)
        out[field.name] = value
        if field.has_presence:
            out["has_" + field.name] = message.HasField(field.name)
    return out


with grpc.insecure_channel(address) as channel:
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName("blazerpc.InferenceService").FindMethodByName(rpc_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    open_call = channel.unary_stream if method.server_streaming else channel.unary_unary
    call = open_call(
        f"/blazerpc.InferenceService/{rpc_name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    replies, error = [], None
    try:
        if method.server_streaming:
            for reply in call(request_class(**fields), timeout=10):
                replies.append(plain(reply))
        else:
            replies.append(plain(call(request_class(**fields), timeout=10)))
    except grpc.RpcError as exc:
        error = {"code": exc.code().name, "details": exc.details()}

print(json.dumps({
    "request": method.input_type.full_name,
    "request_fields": [f.name for f in method.input_type.fields],
    "response": method.output_type.full_name,
    "server_streaming": method.server_streaming,
    "replies": replies,
    "error": error,
}))
"""

GRPCIO_HEALTH = r"""
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

statuses = {}
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in sys.argv[2:]:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            statuses[service] = "error: " + exc.code().name
print(json.dumps(statuses))
"""

GRPCIO_LIST_SERVICES = r"""
import json
import sys

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

with grpc.insecure_channel(sys.argv[1]) as channel:
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    services = list(database.get_services())
    methods = {name: [m.name for m in pool.FindServiceByName(name).methods] for name in services}
print(json.dumps({"services": services, "methods": methods}))
"""


def _grpcio_call(proc: ServeProcess, rpc: str, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = _run_json(GRPCIO_REFLECTION_CALL, proc.address, rpc, json.dumps(fields))
    return result


def test_grpcio_unary_call_with_reflected_classes(quickstart_server: ServeProcess) -> None:
    result = _grpcio_call(quickstart_server, "PredictSentiment", text=["good", "bad", "meh"])
    assert result["request"] == "blazerpc.SentimentRequest"
    assert result["request_fields"] == ["text"]
    assert result["response"] == "blazerpc.SentimentResponse"
    assert result["server_streaming"] is False
    assert result["error"] is None
    assert len(result["replies"]) == 1
    assert result["replies"][0]["result"] == pytest.approx([0.95, 0.95, 0.95])


@pytest.mark.parametrize(
    ("rpc", "fields", "expected"),
    [
        ("PredictGenerate", {"prompt": "the quick brown fox"}, ["the", "quick", "brown", "fox"]),
        ("PredictCount", {"n": 5}, [0, 1, 2, 3, 4]),
        ("PredictCount", {"n": 0}, []),
    ],
)
def test_grpcio_streaming_call_with_reflected_classes(
    streaming_server: ServeProcess, rpc: str, fields: dict[str, Any], expected: list[Any]
) -> None:
    result = _grpcio_call(streaming_server, rpc, **fields)
    assert result["server_streaming"] is True
    assert result["error"] is None
    assert [reply["result"] for reply in result["replies"]] == expected


def test_grpcio_stream_error_after_some_messages(streaming_server: ServeProcess) -> None:
    result = _grpcio_call(streaming_server, "PredictFailMidway", n=3)
    assert [reply["result"] for reply in result["replies"]] == [0, 1, 2]
    assert result["error"]["code"] == "INTERNAL"
    assert "RuntimeError: stopped after 3" in result["error"]["details"]


def test_grpcio_optional_fields_and_tuple_result(export_server: ServeProcess) -> None:
    # Reflection must carry proto3 `optional` so the client's classes track presence.
    unset = _grpcio_call(export_server, "PredictOptions")
    assert unset["request_fields"] == ["limit", "label", "scale", "note"]
    assert unset["error"] is None
    assert unset["replies"] == [
        {
            "result_0": "limit=None label=None scale=1.5 note=none",
            "result_1": 0,
            "has_result_1": False,
        }
    ]
    zeros = _grpcio_call(export_server, "PredictOptions", limit=0, label="", scale=0.0)
    assert zeros["replies"] == [
        {"result_0": "limit=0 label= scale=0.0 note=none", "result_1": 0, "has_result_1": True}
    ]


def test_grpcio_invalid_input_is_invalid_argument(export_server: ServeProcess) -> None:
    result = _grpcio_call(export_server, "PredictNumeric", x=1.0, small=300)
    assert result["replies"] == []
    assert result["error"]["code"] == "INVALID_ARGUMENT"
    assert "small" in result["error"]["details"]
    assert "out of range for int8" in result["error"]["details"]


def test_grpcio_health_check(quickstart_server: ServeProcess) -> None:
    statuses = _run_json(
        GRPCIO_HEALTH, quickstart_server.address, "", "blazerpc.InferenceService", "nope.Service"
    )
    assert statuses == {
        "": "SERVING",
        "blazerpc.InferenceService": "SERVING",
        "nope.Service": "error: NOT_FOUND",
    }


def test_grpcio_reflection_lists_exactly_the_services(quickstart_server: ServeProcess) -> None:
    listing = _run_json(GRPCIO_LIST_SERVICES, quickstart_server.address)
    assert sorted(listing["services"]) == SERVICES
    assert len(listing["services"]) == len(SERVICES)
    # Each listed service resolves through reflection to its real definition.
    assert listing["methods"] == {
        "blazerpc.InferenceService": ["PredictSentiment"],
        "grpc.health.v1.Health": ["Check", "Watch"],
        "grpc.reflection.v1.ServerReflection": ["ServerReflectionInfo"],
        "grpc.reflection.v1alpha.ServerReflection": ["ServerReflectionInfo"],
    }


# --- grpcurl ---------------------------------------------------------------------------


def _grpcurl(
    grpcurl: str, proc: ServeProcess, *args: str, data: Any = None, options: tuple[str, ...] = ()
) -> str:
    """Run grpcurl with reflection only (no .proto files); returns its stdout."""
    command = [grpcurl, "-plaintext", *options]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [proc.address, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


def _json_stream(text: str) -> list[Any]:
    """The JSON values grpcurl printed one after another."""
    decoder = json.JSONDecoder()
    values, index = [], 0
    text = text.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        values.append(value)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return values


def test_grpcurl_list(grpcurl: str, quickstart_server: ServeProcess) -> None:
    assert _grpcurl(grpcurl, quickstart_server, "list").split() == SERVICES


def test_grpcurl_list_service_methods(grpcurl: str, streaming_server: ServeProcess) -> None:
    out = _grpcurl(grpcurl, streaming_server, "list", "blazerpc.InferenceService")
    assert sorted(out.split()) == [
        "blazerpc.InferenceService.PredictCount",
        "blazerpc.InferenceService.PredictFailMidway",
        "blazerpc.InferenceService.PredictGenerate",
    ]


def test_grpcurl_describe_service(grpcurl: str, quickstart_server: ServeProcess) -> None:
    out = _grpcurl(grpcurl, quickstart_server, "describe", "blazerpc.InferenceService")
    assert out.splitlines()[0] == "blazerpc.InferenceService is a service:"
    assert (
        '  // Model "sentiment", version "1".\n'
        "  rpc PredictSentiment ( .blazerpc.SentimentRequest ) returns ( .blazerpc.SentimentResponse );"
    ) in out


def test_grpcurl_describe_streaming_service(grpcurl: str, streaming_server: ServeProcess) -> None:
    out = _grpcurl(grpcurl, streaming_server, "describe", "blazerpc.InferenceService")
    assert (
        "rpc PredictGenerate ( .blazerpc.GenerateRequest ) returns ( stream .blazerpc.GenerateResponse );"
        in out
    )
    assert "rpc PredictCount ( .blazerpc.CountRequest ) returns ( stream .blazerpc.CountResponse );" in out


def test_grpcurl_describe_messages(grpcurl: str, quickstart_server: ServeProcess) -> None:
    request = _grpcurl(grpcurl, quickstart_server, "describe", "blazerpc.SentimentRequest")
    assert request.splitlines()[0] == "blazerpc.SentimentRequest is a message:"
    assert "message SentimentRequest {" in request
    assert "repeated string text = 1;" in request
    response = _grpcurl(grpcurl, quickstart_server, "describe", "blazerpc.SentimentResponse")
    assert "repeated double result = 1;" in response


def test_grpcurl_describe_optional_and_tensor_fields(grpcurl: str, export_server: ServeProcess) -> None:
    options = _grpcurl(grpcurl, export_server, "describe", "blazerpc.OptionsRequest")
    for line in (
        "optional int64 limit = 1;",
        "optional string label = 2;",
        "optional double scale = 3;",
        "optional string note = 4;",
    ):
        assert line in options
    tensors = _grpcurl(grpcurl, export_server, "describe", "blazerpc.TensorsRequest")
    # The comments say what the TensorProto type cannot: each tensor's dtype and shape.
    required = "  // Required: a request without it is refused.\n"
    assert "  // float32, shape [batch, 3]\n" + required + "  .blazerpc.TensorProto batch = 1;" in tensors
    assert "  // any dtype, any shape\n" + required + "  .blazerpc.TensorProto extra = 2;" in tensors
    tensor = _grpcurl(grpcurl, export_server, "describe", "blazerpc.TensorProto")
    for line in ("repeated int64 shape = 1;", "string dtype = 2;", "bytes data = 3;"):
        assert line in tensor


def test_grpcurl_unary_call(grpcurl: str, quickstart_server: ServeProcess) -> None:
    out = _grpcurl(
        grpcurl, quickstart_server, "blazerpc.InferenceService/PredictSentiment", data={"text": ["good"]}
    )
    (reply,) = _json_stream(out)
    assert set(reply) == {"result"}
    assert reply["result"] == pytest.approx([0.95])


def test_grpcurl_unary_call_with_several_inputs(grpcurl: str, quickstart_server: ServeProcess) -> None:
    out = _grpcurl(
        grpcurl,
        quickstart_server,
        "blazerpc.InferenceService/PredictSentiment",
        data={"text": ["good", "bad", "meh"]},
    )
    assert _json_stream(out) == [{"result": pytest.approx([0.95, 0.95, 0.95])}]


def test_grpcurl_streaming_call_prints_each_message(grpcurl: str, streaming_server: ServeProcess) -> None:
    out = _grpcurl(
        grpcurl,
        streaming_server,
        "blazerpc.InferenceService/PredictGenerate",
        data={"prompt": "the quick brown fox"},
    )
    assert _json_stream(out) == [
        {"result": "the"},
        {"result": "quick"},
        {"result": "brown"},
        {"result": "fox"},
    ]


def test_grpcurl_streaming_int64_results(grpcurl: str, streaming_server: ServeProcess) -> None:
    out = _grpcurl(
        grpcurl,
        streaming_server,
        "blazerpc.InferenceService/PredictCount",
        data={"n": 3},
        options=("-emit-defaults",),
    )
    # proto3 JSON writes int64 as strings.
    assert _json_stream(out) == [{"result": "0"}, {"result": "1"}, {"result": "2"}]


def test_grpcurl_streaming_error_status(grpcurl: str, streaming_server: ServeProcess) -> None:
    command = [
        grpcurl,
        "-plaintext",
        "-format-error",
        "-d",
        json.dumps({"n": 2}),
        streaming_server.address,
        "blazerpc.InferenceService/PredictFailMidway",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 64 + 13  # grpcurl exits with 64 + the status code (INTERNAL)
    assert _json_stream(done.stdout) == [{}, {"result": "1"}]
    error = json.loads(done.stderr)
    assert error["code"] == 13
    assert "RuntimeError: stopped after 2" in error["message"]


@pytest.mark.parametrize("service", ["", "blazerpc.InferenceService"])
def test_grpcurl_health_check(grpcurl: str, quickstart_server: ServeProcess, service: str) -> None:
    out = _grpcurl(grpcurl, quickstart_server, "grpc.health.v1.Health/Check", data={"service": service})
    assert _json_stream(out) == [{"status": "SERVING"}]


def test_grpcurl_tensor_call(grpcurl: str, export_server: ServeProcess) -> None:
    batch = np.arange(6, dtype="<f4").reshape(2, 3)
    extra = np.array([[1, 2], [3, 4]], dtype="<i2")

    def tensor(array: Any) -> dict[str, Any]:
        return {
            "shape": list(array.shape),
            "dtype": array.dtype.name,
            "data": base64.b64encode(array.tobytes()).decode(),
        }

    out = _grpcurl(
        grpcurl,
        export_server,
        "blazerpc.InferenceService/PredictTensors",
        data={"batch": tensor(batch), "extra": tensor(extra)},
    )
    (reply,) = _json_stream(out)
    sums = reply["result0"]
    assert sums["shape"] == ["2"]
    assert sums["dtype"] == "float32"
    assert np.frombuffer(base64.b64decode(sums["data"]), dtype="<f4").tolist() == [3.0, 12.0]
    doubled = reply["result1"]
    assert doubled["shape"] == ["2", "2"]
    assert doubled["dtype"] == "int16"
    assert np.frombuffer(base64.b64decode(doubled["data"]), dtype="<i2").tolist() == [2, 6, 4, 8]
    assert reply["result2"] == "4"
