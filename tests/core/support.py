"""Test support: app targets and a grpclib caller that builds its messages from the app's
own schema. Importable from tests as `support` (pytest puts tests/core on sys.path).

``load_app_module``, ``wait_until`` and ``Gate`` live in tests/common.py (shared with the
plugins' tests) and are re-exported here."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol

from blazerpc.server._service import BlazeCodec, RawMessage
from blazerpc.testing import ServeProcess, blaze_command
from common import Gate as Gate
from common import load_app_module as load_app_module
from common import wait_until as wait_until

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
QUICKSTART = ROOT / "examples" / "quickstart" / "app.py"


def app_target(name: str) -> str:
    """The `blaze serve` target of tests/core/apps/<name>.py."""
    return f"{APPS / name}.py:app"


class Spawned:
    """A process started by :func:`spawned`, with every line it writes (stdout and
    stderr together) as they arrive."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(process.stdout or ()), daemon=True)
        self._reader.start()

    def text(self) -> str:
        return "".join(list(self.lines))

    def wait_for(self, found: Callable[[list[str]], Any], timeout: float = 60) -> Any:
        """Poll ``found(lines)`` until it returns something true (returned); fails, with
        the output, if the process exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not (result := found(list(self.lines))):
            assert self.process.poll() is None, f"exited with {self.process.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"not found in {timeout:g} s:\n{self.text()}"
            time.sleep(0.05)
        return result

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and return the exit code; a process still running after
        ``timeout`` is killed, and that fails the test."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running {timeout:g} s after signal {sig}:\n{self.text()}") from None
        self._reader.join(10)
        return code


@contextlib.contextmanager
def spawned(command: Sequence[str], env: dict[str, str] | None = None) -> Iterator[Spawned]:
    """Run ``command``; on the way out a process still running is stopped (SIGTERM, then
    killed), so no test leaves one behind, whatever failed."""
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    proc = Spawned(process)
    try:
        yield proc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class AppCaller:
    """Calls a served app with grpclib, using message classes from the app's own schema."""

    def __init__(self, app_module: ModuleType, proc: ServeProcess) -> None:
        self.schema = app_module.app.schema()
        self.proc = proc

    def method(self, model: str) -> Any:
        return next(m for m in self.schema.methods if m.model == model)

    def request(self, model: str, **fields: Any) -> Any:
        return self.schema.classes[self.method(model).request](**fields)

    def channel(self, **kwargs: Any) -> Channel:
        return Channel(self.proc.host, self.proc.port, **kwargs)

    async def call(self, model: str, *, timeout: float = 10, **fields: Any) -> Any:
        m = self.method(model)
        channel = self.channel()
        try:
            classes = self.schema.classes
            rpc = UnaryUnaryMethod(channel, m.path, classes[m.request], classes[m.response])
            return await rpc(self.request(model, **fields), timeout=timeout)
        finally:
            channel.close()

    async def stream(self, model: str, *, timeout: float = 10, **fields: Any) -> list[Any]:
        m = self.method(model)
        channel = self.channel()
        try:
            classes = self.schema.classes
            rpc = UnaryStreamMethod(channel, m.path, classes[m.request], classes[m.response])
            return list(await rpc(self.request(model, **fields), timeout=timeout))
        finally:
            channel.close()

    async def raw(
        self, path: str, payload: bytes, *, timeout: float = 10
    ) -> tuple[Status, str | None, list[bytes]]:
        """Send raw bytes as the request to ``path``: (status, message, raw replies)."""
        channel = self.channel(codec=BlazeCodec())
        replies: list[bytes] = []
        try:
            async with channel.request(
                path, Cardinality.UNARY_STREAM, RawMessage, RawMessage, timeout=timeout
            ) as stream:
                await stream.send_message(payload, end=True)
                async for reply in stream:
                    replies.append(reply)
            return Status.OK, None, replies
        except GRPCError as exc:
            return exc.status, exc.message, replies
        finally:
            channel.close()


class RecordingChannel(Channel):
    """A grpclib channel that keeps every HTTP/2 event its connections receive, with the
    time it arrived: what the server really sent (response headers, trailers, GOAWAY),
    not what grpclib's client makes of it. ``lost_at`` is when a connection ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[float, Any]] = []
        self.lost_at: float | None = None

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        made, lost = protocol.connection_made, protocol.connection_lost

        def connection_made(transport: Any) -> None:
            made(transport)
            feed = protocol.connection.feed

            def recording_feed(data: bytes) -> list[Any]:
                events = feed(data)
                now = time.monotonic()
                self.events.extend((now, event) for event in events)
                return events

            protocol.connection.feed = recording_feed  # type: ignore[method-assign]

        def connection_lost(exc: BaseException | None) -> None:
            self.lost_at = time.monotonic()
            lost(exc)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    def of_type(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, e) for t, e in self.events if isinstance(e, kind)]


def certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate from the CA, and a
    client certificate from another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def cert(
        name: str, public: Any, issuer: x509.Name, signer: Any, *, ca: bool, san: bool = False
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    def write(name: str, certificate: x509.Certificate, private: Any) -> None:
        (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    for ca_name, leaves in (("ca", ("server", "client")), ("rogue-ca", ("rogue-client",))):
        ca_key = key()
        ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        ca_cert = cert(ca_name, ca_key.public_key(), ca_subject, ca_key, ca=True)
        write(ca_name, ca_cert, ca_key)
        for leaf in leaves:
            leaf_key = key()
            write(
                leaf,
                cert(leaf, leaf_key.public_key(), ca_subject, ca_key, ca=False, san=leaf == "server"),
                leaf_key,
            )
    return {p.stem if p.suffix == ".pem" else p.stem + "-key": p for p in directory.iterdir()}


def blaze_call(proc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`blaze call ADDRESS ARGS` against a served process, in a wide terminal."""
    return subprocess.run(
        [*blaze_command(), "call", proc.address, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
