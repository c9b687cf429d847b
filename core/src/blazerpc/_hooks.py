"""Calling a hook one implementation at a time.

pluggy's own call (``pm.hook.name(**kwargs)``) runs every implementation and stops at the
first exception. Some hooks need more: every plugin gets its shutdown call whatever an
earlier one raised, only the plugins whose supervisor start ran get their stop call, a
failing command-line hook marks only its own plugin failed. Core makes those calls here,
and only here, the way pluggy would: each implementation gets only the arguments it
names (a plugin may take a subset of the spec's), in pluggy's call order (the most
recently registered first, ``tryfirst``/``trylast`` respected) or its reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import pluggy
import structlog

__all__ = ["ONE_AT_A_TIME", "OnError", "call_each", "iter_calls", "log_failure"]

_log = structlog.get_logger("blazerpc")

#: The hooks core calls through this module. Their implementations cannot be wrappers:
#: a wrapper wraps the other implementations of one pluggy call, and here each
#: implementation is a call of its own.
ONE_AT_A_TIME = frozenset(
    {
        "blazerpc_cli",
        "blazerpc_kubernetes_manifests",
        "blazerpc_serve_options",
        "blazerpc_services",
        "blazerpc_startup",
        "blazerpc_shutdown",
        "blazerpc_supervisor_start",
        "blazerpc_worker_exit",
        "blazerpc_supervisor_stop",
    }
)

#: Told which plugin's implementation raised, and what.
OnError = Callable[[str, Exception], None]


def log_failure(hook: str) -> OnError:
    """An :data:`OnError` that logs the exception (with its traceback) and goes on."""

    def on_error(plugin: str, exc: Exception) -> None:
        _log.error(f"Plugin {plugin}'s {hook} hook failed", plugin=plugin, hook=hook, exc_info=exc)

    return on_error


def iter_calls(
    hook: pluggy.HookCaller,
    kwargs: Mapping[str, Any],
    *,
    reverse: bool = False,
    plugins: Collection[str] | None = None,
    on_error: OnError | None = None,
) -> Iterator[tuple[str, Any]]:
    """Call each implementation of ``hook`` on its own, lazily; yields ``(plugin name,
    result)`` after each one that returned.

    ``kwargs`` are the spec's arguments; each implementation is given those it names, as
    pluggy gives them.
    ``reverse``: the reverse of pluggy's call order. ``plugins``: only these plugins'
    implementations. An implementation that raises is passed to ``on_error`` and the
    next one runs; without ``on_error`` the exception propagates and no later one runs.
    """
    if hook.spec is not None:
        missing = set(hook.spec.argnames) - set(kwargs)
        if missing:  # a bug in core, not in a plugin
            raise TypeError(f"{hook.name} called without {', '.join(sorted(missing))}")
    impls = hook.get_hookimpls()  # the reverse of the call order
    for impl in impls if reverse else reversed(impls):
        if plugins is not None and impl.plugin_name not in plugins:
            continue
        # As pluggy calls it: the arguments it requires by position, those with a default
        # that the call has by name.
        args = [kwargs[name] for name in impl.argnames]
        optional = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
        try:
            result = impl.function(*args, **optional)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(impl.plugin_name, exc)
            continue
        yield impl.plugin_name, result


def call_each(
    hook: pluggy.HookCaller,
    kwargs: Mapping[str, Any],
    *,
    reverse: bool = False,
    plugins: Collection[str] | None = None,
    on_error: OnError | None = None,
) -> list[tuple[str, Any]]:
    """:func:`iter_calls`, all at once: the ``(plugin name, result)`` of each
    implementation that returned."""
    return list(iter_calls(hook, kwargs, reverse=reverse, plugins=plugins, on_error=on_error))
