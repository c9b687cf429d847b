"""grpcurl through reflection: the V2 service is listed, described and callable; health
knows it by name; ``--no-oip`` turns it off."""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
from oip_support import APP, SERVE_ARGS

from blazerpc.testing import ServeProcess, serve_process


def grpcurl_run(
    grpcurl: str, address: str, *args: str, data: object = None
) -> subprocess.CompletedProcess[str]:
    command = [grpcurl, "-plaintext"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, address, *args], capture_output=True, text=True, timeout=60)


def test_list_and_describe(grpcurl: str, oip_server: ServeProcess) -> None:
    listed = grpcurl_run(grpcurl, oip_server.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [
        "blazerpc.InferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "inference.GRPCInferenceService",
    ]
    described = grpcurl_run(grpcurl, oip_server.address, "describe", "inference.GRPCInferenceService")
    assert described.returncode == 0, described.stderr
    assert (
        "rpc ModelStreamInfer ( stream .inference.ModelInferRequest ) returns ( stream " in described.stdout
    )
    assert "// Triton: a model's configuration" in described.stdout  # the .proto's comments
    message = grpcurl_run(grpcurl, oip_server.address, "describe", "inference.ModelInferRequest")
    assert "repeated bytes raw_input_contents = 7;" in message.stdout


def test_call_model_infer_and_health(grpcurl: str, oip_server: ServeProcess) -> None:
    x = np.arange(6, dtype=np.float32)
    request = {
        "model_name": "scale",
        "id": "g1",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 3]},
            {"name": "factor", "datatype": "FP64", "shape": [1], "contents": {"fp64_contents": [2.0]}},
        ],
    }
    # raw for one input and typed for the other is not allowed: send both typed
    request["inputs"][0]["contents"] = {"fp32_contents": x.tolist()}
    done = grpcurl_run(grpcurl, oip_server.address, "inference.GRPCInferenceService/ModelInfer", data=request)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["id"] == "g1"
    assert reply["outputs"] == [{"name": "result", "datatype": "FP32", "shape": ["2", "3"]}]
    raw = base64.b64decode(reply["rawOutputContents"][0])
    assert np.frombuffer(raw, dtype="<f4").tolist() == (x * 2).tolist()
    health = grpcurl_run(
        grpcurl,
        oip_server.address,
        "grpc.health.v1.Health/Check",
        data={"service": "inference.GRPCInferenceService"},
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_no_oip_serves_without_the_protocol(grpcurl: str) -> None:
    with serve_process(APP, "--no-oip", *SERVE_ARGS) as proc:
        listed = grpcurl_run(grpcurl, proc.address, "list")
        called = grpcurl_run(grpcurl, proc.address, "inference.GRPCInferenceService/ServerLive", data={})
    assert "inference.GRPCInferenceService" not in listed.stdout.split()
    assert "blazerpc.InferenceService" in listed.stdout.split()
    assert called.returncode != 0
    assert "inference.GRPCInferenceService" in called.stderr
