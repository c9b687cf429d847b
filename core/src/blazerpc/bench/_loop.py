"""The closed loop each load process runs: ``concurrency`` callers, each sending the
same pre-encoded request again as soon as its last answer arrived."""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from .._h2 import install as install_h2_repr
from ..client._balancer import Balancer, parse_targets
from ..client._channel import GoawayChannel
from ..client._client import RawCodec, client_ssl_context
from ..client._errors import TRANSPORT_ERRORS, status_of

__all__ = ["Sample", "Target", "open_channel", "run_level"]

#: Seconds a level waits, after its end, for the calls still in flight, before it
#: cancels them (they end outside the window: nothing they return is counted).
_AFTER_END = 5.0


@dataclass(frozen=True)
class Target:
    """What every call of a benchmark sends, and where: picklable, for the load processes."""

    host: str
    port: int
    path: str
    #: The serialized request, encoded once.
    payload: bytes
    streaming: bool
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    #: TLS: (ca_file, cert_file, key_file), or None for plaintext.
    tls: tuple[str | None, str | None, str | None] | None = None
    #: Several addresses or a ``dns:///`` target, as the client takes them: calls are
    #: spread over them (and retried) as the client does; ``host`` and ``port`` unused.
    balanced: str | None = None


@dataclass
class Sample:
    """What one load process measured in one level's window."""

    #: Latency of each call that ended in the window, in seconds.
    latencies: array[float] = field(default_factory=lambda: array("d"))
    #: Calls that ended in the window without OK, by status name.
    errors: Counter[str] = field(default_factory=Counter)
    #: Response messages received by the calls that ended in the window.
    messages: int = 0


def open_channel(target: Target) -> Channel | Balancer:
    """A channel to the target, or a balancer over its addresses (``target.balanced``)."""
    install_h2_repr()  # the load generator reads responses too
    context: _ssl.SSLContext | None = None
    if target.tls is not None:
        context = client_ssl_context(*target.tls)
    if target.balanced is None:
        return Channel(target.host, target.port, ssl=context, codec=RawCodec())

    def channel(host: str, port: int, name: str | None) -> GoawayChannel:
        return GoawayChannel(host, port, ssl=context, codec=RawCodec())

    return Balancer(parse_targets(target.balanced), channel)


async def _call(channel: Channel, target: Target, cardinality: Cardinality, timeout: float | None) -> int:
    """One call; the number of messages it got back."""
    async with channel.request(
        target.path,
        cardinality,
        bytes,  # RawCodec: the payload goes as it is, replies stay bytes (never decoded)
        bytes,
        timeout=timeout,
        metadata=list(target.metadata) or None,
    ) as stream:
        await stream.send_message(target.payload, end=True)
        received = 0
        while await stream.recv_message() is not None:
            received += 1
        await stream.recv_trailing_metadata()  # raises GRPCError for a non-OK status
    return received


async def _balanced_call(balancer: Balancer, target: Target, cardinality: Cardinality) -> int:
    """One call on the next address, sent again elsewhere if it never reached a server."""
    attempts = balancer.attempts(target.timeout)
    while True:
        endpoint = await attempts.next()
        try:
            received = await _call(endpoint.channel, target, cardinality, attempts.remaining())
        except Exception as exc:  # noqa: BLE001 - failed() re-raises what cannot go again
            attempts.failed(endpoint, exc)
            continue
        attempts.succeeded(endpoint)
        return received


async def run_level(
    channel: Channel | Balancer,
    target: Target,
    concurrency: int,
    start: float,
    end: float,
    progress: Any = None,
) -> Sample:
    """Run ``concurrency`` callers until ``end`` (a ``time.perf_counter()`` value, the same
    clock in every process); measure the calls that end between ``start`` and ``end``.

    Calls before ``start`` warm the connection and the server up. ``progress``, if
    given, is a shared integer (``multiprocessing.RawValue``) counted up per call in
    the window.
    """
    sample = Sample()
    cardinality = Cardinality.UNARY_STREAM if target.streaming else Cardinality.UNARY_UNARY
    clock = time.perf_counter
    record = sample.latencies.append
    errors = sample.errors

    async def call() -> int:
        if isinstance(channel, Balancer):
            return await _balanced_call(channel, target, cardinality)
        return await _call(channel, target, cardinality, target.timeout)

    async def caller() -> None:
        while (began := clock()) < end:
            status = None
            received = 0
            try:
                received = await call()
            except (GRPCError, *TRANSPORT_ERRORS) as exc:
                status = status_of(exc).name
            except Exception as exc:  # noqa: BLE001 - counted by its type: the other callers go on
                status = f"client error: {type(exc).__name__}"
            done = clock()
            if start <= done <= end:
                if status is None:
                    record(done - began)
                    sample.messages += received
                else:
                    errors[status] += 1
                if progress is not None:
                    progress.value += 1
            if status == "UNAVAILABLE":
                await asyncio.sleep(0.01)  # no busy loop against a server that is down

    callers = [asyncio.ensure_future(caller()) for _ in range(concurrency)]
    _, late = await asyncio.wait(callers, timeout=max(0.0, end - clock()) + _AFTER_END)
    for task in late:  # a server that stopped answering: do not wait for its timeout
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    return sample
