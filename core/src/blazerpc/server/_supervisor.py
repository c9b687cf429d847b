"""``blaze serve --workers N`` and ``--reload``: a parent that runs and watches workers.

Each worker is a fresh ``blaze serve`` process (not a fork: models and event loops
are created in the worker, never copied) listening on the same port with
SO_REUSEPORT, so the kernel spreads connections over them. The parent restarts a
worker that dies, restarts all of them when a source file changes (``--reload``), and
on SIGTERM/SIGINT asks every worker to drain and waits for them; a second signal is
passed on, which makes workers stop at once.

Without ``--reload``, a worker that cannot start (or workers that keep dying) ends the
parent with exit code 1. With ``--reload`` the parent logs it, stops the workers and
waits: the next change starts them again (a syntax error fixed, say).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from ..exceptions import ConfigurationError

__all__ = ["READY_FD_ENV", "Supervisor", "SupervisorInfo", "reserve_port"]

_log = structlog.get_logger("blazerpc")

#: A worker writes one line to this file descriptor once it is serving.
READY_FD_ENV = "BLAZERPC_READY_FD"
#: How many times workers may die within CRASH_WINDOW seconds before the parent gives up.
MAX_CRASHES = 5
CRASH_WINDOW = 60.0
STARTUP_TIMEOUT = 300.0


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (without listening) a SO_REUSEPORT socket, so port 0 becomes one fixed port
    that every worker can share and no other program takes meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock, sock.getsockname()[1]


@dataclass(frozen=True)
class SupervisorInfo:
    """The supervising parent, as its lifecycle hooks see it.

    Attributes:
        host, port: where the workers listen (port 0 already resolved).
        workers: how many worker processes run.
        options: the values of plugins' ``blaze serve`` options.
    """

    host: str
    port: int
    workers: int
    options: Mapping[str, Any]


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    #: The worker-exit callback was told about its exit.
    reported: bool = False


class Supervisor:
    """Runs ``workers`` copies of ``command`` (a ``blaze serve ... --worker`` command)."""

    def __init__(
        self,
        command: Callable[[], list[str]],
        workers: int,
        *,
        grace_period: float,
        reload_paths: Sequence[Path] = (),
        on_worker_exit: Callable[[int, int], None] = lambda pid, code: None,
    ) -> None:
        self._on_exit = on_worker_exit
        self._command = command
        self._count = workers
        self._grace = grace_period
        self._reload_paths = list(reload_paths)
        self._workers: list[_Worker] = []
        self._crashes: list[float] = []
        self._signals = 0
        self._reload = threading.Event()
        self._stop_watching = threading.Event()
        #: --reload only: the workers could not run; waiting for the next change.
        self._waiting = False

    # --- workers ---------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        """Start worker ``index`` (in its slot of the list) and wait until it serves.

        The worker is in the list from the moment it exists, so a signal that arrives
        while it starts reaches it too; a signal also ends the wait at once (the caller
        then stops every worker, this one included).
        """
        read_fd, write_fd = os.pipe()  # the worker writes a line once it serves
        env = {**os.environ, READY_FD_ENV: str(write_fd)}
        # Its own session: a terminal's Ctrl-C reaches only this parent, which passes on
        # one SIGTERM (a second signal would make the worker stop at once).
        try:
            process = subprocess.Popen(self._command(), env=env, pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
        worker = _Worker(index, process)
        if index < len(self._workers):
            self._workers[index] = worker
        else:
            self._workers.append(worker)
        with os.fdopen(read_fd, "rb") as ready:
            line = _read_line(ready, STARTUP_TIMEOUT, process, stop=lambda: self._signals > 0)
        if self._signals:
            return
        if not line:
            if process.poll() is None:
                process.kill()
                process.wait()
            self._exited(worker)
            raise ConfigurationError(f"worker {index + 1} did not start (exit code {process.returncode})")
        _log.info(f"Worker {index + 1}/{self._count} serving", worker=index + 1, pid=process.pid)

    def _exited(self, worker: _Worker) -> None:
        """Tell the worker-exit callback that ``worker`` exited (once per worker)."""
        if not worker.reported:
            worker.reported = True
            self._on_exit(worker.process.pid, worker.process.returncode)

    def _start_all(self) -> None:
        self._workers = []
        for index in range(self._count):
            if self._signals:  # stopped during start-up: start no more
                return
            self._spawn(index)

    def _stop_all(self, timeout: float) -> None:
        """SIGTERM every worker (serving or still starting) and wait up to ``timeout``
        seconds for each, then kill it."""
        for w in self._workers:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in self._workers:
            try:
                w.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.warning(f"Worker {w.index + 1} did not stop in time; killing it", pid=w.process.pid)
                w.process.kill()
                w.process.wait()
            self._exited(w)

    def _replace_dead(self) -> None:
        for i, w in enumerate(self._workers):
            code = w.process.poll()
            if code is None:
                continue
            self._exited(w)
            now = time.monotonic()
            self._crashes = [t for t in self._crashes if now - t < CRASH_WINDOW] + [now]
            if len(self._crashes) > MAX_CRASHES:
                raise ConfigurationError(
                    f"workers died {len(self._crashes)} times in {CRASH_WINDOW:g} s; giving up "
                    "(see their logs)"
                )
            _log.warning(
                f"Worker {i + 1} exited with code {code}; starting a new one", worker=i + 1, pid=w.process.pid
            )
            self._spawn(i)
            if self._signals:
                return

    def _or_wait(self, step: Callable[[], None]) -> None:
        """Run ``step`` (starting or replacing workers). With --reload, workers that cannot
        run do not end the parent: log why, stop them, and wait for the next change."""
        try:
            step()
        except ConfigurationError as exc:
            if not self._reload_paths:
                raise
            _log.error(f"{exc}; waiting for a change to start again")
            self._stop_all(self._grace)
            self._waiting = True

    # --- signals and reload ----------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:  # the second signal: workers stop at once
            for w in self._workers:
                if w.process.poll() is None:
                    w.process.send_signal(signal.SIGTERM)

    def _watch(self, armed: threading.Event) -> None:
        from watchfiles import PythonFilter, watch

        # With yield_on_timeout the first (empty) yield comes once the watches are in
        # place: only from then on is a change sure to be seen.
        for changes in watch(
            *self._reload_paths,
            watch_filter=PythonFilter(),
            stop_event=self._stop_watching,
            rust_timeout=200,
            yield_on_timeout=True,
        ):
            armed.set()
            if not changes:
                continue
            names = sorted({Path(path).name for _, path in changes})
            _log.info(f"Source changed ({', '.join(names)}); reloading")
            self._reload.set()

    # --- the loop --------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until a signal; returns the exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        watcher = None
        try:
            if self._reload_paths:
                armed = threading.Event()
                watcher = threading.Thread(
                    target=self._watch, args=(armed,), name="blazerpc-reload", daemon=True
                )
                watcher.start()
                deadline = time.monotonic() + 30
                while not armed.wait(0.1) and not self._signals:
                    if time.monotonic() > deadline:
                        raise ConfigurationError("--reload: the file watcher did not start")
                _log.info(f"Watching {', '.join(map(str, self._reload_paths))} for changes")
            if not self._signals:
                self._or_wait(self._start_all)
            while not self._signals:
                if self._reload.is_set():
                    self._reload.clear()
                    self._stop_all(self._grace)
                    self._waiting = False
                    self._crashes = []  # a new version of the code: a fresh crash budget
                    self._or_wait(self._start_all)
                elif not self._waiting:
                    self._or_wait(self._replace_dead)
                time.sleep(0.1)
            _log.info("Stopping workers", workers=len(self._workers), grace_period=self._grace)
            self._stop_all(self._grace + 10)
            return 0
        except ConfigurationError as exc:
            _log.error(str(exc))
            self._stop_all(self._grace)
            return 1
        finally:
            self._stop_watching.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _read_line(
    stream: object, timeout: float, process: subprocess.Popen[bytes], *, stop: Callable[[], bool]
) -> bytes:
    """The worker's ready line, or b"" if it exits, times out or ``stop()`` turns true first
    (checked every 0.2 s and after every signal)."""
    import select

    fd = stream.fileno()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            return os.read(fd, 64)
        if process.poll() is not None:
            return b""
    return b""


def worker_ready() -> None:
    """Called in a worker once it serves: tells the parent, if there is one."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))
    except OSError:
        pass


def python_command(args: Sequence[str]) -> list[str]:
    """``blaze`` with ``args``, run by this interpreter."""
    return [sys.executable, "-m", "blazerpc", *args]
