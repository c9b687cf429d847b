"""What a real `blaze serve` logs when a model fails, in both log formats: the traceback
(file, line, function, code), one line per error with its model, method and status, and
never a frame's local variables (they hold the request's payload and its metadata, with
credentials)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from base64 import b64encode
from pathlib import Path

import pytest
from support import APPS, app_target, spawned

from blazerpc.testing import blaze_command, serve_process

SECRET = "SECRET123"
PAYLOAD = "PAYLOAD-7f3a"
BLOB = b"RAWBYTES-91c2"
APP_FILE = str(APPS / "failing_app.py")


def _grpcurl(
    grpcurl: str, port: int, method: str, data: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    command = [grpcurl, "-plaintext", "-H", f"authorization: Bearer {SECRET}", "-d", json.dumps(data)]
    command += [f"127.0.0.1:{port}", f"blazerpc.InferenceService/{method}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _blaze_serve(log_format: str) -> list[str]:
    command = [*blaze_command(), "serve", app_target("failing_app"), "--host", "127.0.0.1", "--port", "0"]
    return [*command, "--log-format", log_format]


def _serve_and_call_explode(grpcurl: str, command: list[str]) -> str:
    """Run ``command`` (a server of failing_app), call `explode` once with a bearer token
    and a payload, stop the server; returns everything it wrote (stdout and stderr)."""
    with spawned(command) as server:
        listening = server.wait_for(
            lambda lines: re.search(r"Server listening on 127\.0\.0\.1:(\d+)", "".join(lines))
        )
        data = {"text": f"{PAYLOAD} more words", "blob": b64encode(BLOB).decode()}
        done = _grpcurl(grpcurl, int(listening.group(1)), "PredictExplode", data)
        assert "Internal" in done.stderr, done.stderr
        assert "model 'explode' raised ValueError: cannot score 3 words" in done.stderr
        server.stop(timeout=60)
        return server.text()


def _assert_nothing_leaked(log: str) -> None:
    assert SECRET not in log
    assert PAYLOAD not in log
    assert BLOB.decode() not in log
    assert "authorization" not in log


def test_json_error_log_has_the_traceback_and_no_locals(grpcurl: str) -> None:
    log = _serve_and_call_explode(grpcurl, _blaze_serve("json"))
    _assert_nothing_leaked(log)
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (error,) = [e for e in entries if e["event"] == "model raised"]
    assert error["level"] == "error"
    (stack,) = error["exception"]
    assert (stack["exc_type"], stack["exc_value"]) == ("ValueError", "cannot score 3 words")
    frames = stack["frames"]
    assert all(set(frame) == {"filename", "lineno", "name", "line"} for frame in frames), frames
    model_frame = frames[-1]
    assert model_frame["filename"] == APP_FILE
    assert model_frame["name"] == "explode"
    assert model_frame["line"] == 'raise ValueError(f"cannot score {len(words)} words")'
    source = Path(APP_FILE).read_text().splitlines()
    assert source[model_frame["lineno"] - 1].strip() == model_frame["line"]


@pytest.mark.parametrize("how", ["blaze serve", "app.serve()"])
def test_console_error_log_has_the_traceback_and_no_locals(grpcurl: str, how: str) -> None:
    if how == "blaze serve":
        command = _blaze_serve("console")
    else:  # a script of its own, structlog left unconfigured
        script = f"import sys; sys.path.insert(0, {str(APPS)!r}); import failing_app; "
        command = [sys.executable, "-c", script + "failing_app.app.serve(host='127.0.0.1', port=0)"]
    log = _serve_and_call_explode(grpcurl, command)
    _assert_nothing_leaked(log)
    assert re.search(r"\[error\s*\] model raised\s+message=.*model=explode", log), log
    lines = log.splitlines()
    start = lines.index("Traceback (most recent call last):")
    end = lines.index("ValueError: cannot score 3 words", start)
    traceback = lines[start:end]
    header = rf'  File "{re.escape(APP_FILE)}", line (\d+), in explode'
    frame = next(i for i, text in enumerate(traceback) if re.fullmatch(header, text))
    code = 'raise ValueError(f"cannot score {len(words)} words")'
    assert traceback[frame + 1].strip() == code
    lineno = int(re.fullmatch(header, traceback[frame]).group(1))  # type: ignore[union-attr]
    assert Path(APP_FILE).read_text().splitlines()[lineno - 1].strip() == code


def test_each_error_is_logged_once_with_its_model_method_and_status(grpcurl: str) -> None:
    calls = [
        ("explode", "PredictExplode", {"text": "a b", "blob": ""}, "INTERNAL", "model raised"),
        ("explode_stream", "PredictExplodeStream", {"text": "a"}, "INTERNAL", "model raised"),
        ("reject", "PredictReject", {"text": "a"}, "INVALID_ARGUMENT", "request failed"),
        ("missing", "PredictMissing", {"text": "a"}, "NOT_FOUND", "model returned an error status"),
    ]
    with serve_process(app_target("failing_app"), "--no-access-log") as proc:
        for _, method, data, _, _ in calls:
            done = _grpcurl(grpcurl, proc.port, method, data)
            assert done.returncode != 0, done.stdout
        proc.stop()
        logs = list(proc.logs)
    listening = next(i for i, e in enumerate(logs) if str(e["event"]).startswith("Server listening"))
    stopping = next(i for i, e in enumerate(logs) if e["event"] == "Shutting down")
    about_calls = logs[listening + 1 : stopping]
    got = [(e["model"], e["method"], e["status"], e["event"]) for e in about_calls]
    assert got == [
        (model, f"/blazerpc.InferenceService/{method}", status, event)
        for model, method, _, status, event in calls
    ]
    assert [e["level"] for e in about_calls] == ["error", "error", "info", "info"]
    assert about_calls[0]["message"] == "model 'explode' raised ValueError: cannot score 2 words"
    assert [("exception" in e) for e in about_calls] == [True, True, False, False]
