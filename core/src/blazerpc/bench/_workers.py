"""Load processes: one Python process cannot saturate a server, so ``blaze bench
--processes N`` spreads the callers over N processes, each with its own event loop and
connection, measuring the same window of the same clock."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections.abc import Sequence
from typing import Any

from grpclib.client import Channel

from ..client._balancer import Balancer
from ..server._loop import loop_factory
from ._loop import Sample, Target, open_channel, run_level

__all__ = ["LoadProcesses", "shares"]


def shares(concurrency: int, processes: int) -> list[int]:
    """Callers per process: ``concurrency`` spread as evenly as it goes."""
    base, extra = divmod(concurrency, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


def _process_main(target: Target, conn: multiprocessing.connection.Connection, progress: Any) -> None:
    """A load process: connect, then run each level the parent asks for."""
    loop = loop_factory("auto")()  # uvloop when installed, as the server
    asyncio.set_event_loop(loop)

    async def connect() -> Channel | Balancer:
        return open_channel(target)  # grpclib binds a channel to the running loop

    channel = loop.run_until_complete(connect())
    try:
        conn.send("ready")
        while True:
            order = conn.recv()
            if order is None:
                return
            concurrency, start, end = order
            try:
                sample = loop.run_until_complete(
                    run_level(channel, target, concurrency, start, end, progress)
                )
            except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
                conn.send(traceback.format_exc())
                return
            conn.send(sample)
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return  # the parent is gone or stopping
    finally:
        channel.close()
        loop.close()


class LoadProcesses:
    """``count`` load processes for ``target``; use as a context manager."""

    def __init__(self, target: Target, count: int) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.progress = [context.RawValue("q", 0) for _ in range(count)]
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[Any] = []
        for counter in self.progress:
            parent, child = context.Pipe()
            proc = context.Process(target=_process_main, args=(target, child, counter), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        for conn in self._conns:
            try:
                ready = conn.recv()
            except EOFError:
                ready = None
            if ready != "ready":
                self.close()
                raise RuntimeError("a load process failed to start; see its error above")

    @property
    def calls(self) -> int:
        """Calls counted so far in the current level's window, over every process."""
        return sum(counter.value for counter in self.progress)

    def start_level(self, per_process: Sequence[int], start: float, end: float) -> None:
        for counter in self.progress:
            counter.value = 0
        for conn, concurrency in zip(self._conns, per_process, strict=True):
            conn.send((concurrency, start, end))

    def results(self) -> list[Sample]:
        samples = []
        for conn in self._conns:
            try:
                sample = conn.recv()
            except EOFError:
                sample = "the load process exited"
            if not isinstance(sample, Sample):
                raise RuntimeError(f"a load process failed:\n{sample}")
            samples.append(sample)
        return samples

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + 5
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join()

    def __enter__(self) -> LoadProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
