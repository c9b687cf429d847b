"""What ``blaze serve`` does once its options are parsed: one process, or a supervisor
of worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import structlog

from .._hooks import call_each, iter_calls, log_failure
from .._limits import Limits
from .._plugins import new_plugin_manager
from ..app import set_default_max_queue_size
from ..exceptions import ConfigurationError
from ..server import run
from ..server._connections import check_connection_age
from ..server._loop import LoopName
from ..server._supervisor import Supervisor, SupervisorInfo, python_command, reserve_port, worker_ready
from ..server._tls import tls_from_files
from ._loader import load_app

__all__ = ["ServeConfig", "serve_app_path"]

_log = structlog.get_logger("blazerpc")


@dataclass(frozen=True)
class ServeConfig:
    """``blaze serve``'s options. ``None`` limits keep the app's own values."""

    app_path: str
    host: str
    port: int
    log_format: str
    log_level: str
    workers: int = 1
    reload: bool = False
    worker: bool = False
    grace_period: float = 30.0
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_ca_certs: str | None = None
    max_message_size: int | None = None
    max_concurrent_calls: int | None = None
    max_queue_size: int | None = None
    default_timeout: float | None = None
    loop: LoopName = "auto"
    max_connection_age: float | None = None
    max_connection_age_grace: float | None = None
    plugin_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def worker_args(self, port: int) -> list[str]:
        """The arguments of one worker's ``blaze serve``."""
        args = [
            "serve", self.app_path, "--host", self.host, "--port", str(port),
            "--log-format", self.log_format, "--log-level", self.log_level,
            "--grace-period", str(self.grace_period), "--loop", self.loop, "--worker",
        ]  # fmt: skip
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "max_message_size",
                     "max_concurrent_calls", "max_queue_size", "default_timeout",
                     "max_connection_age", "max_connection_age_grace"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        for name, value in self.plugin_options.items():
            flag = name.replace("_", "-")
            if isinstance(value, bool):
                args.append(f"--{flag}" if value else f"--no-{flag}")
            elif value is not None:
                args += [f"--{flag}", str(value)]
        return args

    def reload_paths(self) -> list[Path]:
        module = self.app_path.partition(":")[0]
        if module.endswith(".py") or "/" in module or os.sep in module:
            return [Path(module).resolve().parent]
        return [Path.cwd()]


def _limits(config: ServeConfig, app_limits: Limits) -> Limits:
    given = {
        name: getattr(config, name)
        for name in ("max_message_size", "max_concurrent_calls", "default_timeout")
        if getattr(config, name) is not None
    }
    if given.get("default_timeout") == 0:
        given["default_timeout"] = None  # --default-timeout 0: no server-side limit
    return dataclasses.replace(app_limits, **given)


def _supervise(config: ServeConfig) -> int:
    if config.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "--reload needs watchfiles: pip install 'watchfiles>=0.21' (core's reload extra)"
            ) from None
    reserved, port = reserve_port(config.host, config.port)
    pm = new_plugin_manager()
    info = SupervisorInfo(config.host, port, config.workers, dict(config.plugin_options))
    started: list[str] = []
    try:
        # Start hooks one by one, so only those that ran get their stop hook; the first
        # that raises aborts start-up.
        for name, _ in iter_calls(pm.hook.blazerpc_supervisor_start, {"supervisor": info}):
            started.append(name)
        what = f"{config.workers} workers" if config.workers > 1 else "a worker, reloading on changes"
        _log.info(
            f"Starting {what} on {config.host}:{port}",
            host=config.host,
            port=port,
            workers=config.workers,
            reload=config.reload,
        )
        exit_hook = pm.hook.blazerpc_worker_exit

        def worker_exit(pid: int, code: int) -> None:
            arguments = {"supervisor": info, "pid": pid, "returncode": code}
            call_each(exit_hook, arguments, on_error=log_failure(exit_hook.name))

        supervisor = Supervisor(
            lambda: python_command(config.worker_args(port)),
            config.workers,
            grace_period=config.grace_period,
            reload_paths=config.reload_paths() if config.reload else (),
            on_worker_exit=worker_exit,
        )
        return supervisor.run()
    finally:
        stop = pm.hook.blazerpc_supervisor_stop
        call_each(stop, {"supervisor": info}, reverse=True, plugins=started, on_error=log_failure(stop.name))
        reserved.close()


def serve_app_path(config: ServeConfig) -> int:
    """Serve ``config.app_path``; returns the exit code."""
    check_connection_age(config.max_connection_age, config.max_connection_age_grace)
    if config.workers > 1 or config.reload:
        return _supervise(config)
    app = load_app(config.app_path)
    if config.max_queue_size is not None:
        set_default_max_queue_size(app, config.max_queue_size)
    ssl = tls_from_files(config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs, spelling="option")
    abandoned = run(
        app,
        config.host,
        config.port,
        ssl=ssl,
        options=config.plugin_options,
        limits=_limits(config, app.limits),
        grace_period=config.grace_period,
        reuse_port=config.worker,
        on_ready=(lambda info: worker_ready()) if config.worker else None,
        parent_pid=os.getppid() if config.worker else None,
        loop=config.loop,
        max_connection_age=config.max_connection_age,
        max_connection_age_grace=config.max_connection_age_grace,
    )
    if abandoned:
        _exit_now(0)
    return 0


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's shutdown.

    Called once the server has stopped (shutdown hooks included) while sync model calls
    are still running in their threads: nothing can interrupt them, and a normal exit
    runs atexit handlers and finalizers that may wait on locks those calls hold (a
    framework's thread pool, a device context), so it could hang or crash. The logs are
    flushed first.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
