"""tritonclient.grpc against a real ``blaze serve``: every call it makes, with values.

The client script runs once (in tritonclient's own environment); each test checks one
part of what it saw.
"""

from __future__ import annotations

from typing import Any

import pytest
from oip_support import run_client

from blazerpc.testing import ServeProcess


@pytest.fixture(scope="module")
def seen(oip_server: ServeProcess) -> dict[str, Any]:
    result: dict[str, Any] = run_client("tritonclient", "triton_client.py", oip_server.address)
    return result


def test_health_calls(seen: dict[str, Any]) -> None:
    assert seen["live"] is True
    assert seen["ready"] is True
    assert seen["model_ready"] is True


def test_server_metadata_names_the_extensions_implemented(seen: dict[str, Any]) -> None:
    assert seen["server_metadata"] == {
        "name": "blazerpc",
        "version": "0.1.0",
        "extensions": ["model_configuration", "statistics"],
    }


def test_model_metadata_follows_the_mapping_rule(seen: dict[str, Any]) -> None:
    meta = seen["model_metadata"]
    assert meta["name"] == "scale"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": ["2", "3"]},
        {"name": "factor", "datatype": "FP64", "shape": ["1"]},
    ]
    assert meta["outputs"] == [{"name": "result", "datatype": "FP32", "shape": ["2", "3"]}]


def test_model_config_of_a_batched_and_a_streaming_model(seen: dict[str, Any]) -> None:
    rows = seen["rows_config"]["config"]
    assert rows["max_batch_size"] == 256
    assert rows["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": ["1"]}]
    assert rows["output"] == [{"name": "result", "data_type": "TYPE_FP32", "dims": ["1"]}]
    assert rows["dynamic_batching"] == {"max_queue_delay_microseconds": "20000"}
    tokens = seen["tokens_config"]["config"]
    assert "max_batch_size" not in tokens  # 0: not batched
    assert "dynamic_batching" not in tokens
    assert tokens["model_transaction_policy"] == {"decoupled": True}
    assert [i["data_type"] for i in tokens["input"]] == ["TYPE_STRING", "TYPE_INT64"]


def test_repository_index_lists_every_model(seen: dict[str, Any]) -> None:
    names = [m["name"] for m in seen["index"]["models"]]
    assert names == ["scale", "count", "half", "shout", "rows", "calls", "tokens"]
    assert {m["state"] for m in seen["index"]["models"]} == {"READY"}


def test_fp32_tensor_and_fp64_scalar(seen: dict[str, Any]) -> None:
    assert seen["scale"] == {
        "id": "req-7",
        "result": [[0.0, 2.5, 5.0], [7.5, 10.0, 12.5]],
        "dtype": "float32",
    }


def test_int64_and_bool_lists_and_an_output_subset(seen: dict[str, Any]) -> None:
    assert seen["count"] == {"sum": [1 + 2 + 2**40], "flags": [False, True]}
    assert seen["count_subset"] == ["result_1"]


def test_fp16_with_priority_and_timeout_parameters(seen: dict[str, Any]) -> None:
    assert seen["half"] == {"result": [1.0, -2.5, 6.0], "dtype": "float16"}


def test_bytes_as_str_and_as_bytes(seen: dict[str, Any]) -> None:
    assert seen["shout"] == {"text": ["HÉLLO", "WORLD"], "blob": "63626100"}


def test_async_infer_of_a_batched_model(seen: dict[str, Any]) -> None:
    assert seen["async_rows"] == [2.0, 3.0, 4.0]


def test_stream_marks_the_final_response_and_survives_an_error(seen: dict[str, Any]) -> None:
    assert seen["stream"] == [
        {"id": "s1", "final": False, "value": "tok-0"},
        {"id": "s1", "final": False, "value": "tok-1"},
        {"id": "s1", "final": True, "value": "tok-2"},
        {"error": "input 'n': datatype INT32 does not match the model's INT64"},
        {"id": "s3", "final": False},
        {"id": "s3", "final": False},
        {"id": "s3", "final": True},
    ]


def test_statistics_count_the_calls(seen: dict[str, Any]) -> None:
    (stats,) = seen["statistics"]["model_stats"]
    assert stats["name"] == "scale"
    assert stats["version"] == "1"
    assert stats["inference_count"] == "1"
    assert stats["execution_count"] == "1"
    assert stats["inference_stats"]["success"] == {"count": "1"}
    assert int(stats["inference_stats"]["compute_infer"]["ns"]) > 0
    assert stats["batch_stats"][0]["batch_size"] == "1"
    assert int(stats["last_inference"]) > 0


def test_errors_reach_the_client_with_status_and_message(seen: dict[str, Any]) -> None:
    assert seen["errors"] == {
        "unknown_model": [
            "StatusCode.NOT_FOUND",
            "unknown model 'nope'; this server has: calls, count, half, rows, scale, shout, tokens",
        ],
        "wrong_datatype": [
            "StatusCode.INVALID_ARGUMENT",
            "input 'x': datatype FP64 does not match the model's FP32",
        ],
    }
