"""`blaze call` and `blaze bench`, run for real against real `blaze serve` processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import QUICKSTART, app_target, certificates

from blazerpc import BlazeApp
from blazerpc.bench._loop import Target, open_channel, run_level
from blazerpc.testing import ServeProcess, blaze_command, serve_app, serve_process


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    with serve_process(app_target("client_app"), "--no-access-log") as proc:
        yield proc


def blaze(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*blaze_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
        check=False,
    )


def call(proc: ServeProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return blaze("call", proc.address, *args, stdin=stdin)


def ok_json(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


# --- blaze call ---------------------------------------------------------------------------


def test_call_prints_the_response_as_json(served: ServeProcess) -> None:
    done = call(served, "sentiment", "--data", '{"text": ["good", "bad"]}')
    assert done.stdout == '{"result": [0.95, 0.95]}\n'
    assert ok_json(done) == {"result": [0.95, 0.95]}


def test_call_reads_data_from_a_file_or_standard_input(served: ServeProcess, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"text": ["a"]}')
    assert ok_json(call(served, "sentiment", "--data", f"@{request}")) == {"result": [0.95]}
    assert ok_json(call(served, "sentiment", "-d", "@-", stdin='{"text": ["a", "b"]}')) == {
        "result": [0.95, 0.95]
    }


def test_call_chooses_versions(served: ServeProcess) -> None:
    assert ok_json(call(served, "sentiment", "--version", "2", "-d", '{"text": ["a"]}')) == {"result": [0.5]}
    result = ok_json(call(served, "text-embed", "-d", '{"text": ["abcde"]}'))
    assert result == {"result": [[5.0, 1.0, 2.0, 3.0]]}


def test_tensors_as_nested_lists_in_and_out(served: ServeProcess) -> None:
    # ints for a float32 field; 0.1 prints as 0.1, the float32 read back, not 0.10000000149011612
    result = ok_json(call(served, "scale", "-d", '{"x": [[0.05, 1, 2]], "factor": 2}'))
    assert result == {"result": [[0.1, 2.0, 4.0]]}


def test_tensors_as_shape_dtype_and_base64_both_ways(served: ServeProcess) -> None:
    x = np.array([[0.1, -2.5, 3e-8], [4, 5, 6]], dtype=np.float32)
    tensor = {"shape": [2, 3], "dtype": "float32", "data_base64": base64.b64encode(x.tobytes()).decode()}
    done = call(served, "scale", "-d", json.dumps({"x": tensor, "factor": 3}), "--tensors", "base64")
    result = ok_json(done)["result"]  # type: ignore[index]
    assert (result["shape"], result["dtype"]) == ([2, 3], "float32")
    got = np.frombuffer(base64.b64decode(result["data_base64"]), np.float32).reshape(2, 3)
    np.testing.assert_array_equal(got, x * np.float32(3))  # bit for bit
    typed = {"dtype": "float32", "data": [[1, 2, 3]]}
    assert ok_json(call(served, "scale", "-d", json.dumps({"x": typed, "factor": 1}))) == {
        "result": [[1.0, 2.0, 3.0]]
    }


def test_every_kind_of_field_through_json(types_server: ServeProcess) -> None:
    blob = base64.b64encode(b"\x00\x01\xff").decode()
    result = ok_json(
        call(
            types_server,
            "optional",
            "-d",
            json.dumps({"number": 41, "text": "ab", "ratio": None, "flag": False, "blob": blob}),
        )
    )
    assert result == {
        "result_0": 42,
        "result_1": "ba",
        "result_2": None,
        "result_3": True,
        "result_4": base64.b64encode(b"\xff\x01\x00").decode(),
    }
    assert ok_json(call(types_server, "stats", "-d", '{"values": [1, 2, 3]}')) == {
        "total": 6.0,
        "count": 3,
        "mean": 2.0,
    }
    lists = ok_json(call(types_server, "double", "-d", '{"x": {"dtype": "complex64", "data": [[1, 2]]}}'))
    assert lists == {"result": [[[2.0, 0.0], [4.0, 0.0]]]}  # complex: [real, imaginary]
    special = ok_json(call(types_server, "echo_float", "-d", '{"value": 1e308}'))
    assert special == {"result": "Infinity"}  # JSON has no infinity: protobuf's JSON spelling


def test_a_streaming_model_prints_one_line_per_message(served: ServeProcess) -> None:
    done = call(served, "words", "-d", '{"text": "one two three"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['{"result": "one"}', '{"result": "two"}', '{"result": "three"}']


def test_a_failed_call_prints_its_status_and_exits_1(served: ServeProcess) -> None:
    done = call(served, "scale", "-d", '{"x": [[1, 2]], "factor": 1}')
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "INVALID_ARGUMENT: field 'x': expected shape float32[batch, 3], got shape [1, 2]\n"
    done = call(served, "nope")
    assert done.returncode == 1
    assert done.stderr.startswith("UNIMPLEMENTED: the server does not serve model 'nope'; it serves: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{nope", "Error: --data is not valid JSON: "),
        ("[1]", "Error: --data must be a JSON object of the inputs, got list"),
        (
            '{"txt": ["a"]}',
            "Error: refused by the client, nothing sent: model 'sentiment' has no input 'txt' "
            "(its inputs: text)",
        ),
        (
            '{"text": "a"}',
            "Error: refused by the client, nothing sent: input 'text' of model 'sentiment' expects "
            "list[string], got 'a' (str)",
        ),
        ("@/no/such/file.json", "Error: cannot read --data file '/no/such/file.json': "),
    ],
)
def test_bad_data_is_explained(served: ServeProcess, data: str, message: str) -> None:
    done = call(served, "sentiment", "-d", data)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            {"shape": [2], "dtype": "float32", "data_base64": "AAAA"},
            "data_base64 holds 3 bytes; shape [2] of ",
        ),
        ({"shape": [2], "dtype": "float99", "data_base64": ""}, "unknown tensor dtype 'float99'"),
        ({"dtype": "float32"}, "a tensor object needs data (nested lists) or data_base64"),
        ({"shape": [1], "dtype": "float32", "data_base64": "!!"}, "data_base64 is not valid base64"),
    ],
)
def test_bad_tensor_objects_are_explained(served: ServeProcess, tensor: dict, message: str) -> None:
    done = call(served, "scale", "-d", json.dumps({"x": tensor, "factor": 1}))
    assert done.returncode == 1
    refused = "Error: refused by the client, nothing sent: input 'x' of model 'scale' expects "
    assert done.stderr.startswith(refused + "float32[batch, 3], got {"), done.stderr
    assert f" (dict): {message}" in done.stderr


def test_json_integers_for_a_uint8_tensor(types_server: ServeProcess) -> None:
    assert ok_json(call(types_server, "invert", "-d", '{"image": [[0, 255]]}')) == {"result": [[255, 0]]}
    typed = {"image": {"dtype": "uint8", "data": [[3, 4]]}}
    assert ok_json(call(types_server, "invert", "-d", json.dumps(typed))) == {"result": [[252, 251]]}


def test_a_tensor_object_whose_values_its_dtype_cannot_hold(types_server: ServeProcess) -> None:
    done = call(types_server, "double", "-d", '{"x": {"dtype": "int8", "data": [1, 300]}}')
    assert done.returncode == 1
    assert done.stderr == (
        "Error: refused by the client, nothing sent: input 'x' of model 'double' expects tensor[...], "
        "got {'dtype': 'int8', 'data': [1, 300]} (dict): int64 values out of range for int8: "
        "300 is outside int8's [-128, 127]\n"
    )


def test_metadata_goes_with_the_call(served: ServeProcess) -> None:
    done = call(served, "sentiment", "-H", "X-Deny: go away", "-d", '{"text": ["a"]}')
    assert done.returncode == 1
    assert done.stderr == "PERMISSION_DENIED: denied: go away\n"
    done = call(served, "sentiment", "-H", "no colon")
    assert done.returncode == 2
    assert "metadata must be 'key: value'" in done.stderr
    assert ok_json(call(served, "sentiment", "-H", "x-trace-bin: AAH/", "-d", '{"text": ["a"]}')) == {
        "result": [0.95]
    }  # a binary key's value is base64


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("x-empty:", "invalid metadata 'x-empty:'"),
        ("x-name: café", "invalid metadata 'x-name: café'"),
        ("grpc-timeout: 1S", "(not 'grpc-...')"),
        ("x-trace-bin: not base64!", "the value of binary metadata 'x-trace-bin' must be base64"),
    ],
)
def test_metadata_grpc_cannot_send_is_refused_before_connecting(header: str, message: str) -> None:
    done = blaze("call", "127.0.0.1:1", "sentiment", "-H", header)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()), done.stderr  # rich wraps the usage error
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["localhost:http", "sentiment"], "Error: bad port in address 'localhost:http'\n"),
        (
            ["127.0.0.1:1", "sentiment", "--ca-file", "/nonexistent/ca.pem"],
            "Error: cannot load the TLS files (/nonexistent/ca.pem): No such file or directory\n",
        ),
    ],
)
def test_a_bad_address_or_tls_files_are_an_error_not_a_traceback(args: list[str], message: str) -> None:
    for command in ("call", "bench"):
        done = blaze(command, *args)
        assert (done.returncode, done.stderr) == (1, message), command


def test_data_from_a_file_that_is_not_text(served: ServeProcess, tmp_path: Path) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    done = call(served, "sentiment", "--data", f"@{image}")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: --data file '{image}' is not UTF-8 text: it must hold JSON\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--list", "sentiment"], "--list takes no MODEL"),
        (["--list", "-d", "{}", "--version", "2"], "--list takes no --data, --version"),
        (["sentiment", "--json"], "--json goes with --list"),
        (["sentiment", "--timeout", "0"], "must be more than 0 seconds"),
    ],
)
def test_call_options_that_would_be_ignored_are_refused(args: list[str], message: str) -> None:
    done = blaze("call", "127.0.0.1:1", *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()), done.stderr


def test_list_shows_models_and_signatures(served: ServeProcess) -> None:
    done = call(served, "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "RPC", "SIGNATURE"]
    assert lines[1].split() == [
        "sentiment",
        "1",
        "PredictSentiment",
        "(text:",
        "list[string])",
        "->",
        "list[double]",
    ]
    assert any(line.split()[:3] == ["text-embed", "1.5", "PredictTextEmbedV1_5"] for line in lines)
    assert "    Sleeps for `seconds`, then returns them." in lines
    listed = ok_json(call(served, "--list", "--json"))
    scale = next(m for m in listed if m["name"] == "scale")  # type: ignore[union-attr]
    assert scale["inputs"][0] == {
        "name": "x",
        "type": "tensor",
        "repeated": False,
        "optional": False,
        "dtype": "float32",
        "dims": ["batch", 3],
    }
    assert scale["signature"] == "(x: float32[batch, 3], factor: double) -> float32[batch, 3]"


def test_call_without_a_model_asks_for_one(served: ServeProcess) -> None:
    done = call(served)
    assert done.returncode == 2
    assert "name the model to call, or pass --list" in done.stderr


def test_call_over_tls(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    tls = ("--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]))
    with serve_process(f"{QUICKSTART}:app", *tls) as proc:
        done = call(proc, "sentiment", "--ca-file", str(certs["ca"]), "-d", '{"text": ["good"]}')
        assert ok_json(done) == {"result": [0.95]}
        plain = call(proc, "sentiment", "-d", '{"text": ["x"]}')
        assert plain.returncode == 1
        assert plain.stderr.startswith("UNAVAILABLE: cannot reach ")


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    done = blaze("call", "127.0.0.1:1", "sentiment", "-d", '{"text": ["x"]}')
    assert done.returncode == 1
    assert done.stderr.startswith("UNAVAILABLE: cannot reach 127.0.0.1:1: ")


# --- blaze bench --------------------------------------------------------------------------


def test_bench_runs_and_prints_a_table_with_no_errors(served: ServeProcess) -> None:
    done = blaze(
        "bench", served.address, "sentiment", "-d", '{"text": ["good"]}', "-c", "1,4", "--duration", "2",
        "--warmup", "0.5", "--metrics-url", "",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"sentiment v1 at {served.address} (PredictSentiment): 2 s per level")
    assert lines[2].split() == [
        "in",
        "flight",
        "req/s",
        "p50",
        "ms",
        "p90",
        "ms",
        "p99",
        "ms",
        "mean",
        "ms",
        "errors",
    ]
    rows = [line.split() for line in lines[3:]]
    assert [row[0] for row in rows] == ["1", "4"]
    for row in rows:
        assert float(row[1].replace(",", "")) > 0
        assert row[-1] == "0"  # errors


def test_bench_json_over_several_processes_and_a_stream(served: ServeProcess) -> None:
    done = blaze(
        "bench", served.address, "words", "-d", '{"text": "a b c"}', "-c", "4", "--duration", "2",
        "--warmup", "0.5", "--processes", "2", "--json", "--metrics-url", "",
    )  # fmt: skip
    (level,) = ok_json(done)  # type: ignore[misc]
    assert (level["concurrency"], level["processes"], level["errors"]) == (4, 2, {})
    assert level["calls"] > 0
    assert level["requests_per_second"] == pytest.approx(level["calls"] / 2)
    assert level["messages_per_second"] == pytest.approx(3 * level["requests_per_second"])
    assert level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"]
    assert level["mean_batch_size"] is None  # no metrics to read


def test_bench_counts_errors_by_status(served: ServeProcess) -> None:
    done = blaze(
        "bench", served.address, "flaky", "-d", '{"x": 7}', "-c", "3", "--duration", "2",
        "--warmup", "0", "--json", "--metrics-url", "",
    )  # fmt: skip
    (level,) = ok_json(done)  # type: ignore[misc]
    ok = round(level["requests_per_second"] * 2)
    failed = level["errors"]["RESOURCE_EXHAUSTED"]
    assert list(level["errors"]) == ["RESOURCE_EXHAUSTED"]
    assert ok + failed == level["calls"]
    assert failed == pytest.approx(level["calls"] / 3, abs=2)  # every third call of the model fails


def test_bench_of_a_failing_request_measures_nothing(served: ServeProcess) -> None:
    done = blaze("bench", served.address, "scale", "-d", '{"x": [[1]], "factor": 1}', "--duration", "1")
    assert done.returncode == 1
    assert done.stderr.startswith("The first call failed, so nothing was measured: INVALID_ARGUMENT: ")


def test_bench_rejects_bad_levels(served: ServeProcess) -> None:
    done = blaze("bench", served.address, "sentiment", "-c", "1,zero")
    assert done.returncode == 2
    assert "expected numbers >= 1 separated by commas" in done.stderr


async def test_a_level_ends_even_when_the_server_stops_answering() -> None:
    """No deadline on the calls and a model that never returns: the level still ends
    5 s after its window, its calls cancelled, nothing counted for them."""
    app = BlazeApp()

    @app.model("stuck", max_concurrency=8)
    async def stuck(x: int) -> int:
        await asyncio.sleep(3600)
        return x

    async with serve_app(app, options={"access_log": False}) as server:
        method = server.method("stuck")
        payload = server.request("stuck", x=1).SerializeToString()
        target = Target("127.0.0.1", server.port, method.path, payload, streaming=False, timeout=None)
        channel = open_channel(target)
        try:
            began = time.monotonic()
            now = time.perf_counter()
            sample = await run_level(channel, target, 4, start=now, end=now + 0.5)
            sample, took = sample, time.monotonic() - began
        finally:
            channel.close()
    assert took < 15, f"the level took {took:.1f} s"  # 0.5 s + 5 s, not the model's hour
    assert len(sample.latencies) == 0
    assert not sample.errors
