"""What the manifests need to know about an app, read once through core's public API:
the same app object ``blaze serve`` loads, with the same plugins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._plugins import plugin_records

if TYPE_CHECKING:
    from ..app import BlazeApp

__all__ = ["METRICS_DISTRIBUTION", "AppFacts", "read_app"]

#: The metrics plugin's distribution: installed, pods export ``blazerpc_queue_depth``.
METRICS_DISTRIBUTION = "blazerpc-metrics"


@dataclass(frozen=True)
class AppFacts:
    """The app as the manifests see it."""

    models: tuple[str, ...]  # "name v1", in registration order
    #: The health service names a probe can ask for: "" (the whole server) and the
    #: inference service's own.
    health_services: tuple[str, ...]
    #: Installed plugin distributions the app is served with (name, version), core's excluded.
    distributions: tuple[tuple[str, str], ...]
    default_name: str

    @property
    def metrics(self) -> bool:
        return any(name == METRICS_DISTRIBUTION for name, _ in self.distributions)


def read_app(app: BlazeApp) -> AppFacts:
    """Read ``app``; raises :class:`~blazerpc.ConfigurationError` if it cannot be served
    (no models, a type no plugin maps): the same checks as ``blaze serve``."""
    schema = app.schema()
    service = schema.file.service[0]
    distributions = sorted(
        {
            (record.distribution, record.version or "")
            for record in plugin_records(app.plugin_manager())
            if record.loaded and not record.builtin and record.distribution
        }
    )
    first = app.models[0].name
    return AppFacts(
        models=tuple(f"{spec.name} v{spec.version}" for spec in app.models),
        health_services=("", f"{schema.file.package}.{service.name}"),
        distributions=tuple(distributions),
        default_name=re.sub(r"[^a-z0-9-]+", "-", first.lower()).strip("-"),
    )
