"""``blazerpc.Client``: call any BlazeRPC server's models, learning its schema through
reflection."""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from google.protobuf.message import Message
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality, Status
from grpclib.encoding.proto import ProtoCodec

from .._h2 import install as install_h2_repr
from ._balancer import Balancer, Resolver, parse_targets
from ._channel import GoawayChannel
from ._errors import CallError, ClientInputError, translate_errors
from ._schema import SERVICE, ModelInfo, ServiceSchema, _Method, fetch_files

__all__ = ["Client", "Metadata", "RawCodec", "client_ssl_context", "uses_tls"]

Metadata = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]

DEFAULT_PORT = 50051


class RawCodec(ProtoCodec):
    """Protobuf, except that a request already serialized (``bytes``) is sent as it is,
    and a reply type of ``bytes`` receives the serialized reply."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return super().encode(message, message_type)

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is bytes:
            return data
        return super().decode(data, message_type)


def uses_tls(ssl: bool | None, ca_file: str | None, cert_file: str | None) -> bool:
    """TLS is on when asked for, or when a CA file or a client certificate is given."""
    return bool(ssl or ca_file or cert_file)


def client_ssl_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> _ssl.SSLContext:
    """A TLS context for gRPC: the system's CAs (or ``ca_file``), HTTP/2 by ALPN, and a
    client certificate for mutual TLS when ``cert_file`` is given."""
    context = _ssl.create_default_context(_ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = _ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


class Client:
    """An asyncio client for a BlazeRPC server; no ``.proto`` and no stubs needed.

    ::

        async with Client("localhost:50051") as client:
            scores = await client.predict("sentiment", text=["good"])
            async for token in client.stream("generate", prompt="hi"):
                print(token)

    On first use it asks the server's reflection service for
    ``blazerpc.InferenceService`` and builds the message classes from the answer.

    Args:
        address: ``host:port`` (port 50051 when left out); ``[::1]:port`` for IPv6;
            ``https://host:port`` turns TLS on. Several addresses (a list, or separated
            by commas), ``dns:///host:port`` for every address a name resolves to (a
            Kubernetes headless Service), or an async function returning the current
            addresses: calls are spread over them round-robin, and a call that never
            reached a server is sent to another (see the README's "Client").
        ssl: ``True`` for TLS with the system's CAs, an ``ssl.SSLContext`` of your own,
            or ``False`` for plaintext.
        ca_file, cert_file, key_file: TLS with these CAs, and a client certificate (and
            its key, if not in the same file) for mutual TLS; any of them turns TLS on.
            None of them goes with an ``ssl`` context or ``ssl=False`` (``ValueError``).
        timeout: the default timeout of every call, in seconds (``None``: none).
        metadata: metadata sent with every call (a call's own is added to it).
        resolve_interval: seconds between resolutions of ``dns:///`` names (or calls of
            the resolver); also soon after a connection fails or gets GOAWAY.
    """

    def __init__(
        self,
        address: str | Sequence[str] | Resolver = f"localhost:{DEFAULT_PORT}",
        *,
        ssl: bool | _ssl.SSLContext | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        resolve_interval: float = 30.0,
    ) -> None:
        targets = parse_targets(address)
        self.address = targets.describe()
        self.host, self.port = (targets.static or targets.names or (("", 0),))[0]
        files = [
            name for name, f in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)) if f
        ]
        if files and (ssl is False or isinstance(ssl, _ssl.SSLContext)):
            given = "ssl=False" if ssl is False else "an ssl context"
            raise ValueError(
                f"{', '.join(files)} cannot go with {given}: load them into the context, or drop ssl"
            )
        if key_file and not cert_file:
            raise ValueError("key_file needs cert_file (the client certificate it is the key of)")
        if targets.https:
            if ssl is False:
                raise ValueError(f"address {address!r} is https:// but ssl=False")
            ssl = ssl or True
        if isinstance(ssl, _ssl.SSLContext):
            self._ssl: _ssl.SSLContext | None = ssl
        elif uses_tls(ssl, ca_file, cert_file):
            self._ssl = client_ssl_context(ca_file, cert_file, key_file)
        else:
            self._ssl = None
        self.timeout = timeout
        self._metadata = _pairs(metadata)
        self._balancer = Balancer(targets, self._new_channel, resolve_interval=resolve_interval)
        self._schema: ServiceSchema | None = None
        self._connecting: asyncio.Future[ServiceSchema] | None = None

    # --- connection ----------------------------------------------------------------------

    def _new_channel(self, host: str, port: int, name: str | None) -> GoawayChannel:
        install_h2_repr()
        # A resolved address is checked against the certificate of the name it came from.
        config = Configuration(ssl_target_name_override=name) if name and self._ssl else None
        return GoawayChannel(host, port, ssl=self._ssl, codec=RawCodec(), config=config)

    @property
    def channel(self) -> Channel:
        """The grpclib channel (one HTTP/2 connection) of the first address."""
        return self._balancer.first_channel()

    @property
    def addresses(self) -> list[str]:
        """The addresses calls are spread over (``dns:///`` names: as last resolved)."""
        return self._balancer.addresses

    async def connect(self) -> ServiceSchema:
        """Discover the service through reflection (done once; later calls return at once)."""
        if self._schema is not None:
            return self._schema
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._discover())
        try:
            return await asyncio.shield(self._connecting)
        except BaseException:
            if self._connecting.done():
                self._connecting = None  # let a later call try again
            raise

    async def _discover(self) -> ServiceSchema:
        attempts = self._balancer.attempts(self.timeout if self.timeout is not None else 30)
        with translate_errors(self.address):
            while True:
                endpoint = await attempts.next()
                try:
                    files = await fetch_files(
                        endpoint.channel, SERVICE, attempts.remaining(), self._metadata or None
                    )
                except Exception as exc:  # noqa: BLE001 - failed() re-raises what cannot go again
                    attempts.failed(endpoint, exc)
                    continue
                attempts.succeeded(endpoint)
                break
        self._schema = ServiceSchema(files)
        return self._schema

    def close(self) -> None:
        """Close the connections (calls in flight fail). The client can connect again."""
        self._balancer.close()

    async def __aenter__(self) -> Client:
        try:
            await self.connect()
        except BaseException:
            self.close()  # the connection opened for the discovery
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # --- models ----------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """Every model the server serves, with its request and response fields."""
        return (await self.connect()).models

    async def model(self, model: str, version: str | None = None) -> ModelInfo:
        """The RPC that serves ``model`` (and ``version``) and its fields."""
        return (await self.connect()).find(model, version).info

    async def encode(
        self, model: str, inputs: Mapping[str, Any] | None = None, /, *, version: str | None = None,
        **fields: Any,
    ) -> tuple[ModelInfo, bytes]:  # fmt: skip
        """The RPC and the serialized request for these inputs: what ``blaze bench``
        sends over and over without encoding it again."""
        method = (await self.connect()).find(model, version)
        request = method.request.build({**(inputs or {}), **fields}, model)
        return method.info, request.SerializeToString()

    # --- calls -----------------------------------------------------------------------

    async def predict(
        self,
        model: str,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        version: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **fields: Any,
    ) -> Any:
        """Call a model; returns its result.

        Inputs are keyword arguments named after the model's parameters (or a mapping,
        for names such as ``timeout``): Python values, and numpy arrays (or anything
        ``np.asarray`` takes) for tensors, or ``{"shape": ..., "dtype": ..., "data": b"..."}``
        to send a tensor's bytes exactly as given. A response with the single field ``result``
        is returned as that value; a response with several fields (a tuple, TypedDict,
        dataclass or NamedTuple result) as a ``dict`` by field name. Tensors come back
        as read-only ``np.ndarray`` (``.copy()`` for a writable one); an absent
        optional field as ``None``.

        Raises :class:`CallError` carrying the status and message of any failure, and
        :class:`ClientInputError`, with nothing sent, for inputs the model's fields cannot hold.
        """
        method = (await self.connect()).find(model, version)
        if method.info.streaming:
            raise ClientInputError(f"model {model!r} streams its results: use client.stream()", model=model)
        request = method.request.build({**(inputs or {}), **fields}, model)
        reply = await self._unary(method, request, timeout, metadata)
        return method.response.read(reply)

    async def _unary(
        self, method: _Method, request: Message | bytes, timeout: float | None, metadata: Metadata | None
    ) -> Any:
        attempts = self._balancer.attempts(self.timeout if timeout is None else timeout)
        with translate_errors(self.address):
            while True:
                endpoint = await attempts.next()
                try:
                    async with endpoint.channel.request(
                        method.info.path,
                        Cardinality.UNARY_UNARY,
                        method.request.cls,
                        method.response.cls,
                        timeout=attempts.remaining(),
                        metadata=self._merged(metadata),
                    ) as stream:
                        await stream.send_message(request, end=True)  # type: ignore[arg-type]  # bytes: RawCodec
                        reply = await stream.recv_message()
                        await stream.recv_trailing_metadata()
                except Exception as exc:  # noqa: BLE001 - failed() re-raises what cannot go again
                    attempts.failed(endpoint, exc)
                    continue
                attempts.succeeded(endpoint)
                break
        if reply is None:
            raise CallError(Status.UNKNOWN, f"{method.info.rpc} ended without a reply")
        return reply

    async def stream(
        self,
        model: str,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        version: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **fields: Any,
    ) -> AsyncGenerator[Any, None]:
        """Call a streaming model; yields each message's result as it arrives (decoded
        like :meth:`predict`'s). The timeout covers the whole stream. An error, even
        after some messages, raises :class:`CallError`."""
        method = (await self.connect()).find(model, version)
        request = method.request.build({**(inputs or {}), **fields}, model)
        cardinality = Cardinality.UNARY_STREAM if method.info.streaming else Cardinality.UNARY_UNARY
        attempts = self._balancer.attempts(self.timeout if timeout is None else timeout)
        with translate_errors(self.address):
            while True:
                endpoint = await attempts.next()
                received = False
                try:
                    async with endpoint.channel.request(
                        method.info.path,
                        cardinality,
                        method.request.cls,
                        method.response.cls,
                        timeout=attempts.remaining(),
                        metadata=self._merged(metadata),
                    ) as stream:
                        await stream.send_message(request, end=True)
                        while (reply := await stream.recv_message()) is not None:
                            received = True
                            yield method.response.read(reply)
                        await stream.recv_trailing_metadata()
                except Exception as exc:
                    if received:
                        raise
                    attempts.failed(endpoint, exc)
                    continue
                attempts.succeeded(endpoint)
                break

    def _merged(self, metadata: Metadata | None) -> list[tuple[str, str | bytes]] | None:
        if not metadata:
            return self._metadata or None
        return [*self._metadata, *_pairs(metadata)]


def _pairs(metadata: Metadata | None) -> list[tuple[str, str | bytes]]:
    if not metadata:
        return []
    if isinstance(metadata, Mapping):
        return list(metadata.items())
    return list(metadata)
