"""What ``blaze deploy kubernetes`` is told, checked once, with the defaults resolved."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from ..exceptions import ConfigurationError

__all__ = ["DEFAULT_PROMETHEUS_URL", "Autoscaler", "KubernetesOptions", "name_problem", "quantity"]

Autoscaler = Literal["auto", "hpa", "keda", "none"]

#: Kubernetes' resource quantity syntax (apimachinery's ``resource.Quantity``).
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12",
            "P": "1e15", "E": "1e18"}  # fmt: skip
#: A DNS-1035 label, as Service names must be: the headless Service adds 9 characters.
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 63 - len("-headless")
#: A DNS-1123 label, as namespaces must be.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_AUTOSCALERS = ("auto", "hpa", "keda", "none")
#: The Prometheus server of the prometheus-community chart installed in ``monitoring``:
#: the usual setup that scrapes pods by their ``prometheus.io/*`` annotations.
DEFAULT_PROMETHEUS_URL = "http://prometheus-server.monitoring.svc.cluster.local"


def quantity(value: str, what: str) -> Decimal:
    """The number a Kubernetes quantity (``500m``, ``2``, ``1Gi``) stands for."""
    found = _QUANTITY.match(value)
    if found is None:
        raise ConfigurationError(
            f"{what} {value!r} is not a Kubernetes quantity: e.g. 500m or 2 (CPU), 512Mi or 4Gi (memory)"
        )
    number, suffix = Decimal(found["number"]), found["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Decimal(_DECIMAL[suffix])
    try:
        return number * Decimal("1" + suffix) if suffix else number
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid exponents
        raise ConfigurationError(f"{what} {value!r} is not a Kubernetes quantity") from None


def name_problem(name: str) -> str | None:
    if not _NAME.match(name) or len(name) > _NAME_MAX:
        return (
            f"{name!r} cannot name Kubernetes objects: use lowercase letters, digits and '-', "
            f"starting with a letter, at most {_NAME_MAX} characters"
        )
    return None


@dataclass(frozen=True)
class KubernetesOptions:
    """The choices of ``blaze deploy kubernetes``; ``None`` fields take their defaults
    from the app (the name: its first model's) or from the other fields.

    Replicas: with an autoscaler (``hpa``, or ``keda`` when the metrics plugin is
    installed: ``auto``), it keeps between ``min_replicas`` and ``max_replicas`` pods
    and the Deployment leaves the count to it; ``replicas`` asks for a fixed count and
    no autoscaler.
    """

    name: str | None = None
    image: str | None = None
    namespace: str = "default"
    port: int = 50051
    workers: int = 1
    grace_period: float = 30.0
    #: ``blaze serve --max-connection-age``: seconds before the server asks a client to
    #: reconnect (GOAWAY), so new replicas get a share of long-lived connections; 0: off.
    max_connection_age: float = 300.0
    startup_timeout: float = 300.0
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    autoscaler: Autoscaler = "auto"
    #: Average CPU use, in percent of the request, the autoscaler keeps pods at [70].
    target_cpu: int | None = None
    #: Rows waiting per pod (the metrics plugin's ``blazerpc_queue_depth``) KEDA keeps [32].
    target_queue_depth: int | None = None
    prometheus_url: str | None = None
    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"

    def resolved(self, default_name: str, metrics: bool) -> KubernetesOptions:
        """These options checked, with every default filled in (``autoscaler`` is then
        ``hpa``, ``keda`` or ``none``)."""
        name = self.name or default_name
        problem = name_problem(name)
        if problem:
            hint = "" if self.name else " (the default, from the app's first model): pass --name"
            raise ConfigurationError(problem + hint)
        if not _NAMESPACE.match(self.namespace):
            raise ConfigurationError(
                f"--namespace {self.namespace!r} is not a Kubernetes namespace name: lowercase letters, "
                "digits and '-', at most 63 characters"
            )
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"--port must be between 1 and 65535, got {self.port}")
        if self.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {self.workers}")
        seconds = {
            "--grace-period": self.grace_period,
            "--max-connection-age": self.max_connection_age,
            "--startup-timeout": self.startup_timeout,
        }
        for flag, value in seconds.items():
            if value < 0:
                raise ConfigurationError(f"{flag} must be 0 or more seconds, got {value:g}")
        for kind, request, limit in (
            ("cpu", self.cpu_request, self.cpu_limit),
            ("memory", self.memory_request, self.memory_limit),
        ):
            if quantity(request, f"--{kind}-request") > quantity(limit, f"--{kind}-limit"):
                raise ConfigurationError(
                    f"--{kind}-request {request} is more than --{kind}-limit {limit}: Kubernetes rejects that"
                )
        autoscaler = self._autoscaler(metrics)
        changes: dict[str, object] = {"name": name, "image": self.image or f"{name}:latest"}
        changes["autoscaler"] = autoscaler
        if autoscaler == "none":
            changes["replicas"] = 2 if self.replicas is None else self.replicas
            if changes["replicas"] < 1:  # type: ignore[operator]
                raise ConfigurationError(f"--replicas must be at least 1, got {self.replicas}")
        else:
            low = 2 if self.min_replicas is None else self.min_replicas
            high = max(10, low) if self.max_replicas is None else self.max_replicas
            if not 1 <= low <= high:
                raise ConfigurationError(
                    f"--min-replicas {low} and --max-replicas {high}: need 1 <= min <= max"
                )
            changes.update(min_replicas=low, max_replicas=high)
            cpu = 70 if self.target_cpu is None else self.target_cpu
            if not 1 <= cpu <= 100:
                raise ConfigurationError(
                    f"--target-cpu is a percentage of the CPU request (1-100), got {cpu}"
                )
            changes["target_cpu"] = cpu
        if autoscaler == "keda":
            depth = 32 if self.target_queue_depth is None else self.target_queue_depth
            if depth < 1:
                raise ConfigurationError(f"--target-queue-depth must be at least 1 row, got {depth}")
            changes["target_queue_depth"] = depth
            url = self.prometheus_url or DEFAULT_PROMETHEUS_URL
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(f"--prometheus-url must be an http:// or https:// URL, got {url!r}")
            changes["prometheus_url"] = url
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def _autoscaler(self, metrics: bool) -> Autoscaler:
        autoscaler = self.autoscaler
        if autoscaler not in _AUTOSCALERS:
            raise ConfigurationError(
                f"--autoscaler must be one of {', '.join(_AUTOSCALERS)}, got {autoscaler!r}"
            )
        if self.replicas is not None:
            if autoscaler not in ("auto", "none"):
                raise ConfigurationError(
                    f"--replicas asks for a fixed count, but --autoscaler {autoscaler} sets the count: "
                    "pass --min-replicas and --max-replicas instead"
                )
            autoscaler = "none"
        elif autoscaler == "auto":
            autoscaler = "keda" if metrics else "hpa"
        if autoscaler == "none" and (self.min_replicas is not None or self.max_replicas is not None):
            raise ConfigurationError(
                "--min-replicas and --max-replicas need an autoscaler; --replicas sets a fixed count"
            )
        if autoscaler == "keda" and not metrics:
            raise ConfigurationError(
                "--autoscaler keda scales on the queue depth that the metrics plugin exports: "
                "install blazerpc-metrics (from plugins/blazerpc-metrics of the BlazeRPC checkout)"
            )
        if autoscaler != "keda":
            for flag, value in (("--prometheus-url", self.prometheus_url),
                                ("--target-queue-depth", self.target_queue_depth)):  # fmt: skip
                if value is not None:
                    raise ConfigurationError(
                        f"{flag} is for KEDA's scaling on the queue depth: it needs --autoscaler keda"
                        + ("" if metrics else " and the metrics plugin (blazerpc-metrics)")
                    )
        if autoscaler == "none" and self.target_cpu is not None:
            raise ConfigurationError("--target-cpu is for the autoscaler; --replicas sets a fixed count")
        return autoscaler
