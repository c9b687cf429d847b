"""Finding and loading plugins.

Plugins are entry points in the ``blazerpc`` group. Core's own features are registered
the same way from core's ``pyproject.toml``; they are the *built-ins*, always loaded.
Each entry point is loaded on its own: one that fails to import is recorded with its
error (``blaze plugins list`` shows it) and the others load regardless.

Environment:
    ``BLAZERPC_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points (built-ins
    still load; register plugins explicitly on the app).
    ``BLAZERPC_PLUGINS=torch,metrics``: load only these third-party entry points.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "PluginRecord",
    "entry_point_failures",
    "new_plugin_manager",
    "plugin_records",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "blazerpc"
DISABLE_AUTOLOAD_ENV = "BLAZERPC_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "BLAZERPC_PLUGINS"
_CORE_DISTRIBUTION = "blazerpc"


#: Plugins registered for the whole process with :func:`register`.
_registered: list[object] = []


def register(plugin: object) -> None:
    """Register ``plugin`` for every app created or built from now on in this process.

    For scripts and tests; installed plugins need no registration. To add a plugin to
    one app only, use ``BlazeApp(plugins=[...])``.
    """
    if plugin not in _registered:
        _registered.append(plugin)


def unregister(plugin: object) -> None:
    """Undo :func:`register`."""
    if plugin in _registered:
        _registered.remove(plugin)


@dataclass(frozen=True)
class PluginRecord:
    """What ``blaze plugins list`` shows about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: tuple[str, ...]
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _EntryPointResult:
    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    plugin: Any = None
    error: str | None = None


def _wanted(builtin: bool, name: str, only: frozenset[str] | None, disabled: bool) -> bool:
    if builtin:
        return True
    if disabled:
        return False
    return only is None or name in only


@functools.cache
def _load_entry_points(only: frozenset[str] | None, disabled: bool) -> tuple[_EntryPointResult, ...]:
    results: list[_EntryPointResult] = []
    seen: set[tuple[str | None, str]] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        key = (dist, ep.name)
        if key in seen:  # the same distribution seen twice on sys.path
            continue
        seen.add(key)
        builtin = dist == _CORE_DISTRIBUTION
        if not _wanted(builtin, ep.name, only, disabled):
            continue
        owner = next((r for r in results if r.name == ep.name), None)
        if owner is not None:
            error = f"the plugin name {ep.name!r} is already taken by {owner.distribution}; rename one"
            results.append(_EntryPointResult(ep.name, dist, version, builtin, error=error))
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is recorded, not raised
            error = f"{type(exc).__name__}: {exc}"
            results.append(_EntryPointResult(ep.name, dist, version, builtin, error=error))
        else:
            results.append(_EntryPointResult(ep.name, dist, version, builtin, plugin=plugin))
    return tuple(sorted(results, key=lambda r: (not r.builtin, r.name)))


def _environment() -> tuple[frozenset[str] | None, bool]:
    raw = os.environ.get(PLUGINS_ENV)
    only = frozenset(n.strip() for n in raw.split(",") if n.strip()) if raw is not None else None
    disabled = os.environ.get(DISABLE_AUTOLOAD_ENV, "").lower() not in ("", "0", "false", "no")
    return only, disabled


def _entry_points() -> tuple[_EntryPointResult, ...]:
    return _load_entry_points(*_environment())


def entry_point_failures() -> list[PluginRecord]:
    """Entry points that failed to load, with their errors."""
    return [
        PluginRecord(r.name, r.distribution, r.version, r.builtin, (), r.error)
        for r in _entry_points()
        if r.error is not None
    ]


def new_plugin_manager(extra: Iterable[object] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, every loadable entry point, the plugins
    given to :func:`register`, then ``extra``.

    Entry points are imported once per process; each call returns a fresh manager, so
    registering a plugin on one app never affects another.
    """
    pm = pluggy.PluginManager("blazerpc")
    pm.add_hookspecs(hookspecs)
    for result in _entry_points():
        if result.plugin is not None and not pm.is_registered(result.plugin):
            pm.register(result.plugin, name=result.name)
    for plugin in (*_registered, *extra):
        if not pm.is_registered(plugin):
            pm.register(plugin, name=plugin_name(plugin, pm))
    pm.check_pending()
    return pm


def plugin_name(plugin: object, pm: pluggy.PluginManager) -> str:
    """A readable name for ``plugin`` that is not yet taken in ``pm``."""
    base = getattr(plugin, "__name__", None) or type(plugin).__qualname__
    name, suffix = base, 2
    while pm.get_plugin(name) is not None:
        name, suffix = f"{base}-{suffix}", suffix + 1
    return name


def plugin_records(pm: pluggy.PluginManager) -> list[PluginRecord]:
    """Every plugin registered on ``pm``, then every entry point that failed to load."""
    from_entry_points = {r.name: r for r in _entry_points() if r.plugin is not None}
    records = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        ep = from_entry_points.get(name)
        if ep is not None and ep.plugin is plugin:
            records.append(PluginRecord(name, ep.distribution, ep.version, ep.builtin, hooks))
        else:
            records.append(PluginRecord(name, None, None, False, hooks))
    records.sort(key=lambda r: (not r.builtin, r.name))
    return records + entry_point_failures()
