"""Run in tritonclient's own environment: every call the tests check, as JSON on stdout.

python triton_client.py ADDRESS
"""

from __future__ import annotations

import json
import queue
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def infer(client: Any, model: str, inputs: list[tuple[str, np.ndarray, str]], **kwargs: Any) -> Any:
    tensors = []
    for name, value, datatype in inputs:
        t = grpcclient.InferInput(name, list(value.shape), datatype)
        t.set_data_from_numpy(value)
        tensors.append(t)
    return client.infer(model, tensors, **kwargs)


def main(address: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    client = grpcclient.InferenceServerClient(address)
    out["live"] = client.is_server_live()
    out["ready"] = client.is_server_ready()
    out["model_ready"] = client.is_model_ready("scale")
    out["server_metadata"] = client.get_server_metadata(as_json=True)
    out["model_metadata"] = client.get_model_metadata("scale", as_json=True)
    out["rows_config"] = client.get_model_config("rows", as_json=True)
    out["tokens_config"] = client.get_model_config("tokens", as_json=True)
    out["index"] = client.get_model_repository_index(as_json=True)

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = infer(client, "scale", [("x", x, "FP32"), ("factor", np.array([2.5]), "FP64")], request_id="req-7")
    out["scale"] = {
        "id": r.get_response().id,
        "result": r.as_numpy("result").tolist(),
        "dtype": str(r.as_numpy("result").dtype),
    }

    r = infer(
        client,
        "count",
        [
            ("values", np.array([1, 2, 2**40], dtype=np.int64), "INT64"),
            ("flags", np.array([True, False]), "BOOL"),
        ],
    )
    out["count"] = {"sum": r.as_numpy("result_0").tolist(), "flags": r.as_numpy("result_1").tolist()}
    # A requested subset of outputs.
    r = infer(
        client,
        "count",
        [("values", np.array([5], dtype=np.int64), "INT64"), ("flags", np.array([True]), "BOOL")],
        outputs=[grpcclient.InferRequestedOutput("result_1")],
    )
    out["count_subset"] = [o.name for o in r.get_response().outputs]

    h = np.array([0.5, -1.25, 3.0], dtype=np.float16)
    r = infer(client, "half", [("x", h, "FP16")], priority=1, timeout=5_000_000)
    out["half"] = {"result": r.as_numpy("result").tolist(), "dtype": str(r.as_numpy("result").dtype)}

    text = np.array(["héllo", "world"], dtype=np.object_)
    blob = np.array([b"\x00abc"], dtype=np.object_)
    r = infer(client, "shout", [("text", text, "BYTES"), ("blob", blob, "BYTES")])
    out["shout"] = {
        "text": [v.decode() for v in r.as_numpy("result_0").tolist()],
        "blob": r.as_numpy("result_1").tolist()[0].hex(),
    }

    # async_infer
    done: queue.Queue[Any] = queue.Queue()
    t = grpcclient.InferInput("x", [3, 1], "FP32")
    t.set_data_from_numpy(np.array([[1], [2], [3]], dtype=np.float32))
    client.async_infer("rows", [t], callback=lambda result, error: done.put((result, error)))
    result, error = done.get(timeout=30)
    out["async_rows"] = None if error else result.as_numpy("result").ravel().tolist()

    # stream: a streaming model, then a unary one on the same stream
    responses: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    p = grpcclient.InferInput("prompt", [1], "BYTES")
    p.set_data_from_numpy(np.array(["tok"], dtype=np.object_))
    n = grpcclient.InferInput("n", [1], "INT64")
    n.set_data_from_numpy(np.array([3], dtype=np.int64))
    client.async_stream_infer("tokens", [p, n], request_id="s1", enable_empty_final_response=True)
    stream_items = []
    while True:
        result, error = responses.get(timeout=30)
        if error is not None:
            stream_items.append({"error": str(error)})
            break
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        value = result.as_numpy("result")
        stream_items.append(
            {
                "id": response.id,
                "final": final,
                "value": None if value is None else value.tolist()[0].decode(),
            }
        )
        if final:
            break
    # An error on the stream arrives as an error, and the stream goes on.
    bad = grpcclient.InferInput("n", [1], "INT32")
    bad.set_data_from_numpy(np.array([3], dtype=np.int32))
    client.async_stream_infer("tokens", [p, bad], request_id="s2")
    result, error = responses.get(timeout=30)
    stream_items.append({"error": str(error) if error else None})
    client.async_stream_infer("tokens", [p, n], request_id="s3")
    for _ in range(3):
        result, error = responses.get(timeout=30)
        response = result.get_response()
        stream_items.append(
            {"id": response.id, "final": response.parameters["triton_final_response"].bool_param}
        )
    client.stop_stream()
    out["stream"] = stream_items

    stats = client.get_inference_statistics("scale", as_json=True)
    out["statistics"] = stats

    errors = {}
    try:
        client.is_model_ready("nope")
    except InferenceServerException as exc:
        errors["unknown_model"] = [exc.status(), exc.message()]
    try:
        infer(client, "scale", [("x", x.astype(np.float64), "FP64"), ("factor", np.array([2.0]), "FP64")])
    except InferenceServerException as exc:
        errors["wrong_datatype"] = [exc.status(), exc.message()]
    out["errors"] = errors
    client.close()
    return out


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout)
