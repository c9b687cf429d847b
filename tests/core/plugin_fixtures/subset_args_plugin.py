"""A plugin whose every hook implementation takes fewer arguments than its spec passes
(pluggy allows any subset; the zero-argument specs take none). ``blazerpc_worker_exit``
has two implementations, one taking only ``pid``, one only ``returncode``.

Used registered on an app (test_hook_arguments.py) and installed as the distribution
``blazerpc-subset`` for ``blaze serve`` subprocesses. Every call is recorded in
:data:`CALLS` and, when ``$SUBSET_HOOKS_LOG`` names a file, appended to it as one JSON
line with the pid of the process that made it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from blazerpc import CallContext, Middleware, hookimpl
from blazerpc.batching import BatchConfig, BatchEvent, BatchListener, BatchPolicy, FixedWindowPolicy
from blazerpc.cli import ServeOption
from blazerpc.deploy import KubernetesTarget, Manifest
from blazerpc.server import ServerInfo
from blazerpc.wire import ArrayConverter, WireType, scalar_wire_type

#: (hook, what it was given), in call order.
CALLS: list[tuple[str, dict[str, Any]]] = []


def record(hook: str, **seen: Any) -> None:
    CALLS.append((hook, seen))
    path = os.environ.get("SUBSET_HOOKS_LOG")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"hook": hook, "process": os.getpid(), **seen}) + "\n")


class Reading(float):
    """A sensor reading; travels as a double."""


class Grid:
    """A framework's array type: the plugin's converter turns it into numpy."""

    def __init__(self, values: list[float]) -> None:
        self.values = values


class Doubler:
    """A framework's model object: the plugin adapts it into a function."""


def _double(x: float) -> float:
    return 2 * x


class _Counting(Middleware):
    async def on_request(self, context: CallContext) -> None:
        record("middleware.on_request", model=context.model)


class _Listening(BatchListener):
    def on_batch(self, event: BatchEvent) -> None:
        record("listener.on_batch", model=event.model, rows=event.rows)


@hookimpl
def blazerpc_map_type(annotation: Any) -> WireType | None:
    if annotation is not Reading:
        return None
    record("blazerpc_map_type")
    return scalar_wire_type(FieldDescriptorProto.TYPE_DOUBLE, "Reading", decode=Reading, encode=float)


@hookimpl
def blazerpc_array_converters() -> Sequence[ArrayConverter]:
    record("blazerpc_array_converters")
    return [ArrayConverter(Grid, lambda grid: np.asarray(grid.values, dtype=np.float32))]


@hookimpl
def blazerpc_adapt_model(obj: Any) -> Callable[..., Any] | None:
    if not isinstance(obj, Doubler):
        return None
    record("blazerpc_adapt_model")
    return _double


@hookimpl
def blazerpc_middleware(options: Mapping[str, Any]) -> Sequence[Middleware]:
    record("blazerpc_middleware", options=sorted(options))
    return [_Counting()]


@hookimpl
def blazerpc_batching_policies() -> Mapping[str, Callable[[BatchConfig], BatchPolicy]]:
    record("blazerpc_batching_policies")
    return {"subset-fixed": lambda config: FixedWindowPolicy()}


@hookimpl
def blazerpc_batch_listeners() -> Sequence[BatchListener]:
    record("blazerpc_batch_listeners")
    return [_Listening()]


@hookimpl
def blazerpc_cli() -> None:
    record("blazerpc_cli")


@hookimpl
def blazerpc_serve_options() -> Sequence[ServeOption]:
    record("blazerpc_serve_options")
    return [ServeOption("subset_flag", str, "off", "A blazerpc-subset option [its value reaches start-up].")]


@hookimpl
def blazerpc_startup(server: ServerInfo) -> None:
    record("blazerpc_startup", port=server.port, options=dict(server.options))


@hookimpl
def blazerpc_shutdown(server: ServerInfo) -> None:
    record("blazerpc_shutdown", port=server.port)


@hookimpl
def blazerpc_supervisor_start() -> None:
    record("blazerpc_supervisor_start")


@hookimpl(specname="blazerpc_worker_exit")
def worker_exit_pid(pid: int) -> None:
    record("blazerpc_worker_exit(pid)", pid=pid)


@hookimpl(specname="blazerpc_worker_exit")
def worker_exit_returncode(returncode: int) -> None:
    record("blazerpc_worker_exit(returncode)", returncode=returncode)


@hookimpl
def blazerpc_supervisor_stop() -> None:
    record("blazerpc_supervisor_stop")


@hookimpl
def blazerpc_kubernetes_manifests(target: KubernetesTarget) -> Sequence[Manifest]:
    record("blazerpc_kubernetes_manifests", name=target.name)
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{target.name}-subset", "namespace": target.namespace},
        "data": {"models": ",".join(target.models)},
    }
    return [Manifest("subset.yaml", body)]
