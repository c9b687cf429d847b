"""The committed descriptor is what ``scripts/build_descriptor.py`` builds from the
committed ``.proto``, and its names and numbers are the protocol's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from blazerpc_oip import SERVICE, Messages, file_descriptor

SCRIPT = Path(__file__).resolve().parents[2] / "plugins" / "blazerpc-oip" / "scripts" / "build_descriptor.py"


def test_committed_descriptor_matches_the_proto() -> None:
    spec = importlib.util.spec_from_file_location("build_descriptor", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == file_descriptor().SerializeToString(deterministic=True)


def test_names_and_numbers_of_the_specification() -> None:
    m = Messages()
    service = m.pool.FindServiceByName(SERVICE)
    assert [x.name for x in service.methods][:6] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    fields = {f.name: f.number for f in m.ModelInferRequest.DESCRIPTOR.fields}
    assert fields == {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "inputs": 5,
        "outputs": 6,
        "raw_input_contents": 7,
    }
    contents = {f.name: f.number for f in m.InferTensorContents.DESCRIPTOR.fields}
    assert contents["bytes_contents"] == 8
    assert contents["fp32_contents"] == 6
    stream = {f.name: f.number for f in m.ModelStreamInferResponse.DESCRIPTOR.fields}
    assert stream == {"error_message": 1, "infer_response": 2}
