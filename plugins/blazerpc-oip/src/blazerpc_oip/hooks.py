"""The plugin's hooks: the V2 service beside the app's own, its serve option, the
batch listener its ``ModelStatistics`` reads, and KServe's objects for ``blaze deploy
kubernetes``."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from blazerpc import BlazeApp, hookimpl
from blazerpc.batching import BatchListener
from blazerpc.cli import ServeOption
from blazerpc.server import ServiceHost

from ._model import UnmappedField
from ._service import OpenInferenceService
from ._stats import Statistics

if TYPE_CHECKING:
    from blazerpc.deploy import KubernetesTarget, Manifest

__all__ = [
    "blazerpc_batch_listeners",
    "blazerpc_kubernetes_manifests",
    "blazerpc_serve_options",
    "blazerpc_services",
]

#: One Statistics per app (its servers' batchers report to it).
_STATISTICS: weakref.WeakKeyDictionary[BlazeApp, Statistics] = weakref.WeakKeyDictionary()


@hookimpl
def blazerpc_serve_options() -> Sequence[ServeOption]:
    return [
        ServeOption(
            "oip",
            bool,
            True,
            "Serve the Open Inference Protocol (inference.GRPCInferenceService, blazerpc-oip) "
            "beside the app's own service; --no-oip turns it off.",
        )
    ]


@hookimpl
def blazerpc_batch_listeners(app: BlazeApp) -> Sequence[BatchListener]:
    stats = _STATISTICS.get(app)
    if stats is None:
        stats = _STATISTICS[app] = Statistics()
    return [stats]


@hookimpl
def blazerpc_services(host: ServiceHost) -> Sequence[Any]:
    if not host.options.get("oip", True):
        return []
    try:
        return [OpenInferenceService(host, _STATISTICS.get(host.app))]
    except UnmappedField as exc:
        from blazerpc import ConfigurationError

        raise ConfigurationError(
            f"blazerpc-oip cannot serve this app: {exc}; pass --no-oip to serve without the protocol"
        ) from None


@hookimpl
def blazerpc_kubernetes_manifests(app: BlazeApp, target: KubernetesTarget) -> Sequence[Manifest]:
    from ._kserve import kserve_manifests

    return kserve_manifests(app, target)
