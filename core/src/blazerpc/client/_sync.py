"""``blazerpc.SyncClient``: the async client run on an event loop of its own."""

from __future__ import annotations

import asyncio
import ssl as _ssl
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ._balancer import Resolver
from ._client import DEFAULT_PORT, Client, Metadata
from ._schema import ModelInfo

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """A blocking client with :class:`Client`'s arguments and methods.

    ::

        with SyncClient("localhost:50051") as client:
            scores = client.predict("sentiment", text=["good"])
            for token in client.stream("generate", prompt="hi"):
                print(token)

    The async client runs on an event loop in a thread of its own, so a ``SyncClient``
    works the same from plain code, from threads, and from inside a running event loop
    (a notebook, an async framework; there the call blocks that loop while it waits,
    as any blocking call does: use :class:`Client` with ``await`` instead). One
    connection per address serves every thread that shares the client; a resolver
    (``address`` as an async function) runs on the client's own event loop.
    ``close()`` (or leaving the ``with``) stops the thread.
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
        self._client = Client(
            address,
            ssl=ssl,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            timeout=timeout,
            metadata=metadata,
            resolve_interval=resolve_interval,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="blazerpc-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def address(self) -> str:
        return self._client.address

    @property
    def addresses(self) -> list[str]:
        """See :attr:`Client.addresses`."""
        return self._client.addresses

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a SyncClient cannot be called from its own event loop's thread")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: do not leave the call running
            raise

    def connect(self) -> None:
        """Discover the service now rather than on the first call."""
        self._run(self._client.connect())

    def models(self) -> list[ModelInfo]:
        return self._run(self._client.models())

    def model(self, model: str, version: str | None = None) -> ModelInfo:
        return self._run(self._client.model(model, version))

    def encode(
        self, model: str, inputs: Mapping[str, Any] | None = None, /, *, version: str | None = None,
        **fields: Any,
    ) -> tuple[ModelInfo, bytes]:  # fmt: skip
        return self._run(self._client.encode(model, inputs, version=version, **fields))

    def predict(
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
        """See :meth:`Client.predict`."""
        return self._run(
            self._client.predict(model, inputs, version=version, timeout=timeout, metadata=metadata, **fields)
        )

    def stream(
        self,
        model: str,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        version: str | None = None,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **fields: Any,
    ) -> Iterator[Any]:
        """See :meth:`Client.stream`; leaving the loop early cancels the call."""
        stream = self._client.stream(
            model, inputs, version=version, timeout=timeout, metadata=metadata, **fields
        )

        async def step() -> tuple[bool, Any]:
            try:
                return True, await stream.__anext__()
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self._run(step())
                if not more:
                    return
                yield item
        finally:
            if not self._closed:
                self._run(stream.aclose())

    def close(self) -> None:
        """Close the connection and stop the client's thread."""
        if self._closed:
            return

        async def shut() -> None:
            self._client.close()

        self._run(shut())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
