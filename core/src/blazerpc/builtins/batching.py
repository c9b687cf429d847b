"""The built-in batching policies: ``adaptive`` (the default) and ``fixed``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..batching import AdaptivePolicy, BatchConfig, BatchPolicy, FixedWindowPolicy
from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def blazerpc_batching_policies() -> Mapping[str, Callable[[BatchConfig], BatchPolicy]]:
    return {
        AdaptivePolicy.name: lambda config: AdaptivePolicy(),
        FixedWindowPolicy.name: lambda config: FixedWindowPolicy(),
    }
