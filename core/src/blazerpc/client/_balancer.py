"""Client-side balancing: calls spread round-robin over every address of a service, and
a call that never reached a server sent again to another.

Targets:

- ``host:port``, several of them (a list, or separated by commas);
- ``dns:///host:port``: every address the name resolves to (a Kubernetes headless
  Service resolves to the address of each ready pod), resolved with the event loop's
  ``getaddrinfo``;
- a resolver: an async function returning the current ``host:port`` strings (a
  service registry of your own).

Names are resolved again every ``resolve_interval`` seconds and soon after a connection
fails or gets GOAWAY. Each address has one HTTP/2 connection (a
:class:`~._channel.GoawayChannel`, which reconnects after GOAWAY without failing the
calls the server goes on answering).

A call is sent again, to another address where there is one, only when it never reached
a server: the connection could not be made, the server sent GOAWAY or refused the
stream before it saw the call, or a draining server answered ``UNAVAILABLE`` before
any model ran ("the server is shutting down"). Anything else, even a connection lost
in the middle of a call, may have run a model, and is never retried. Retries are
bounded: :data:`MAX_ATTEMPTS` attempts within :data:`RETRY_SECONDS` seconds (and the
call's own timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from .._draining import DRAINING
from ._channel import GoawayChannel, NotProcessed
from ._errors import CallError

__all__ = ["MAX_ATTEMPTS", "RETRY_SECONDS", "Balancer", "Resolver", "Targets", "parse_targets"]

_log = structlog.get_logger("blazerpc")

#: An async function returning the current addresses (``host:port``) of the service.
Resolver = Callable[[], Awaitable[Sequence[str]]]

#: Attempts a call gets at most (the first one included).
MAX_ATTEMPTS = 5
#: Seconds after a call's first attempt during which it may be sent again.
RETRY_SECONDS = 10.0
#: Seconds a connection may take to be made, before the address counts as failed.
CONNECT_TIMEOUT = 5.0
DNS_SCHEME = "dns:///"
DEFAULT_PORT = 50051


def split_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[::1]:port`` or ``host`` (port 50051)."""
    address = address.strip().removeprefix("grpc://").removeprefix("http://").removeprefix("https://")
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError(f"no host in address {address!r}")
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in address {address!r}") from None
    if not 0 < number < 65536:
        raise ValueError(f"bad port in address {address!r}")
    return host, number


@dataclass(frozen=True)
class Targets:
    """Where a client's calls go: fixed addresses, names to resolve, or a resolver."""

    static: tuple[tuple[str, int], ...] = ()
    #: ``dns:///`` names: (name, port).
    names: tuple[tuple[str, int], ...] = ()
    resolver: Resolver | None = None
    #: Some address was ``https://...``.
    https: bool = False

    @property
    def dynamic(self) -> bool:
        return bool(self.names) or self.resolver is not None

    def describe(self) -> str:
        if self.resolver is not None:
            return getattr(self.resolver, "__qualname__", repr(self.resolver))
        parts = [_format(h, p) for h, p in self.static]
        parts += [f"{DNS_SCHEME}{_format(h, p)}" for h, p in self.names]
        return ",".join(parts)


def parse_targets(address: str | Sequence[str] | Resolver) -> Targets:
    """The targets of a client's ``address``; ``ValueError`` for one that is not valid."""
    if callable(address):
        return Targets(resolver=address)
    items = address.split(",") if isinstance(address, str) else list(address)
    static: list[tuple[str, int]] = []
    names: list[tuple[str, int]] = []
    https = False
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"an address is a 'host:port' string, not {item!r}")
        item = item.strip()
        if not item:
            continue
        https = https or item.startswith("https://")
        if item.startswith("dns:"):
            if not item.startswith(DNS_SCHEME):
                raise ValueError(f"a DNS target is dns:///host:port (three slashes), got {item!r}")
            names.append(split_address(item.removeprefix(DNS_SCHEME)))
        else:
            static.append(split_address(item))
    if not static and not names:
        raise ValueError(f"no address in {address!r}")
    return Targets(tuple(dict.fromkeys(static)), tuple(dict.fromkeys(names)), None, https)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Endpoint:
    """One address: its connection (made in the loop of its first call: a grpclib
    channel belongs to the loop it was created in), and whether it failed lately."""

    def __init__(self, host: str, port: int, make: Callable[[], GoawayChannel]) -> None:
        self.host, self.port = host, port
        self._make = make
        self._channel: GoawayChannel | None = None
        self.failures = 0
        #: ``time.monotonic()`` before which the balancer avoids this address.
        self.avoid_until = 0.0

    @property
    def address(self) -> str:
        return _format(self.host, self.port)

    @property
    def channel(self) -> GoawayChannel:
        if self._channel is None:
            self._channel = self._make()
        return self._channel

    @property
    def goaways(self) -> int:
        return 0 if self._channel is None else self._channel.goaways

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def failed(self) -> None:
        self.failures += 1
        backoff = min(0.1 * 2 ** (self.failures - 1), 5.0)
        self.avoid_until = time.monotonic() + backoff * random.uniform(0.8, 1.2)

    def succeeded(self) -> None:
        self.failures = 0
        self.avoid_until = 0.0


class Balancer:
    """The addresses of one client, round-robin, re-resolved on a schedule."""

    def __init__(
        self,
        targets: Targets,
        make_channel: Callable[[str, int, str | None], GoawayChannel],
        *,
        resolve_interval: float = 30.0,
    ) -> None:
        if not resolve_interval > 0:
            raise ValueError(f"resolve_interval must be more than 0 seconds, got {resolve_interval!r}")
        self.targets = targets
        self._make_channel = make_channel
        self._interval = resolve_interval
        self._endpoints: dict[tuple[str, int], _Endpoint] = {}
        self._order: list[_Endpoint] = []
        self._next = 0
        self._resolved_at: float | None = None
        self._resolving: asyncio.Future[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._goaways = 0
        if not targets.dynamic:
            self._set([(h, p, None) for h, p in targets.static])
            self._resolved_at = float("inf")

    # --- addresses -------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """The addresses calls are spread over now."""
        return [e.address for e in self._order]

    def first_channel(self) -> GoawayChannel:
        if not self._order:
            raise RuntimeError(f"{self.targets.describe()} is not resolved yet")
        return self._order[0].channel

    def _set(self, found: Sequence[tuple[str, int, str | None]]) -> None:
        keep: dict[tuple[str, int], _Endpoint] = {}
        for host, port, name in found:
            key = (host, port)
            if key in keep:
                continue
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = _Endpoint(host, port, functools.partial(self._make_channel, host, port, name))
            keep[key] = endpoint
        for key, endpoint in self._endpoints.items():
            if key not in keep and endpoint._channel is not None:
                _close_later(endpoint._channel)
        self._endpoints = keep
        self._order = list(keep.values())

    async def _lookup(self) -> list[tuple[str, int, str | None]]:
        targets = self.targets
        found: list[tuple[str, int, str | None]] = [(h, p, None) for h, p in targets.static]
        if targets.resolver is not None:
            addresses = await targets.resolver()
            found += [(*split_address(a), None) for a in addresses]
        loop = asyncio.get_running_loop()
        for name, port in targets.names:
            try:
                infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                message = f"cannot resolve {name!r}: {exc.strerror or exc}"
                raise CallError(Status.UNAVAILABLE, message) from None
            found += [(str(info[4][0]), port, name) for info in infos]
        return found

    async def resolve(self) -> None:
        """Resolve the names now (one lookup at a time; concurrent callers share it)."""
        if self._resolving is None:
            self._resolving = asyncio.ensure_future(self._resolve())
        future = self._resolving
        try:
            await asyncio.shield(future)
        finally:
            if future.done() and self._resolving is future:
                self._resolving = None

    async def _resolve(self) -> None:
        try:
            found = await self._lookup()
        except CallError:
            if not self._order:
                raise
            _log.warning("Re-resolving failed; keeping the addresses known", exc_info=True)
            return
        except Exception as exc:  # noqa: BLE001 - a user's resolver: its error is reported
            if not self._order:
                raise CallError(Status.UNAVAILABLE, f"the resolver failed: {exc!r}") from None
            _log.warning("The resolver failed; keeping the addresses known", exc_info=True)
            return
        if not found:
            if not self._order:
                raise CallError(Status.UNAVAILABLE, f"{self.targets.describe()} resolved to no address")
            _log.warning(f"{self.targets.describe()} resolved to no address; keeping the addresses known")
            return
        self._set(found)
        self._resolved_at = time.monotonic()

    async def ready(self) -> None:
        """Resolved at least once; the schedule started."""
        if not self.targets.dynamic:
            return
        if self._resolved_at is None:
            await self.resolve()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(CallError):
                await self.resolve()

    def resolve_soon(self) -> None:
        """Re-resolve after a failure, at most once a second."""
        if not self.targets.dynamic or self._resolving is not None:
            return
        if self._resolved_at is not None and time.monotonic() - self._resolved_at < 1.0:
            return
        task = asyncio.ensure_future(self.resolve())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # --- picking ---------------------------------------------------------------------

    def pick(self, tried: set[_Endpoint]) -> _Endpoint | None:
        """The next address round-robin, passing over those tried by this call and those
        that failed lately (unless only such are left); ``None`` once all were tried."""
        order = self._order
        goaways = sum(e.goaways for e in order)
        if goaways != self._goaways:
            self._goaways = goaways
            self.resolve_soon()  # a replica draining: maybe new ones appeared
        now = time.monotonic()
        best: _Endpoint | None = None
        for _ in range(len(order)):
            endpoint = order[self._next % len(order)]
            self._next += 1
            if endpoint in tried:
                continue
            if endpoint.avoid_until <= now:
                return endpoint
            if best is None or endpoint.avoid_until < best.avoid_until:
                best = endpoint
        return best

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        for endpoint in self._order:
            endpoint.close()
        self._endpoints = {}
        self._order = []
        self._next = 0
        if self.targets.dynamic:
            self._resolved_at = None
        else:
            self._set([(h, p, None) for h, p in self.targets.static])

    def attempts(self, timeout: float | None) -> Attempts:
        return Attempts(self, timeout)


def _close_later(channel: GoawayChannel) -> None:
    # An address that left the service: the calls on it finish, then it is closed.
    async def close() -> None:
        protocol: Any = channel.current_protocol
        while protocol is not None and getattr(protocol, "processor", None) and protocol.processor.streams:
            await asyncio.sleep(0.5)
        channel.close()

    with contextlib.suppress(RuntimeError):
        task = asyncio.get_running_loop().create_task(close())
        _closing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_closing.discard)


#: Channels being closed once their calls finish.
_closing: set[asyncio.Task[None]] = set()


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` says the call never reached a server (safe to send again)."""
    if isinstance(exc, NotProcessed):
        return True
    if isinstance(exc, GRPCError):
        return exc.status is Status.UNAVAILABLE and (exc.message or "").startswith(DRAINING)
    # The connection could not be made (refused, unreachable, TLS handshake, timeout):
    # grpclib raises these only from connecting, before a stream exists.
    return isinstance(exc, (OSError, _ConnectTimeout))


class _ConnectTimeout(Exception):
    pass


class Attempts:
    """The attempts of one call::

    attempts = balancer.attempts(timeout)
    while True:
        endpoint = await attempts.next()
        try:
            ...  # the call on endpoint.channel, with attempts.remaining() as timeout
        except Exception as exc:
            attempts.failed(endpoint, exc)  # re-raises unless it may go again
            continue
        attempts.succeeded(endpoint)
        break
    """

    def __init__(self, balancer: Balancer, timeout: float | None) -> None:
        self._balancer = balancer
        self._start = time.monotonic()
        self._deadline = None if timeout is None else self._start + timeout
        self._tried: set[_Endpoint] = set()
        self._count = 0
        self._errors: list[tuple[str, str]] = []
        self._round = 0

    def remaining(self) -> float | None:
        """Seconds left of the call's timeout (``None``: no timeout)."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def next(self) -> _Endpoint:
        """The address of the next attempt, connected."""
        balancer = self._balancer
        while True:
            await balancer.ready()
            endpoint = balancer.pick(self._tried)
            if endpoint is None:  # every address tried: wait a little, resolve, go round again
                self._round += 1
                pause = min(0.05 * 2**self._round, 1.0)
                self._check_budget(pause)
                await asyncio.sleep(pause)
                balancer.resolve_soon()
                self._tried.clear()
                continue
            self._count += 1
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                raise CallError(Status.DEADLINE_EXCEEDED, "deadline exceeded")
            if endpoint.channel.ready:
                return endpoint
            limit = CONNECT_TIMEOUT if remaining is None else min(CONNECT_TIMEOUT, remaining)
            try:
                await asyncio.wait_for(endpoint.channel.__connect__(), limit)
            except TimeoutError:
                if remaining is not None and limit >= remaining:
                    raise CallError(Status.DEADLINE_EXCEEDED, "deadline exceeded") from None
                self.failed(endpoint, _ConnectTimeout(f"no connection within {limit:g} s"))
                continue
            except Exception as exc:  # noqa: BLE001 - failed() re-raises what is not an OSError
                self.failed(endpoint, exc)
                continue
            return endpoint

    def _check_budget(self, pause: float = 0.0) -> None:
        elapsed = time.monotonic() - self._start
        if self._count >= MAX_ATTEMPTS or elapsed + pause > RETRY_SECONDS:
            raise self._exhausted()
        if self._deadline is not None and time.monotonic() + pause >= self._deadline:
            raise CallError(Status.DEADLINE_EXCEEDED, "deadline exceeded")

    def _exhausted(self) -> CallError:
        addresses = {address for address, _ in self._errors}
        errors = [text if len(addresses) == 1 else f"{address}: {text}" for address, text in self._errors]
        last = errors[-1] if errors else "no address to call"
        before = list(dict.fromkeys(e for e in errors[:-1] if e != last))
        return CallError(
            Status.UNAVAILABLE,
            f"cannot reach {self._balancer.targets.describe()}: {last} ({self._count} attempts in "
            f"{time.monotonic() - self._start:.1f} s{'; before: ' + '; '.join(before) if before else ''})",
        )

    def failed(self, endpoint: _Endpoint, exc: BaseException) -> None:
        """Account for a failed attempt; re-raises ``exc`` unless the call may go again."""
        if not retryable(exc):
            raise exc
        if isinstance(exc, GRPCError):  # draining: its connection takes no more calls
            endpoint.channel.retire()
        endpoint.failed()
        self._tried.add(endpoint)
        self._errors.append((endpoint.address, _describe(exc)))
        self._balancer.resolve_soon()
        self._check_budget()

    def succeeded(self, endpoint: _Endpoint) -> None:
        endpoint.succeeded()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GRPCError):
        return f"{exc.status.name}: {exc.message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
