"""Which models are batched, and with which settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .._checks import check_count, check_seconds
from .._plugins import entry_point_failures
from ..exceptions import ConfigurationError
from ..wire import BatchAxis
from ..wire._schema import MethodSchema
from ._policies import BatchConfig, BatchPolicy

__all__ = ["BatchSettings", "ModelPlan", "batch_axes", "plan_model"]


@dataclass(frozen=True)
class BatchSettings:
    """Batching settings as given to ``BlazeApp(...)`` or ``@app.model(...)``; ``None``
    on a model means "as the app says"."""

    enabled: bool | None = None
    max_batch_size: int | None = None
    batch_timeout_ms: float | None = None
    batch_policy: str | None = None
    max_concurrency: int | None = None
    max_queue_size: int | None = None

    def check(self, where: str) -> BatchSettings:
        """Raise :class:`ConfigurationError` for a value that cannot work."""
        for name in ("max_batch_size", "max_concurrency", "max_queue_size"):
            check_count(name, getattr(self, name), f"{where}: ")
        timeout = self.batch_timeout_ms
        check_seconds("batch_timeout_ms", timeout, f"{where}: ", zero=True, what="a number >= 0")
        if self.batch_policy is not None and not isinstance(self.batch_policy, str):
            raise ConfigurationError(
                f"{where}: batch_policy must be a policy name, got {self.batch_policy!r}"
            )
        return self

    def over(self, defaults: BatchSettings) -> BatchSettings:
        """These settings, with ``defaults`` wherever they say ``None``."""
        return BatchSettings(
            **{
                f.name: getattr(defaults, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def config(self) -> BatchConfig:
        """The full configuration; every field must be set."""
        if (
            self.max_batch_size is None
            or self.batch_timeout_ms is None
            or self.batch_policy is None
            or self.max_concurrency is None
            or self.max_queue_size is None
        ):
            raise ConfigurationError(f"incomplete batching settings: {self}")
        return BatchConfig(
            max_batch_size=self.max_batch_size,
            timeout=self.batch_timeout_ms / 1000,
            policy=self.batch_policy,
            max_concurrency=self.max_concurrency,
            max_queue_size=self.max_queue_size,
        )


def batch_axes(method: MethodSchema) -> list[BatchAxis] | str:
    """The inputs' batch axes, or why ``method`` cannot be batched."""
    if method.streaming:
        return "streaming models are not batched"
    if not method.inputs:
        return "it has no inputs"
    axes = []
    for f in method.inputs:
        if f.wire.batch is None:
            return f"input {f.name!r} ({f.wire.describe}) has no batch axis"
        if f.wire.optional:
            return f"input {f.name!r} is optional, so it may have no rows"
        axes.append(f.wire.batch)
    for f in method.outputs:
        if f.wire.batch is None:
            return f"output {f.name!r} ({f.wire.describe}) has no batch axis"
    return axes


@dataclass(frozen=True)
class ModelPlan:
    """How one model's calls are scheduled (the rule: ``blazerpc.batching``).

    ``limit``: the model's calls (batches, when batched) running at once, with at most
    ``config.max_queue_size`` waiting (rows when batched, calls otherwise); ``None``
    when the model has no limit of its own. A batched model also has its ``policy`` and
    the ``inputs``' batch axes (and ``config.max_concurrency == limit``); an unbatched
    one says ``why_not`` in the start-up log.
    """

    config: BatchConfig
    policy: BatchPolicy | None = None
    inputs: tuple[BatchAxis, ...] = ()
    why_not: str | None = None
    limit: int | None = None

    @property
    def batched(self) -> bool:
        return self.policy is not None


def plan_model(
    model: BatchSettings,
    app: BatchSettings,
    method: MethodSchema,
    policies: Mapping[str, Callable[[BatchConfig], BatchPolicy]],
) -> ModelPlan:
    """How ``method`` is scheduled: the ``model``'s own settings over the ``app``'s.

    A model's ``batching=True`` batches it even when the app has batching off (a
    per-model setting overrides the app's, as every other one does), and is a
    :class:`ConfigurationError` if the model cannot be batched; ``batching=False`` never
    batches it; ``None`` follows the app. An unbatched model's plan says why.
    """
    settings = model.over(app)
    limit = settings.max_concurrency  # None: not set on the model or the app
    # Unset, a batched model runs one batch at a time.
    config = dataclasses.replace(settings, max_concurrency=1 if limit is None else limit).config()
    if method.streaming:
        limit = None  # a stream is never limited
    factory = policies.get(config.policy)
    if factory is None:
        failed = "".join(f"; plugin {f.name} failed to load: {f.error}" for f in entry_point_failures())
        raise ConfigurationError(
            f"model {method.model!r}: unknown batch_policy {config.policy!r}; "
            f"available: {', '.join(sorted(policies))}{failed}"
        )
    if model.enabled is False:
        return ModelPlan(config, why_not="it is registered with batching=False", limit=limit)
    if not settings.enabled:
        return ModelPlan(
            config,
            why_not="the app has enable_batching=False (batching=True on @app.model batches one model)",
            limit=limit,
        )
    axes = batch_axes(method)
    if isinstance(axes, str):
        if model.enabled:
            raise ConfigurationError(
                f"model {method.model!r} is registered with batching=True but cannot be batched: "
                f"{axes}; give every input and output a batch axis (a list[...], or a tensor whose "
                'first dimension is "batch"), or drop batching=True'
            )
        return ModelPlan(config, why_not=axes, limit=limit)
    return ModelPlan(config, policy=factory(config), inputs=tuple(axes), limit=config.max_concurrency)
