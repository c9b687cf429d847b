"""An installed plugin whose supervisor hooks raise, called before every other plugin's:
the others' hooks must run all the same."""

from __future__ import annotations

from blazerpc import hookimpl


@hookimpl(tryfirst=True)  # called first
def blazerpc_worker_exit(pid: int) -> None:
    raise RuntimeError(f"exit hook broke for {pid}")


@hookimpl(trylast=True)  # stop hooks run in reverse: called first
def blazerpc_supervisor_stop() -> None:
    raise RuntimeError("stop hook broke")


@hookimpl
def blazerpc_supervisor_start() -> None:
    pass
