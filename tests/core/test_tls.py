"""TLS and mutual TLS through `blaze serve` and `app.serve`."""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import pytest
from grpclib.exceptions import GRPCError, StreamTerminatedError
from serving_support import client_context, pid_over, wait_for_log
from support import APPS, app_target, certificates, spawned

from blazerpc.testing import ServeProcess, serve_process


async def test_tls(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    args = ("--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]))
    with serve_process(app_target("serving_app"), *args) as proc:
        assert await pid_over(proc, client_context(certs["ca"])) == proc.process.pid
        with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError)):
            await pid_over(proc, None)  # plaintext against a TLS port
        listening = wait_for_log(proc, lambda e: str(e.get("event", "")).startswith("Server listening"))
        assert listening["transport"] == "TLS"


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    args = (
        "--ssl-certfile", str(certs["server"]), "--ssl-keyfile", str(certs["server-key"]),
        "--ssl-ca-certs", str(certs["ca"]),
    )  # fmt: skip
    with serve_process(app_target("serving_app"), *args) as proc:
        good = client_context(certs["ca"], certs["client"], certs["client-key"])
        assert await pid_over(proc, good) == proc.process.pid
        for refused in (
            client_context(certs["ca"]),
            client_context(certs["ca"], certs["rogue-client"], certs["rogue-client-key"]),
        ):
            with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError, ssl.SSLError)):
                await pid_over(proc, refused)
        assert await pid_over(proc, good) == proc.process.pid  # still serving


SERVE_SCRIPT = """
import sys

import structlog

structlog.configure(
    processors=[structlog.processors.JSONRenderer()],
    logger_factory=structlog.WriteLoggerFactory(sys.stdout),
)
sys.path.insert(0, sys.argv[1])
from serving_app import app

certfile, keyfile, ca_certs = sys.argv[2:5]
app.serve("127.0.0.1", 0, ssl_certfile=certfile, ssl_keyfile=keyfile, ssl_ca_certs=ca_certs, grace_period=1)
"""


async def test_mutual_tls_through_app_serve(tmp_path: Path) -> None:
    """A script that calls BlazeApp.serve(ssl_certfile=, ssl_keyfile=, ssl_ca_certs=)."""
    certs = certificates(tmp_path)
    script = tmp_path / "serve_tls.py"
    script.write_text(SERVE_SCRIPT)
    args = [str(APPS), str(certs["server"]), str(certs["server-key"]), str(certs["ca"])]
    with spawned([sys.executable, str(script), *args]) as server:
        listening = server.wait_for(lambda lines: [json.loads(x) for x in lines if '"Server listening' in x])
        process = server.process
        proc = ServeProcess(process=process, port=listening[0]["port"], host="127.0.0.1")
        good = client_context(certs["ca"], certs["client"], certs["client-key"])
        assert await pid_over(proc, good) == process.pid
        for refused in (None, client_context(certs["ca"])):  # plaintext; TLS without a certificate
            with pytest.raises((ConnectionError, StreamTerminatedError, GRPCError, OSError, ssl.SSLError)):
                await pid_over(proc, refused)
        assert await pid_over(proc, good) == process.pid
        code = server.stop()
    assert code == 0
    assert listening[0]["transport"] == "TLS"


def test_tls_with_a_missing_certificate_fails_at_start_up(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="cannot load the TLS certificate"),
        serve_process(app_target("serving_app"), "--ssl-certfile", str(tmp_path / "nope.pem")),
    ):
        pass
