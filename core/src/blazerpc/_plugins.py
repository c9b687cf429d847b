"""Loading plugins: core's built-ins by module name, third-party plugins through the
``blazerpc`` entry-point group; the plugin manager; what ``blaze plugins list`` shows.

The public part (registering plugins, the environment variables) is re-exported by
:mod:`blazerpc.plugins`; the rest is core's own.

Each plugin is loaded on its own, and isolated from the others: one that fails to import,
whose hook implementations do not match the hook specs (an unknown hook name, an argument
the spec does not have), or whose ``blazerpc_cli`` or ``blazerpc_serve_options`` hook
raises is recorded with its error (``blaze plugins list`` shows it FAILED, ``blaze serve``
warns about it), is left out of every plugin manager, and the others load regardless. A
plugin registered explicitly (:func:`register`, ``BlazeApp(plugins=...)``) whose hooks
do not match the specs raises :class:`~blazerpc.PluginError` instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import builtins, hookspecs
from ._hooks import ONE_AT_A_TIME
from .exceptions import PluginError

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "PluginRecord",
    "check_plugin",
    "entry_point_failures",
    "failed_plugin_for_module",
    "mark_failed",
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


def check_plugin(plugin: object) -> None:
    """Raise :class:`~blazerpc.PluginError` if ``plugin``'s hook implementations do not
    match the hook specs (an unknown hook, an argument the spec does not have)."""
    problem = _hook_problem(plugin)
    if problem is not None:
        name = getattr(plugin, "__name__", None) or type(plugin).__qualname__
        raise PluginError(f"plugin {name} cannot be registered: {problem}")


def register(plugin: object) -> None:
    """Register ``plugin`` for every app created or built from now on in this process.

    For scripts and tests; installed plugins need no registration. To add a plugin to
    one app only, use ``BlazeApp(plugins=[...])``. Raises :class:`~blazerpc.PluginError`
    if its hooks do not match the hook specs.
    """
    check_plugin(plugin)
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
    module: str
    plugin: Any = None
    error: str | None = None


def _spec_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("blazerpc")
    pm.add_hookspecs(hookspecs)
    return pm


def _required_arguments(function: Any) -> list[str]:
    """The arguments pluggy passes a hook implementation by name (those without a default)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty]


def _explain_hooks(plugin: object, pm: pluggy.PluginManager) -> list[str]:
    """What is wrong with ``plugin``'s hook implementations, in words (``pm``: a manager
    with core's hook specs)."""
    specs = {
        name: list(caller.spec.argnames)
        for name, caller in vars(pm.hook).items()
        if not name.startswith("_") and caller.spec is not None
    }
    problems = []
    for attribute in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attribute)
        if opts is None:
            continue
        hook = opts.get("specname") or attribute
        if hook not in specs:
            if not opts.get("optionalhook"):
                close = difflib.get_close_matches(hook, specs, n=1)
                hint = f"did you mean {close[0]}?" if close else "the hooks are listed in blazerpc.hookspecs"
                problems.append(f"unknown hook {hook!r} ({hint})")
            continue
        arguments = _required_arguments(getattr(plugin, attribute))
        extra = [a for a in arguments if a not in specs[hook]]
        if extra:
            problems.append(
                f"{attribute}({', '.join(arguments)}) takes {', '.join(map(repr, extra))}, which the hook "
                f"spec {hook}({', '.join(specs[hook])}) does not pass; use the spec's argument names"
            )
    return problems


def _hook_problem(plugin: object) -> str | None:
    """Why ``plugin`` cannot be registered against core's hook specs, or None."""
    pm = _spec_manager()
    try:
        pm.register(plugin)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        # Our own words when we can tell what is wrong; pluggy's otherwise.
        return "; ".join(_explain_hooks(plugin, pm)) or " ".join(str(exc).split())
    except Exception as exc:  # noqa: BLE001 - e.g. an attribute that raises when pluggy reads it
        return f"{type(exc).__name__} while reading its hooks: {exc}"
    wrappers = sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        if caller.name in ONE_AT_A_TIME
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
    )
    if wrappers:
        return (
            f"{', '.join(wrappers)} cannot be a wrapper (wrapper=True or hookwrapper=True): core calls "
            "each plugin's implementation of it on its own"
        )
    return None


#: Entry points that loaded but failed later, in a hook run while building the command
#: line: name -> error. They are treated like entry points that failed to import.
_failed_later: dict[str, str] = {}


def mark_failed(name: str, error: str) -> None:
    """Record that the installed plugin ``name`` failed (``error`` says how): from now on
    it is left out of new plugin managers and reported with its error."""
    _failed_later.setdefault(name, error)


def _checked(found: functools.partial[_EntryPointResult], plugin: object) -> _EntryPointResult:
    problem = _hook_problem(plugin)
    if problem is not None:
        return found(error=f"invalid hook implementation: {problem}")
    return found(plugin=plugin)


def _load_builtins() -> list[_EntryPointResult]:
    """Core's own plugins, imported by module name: they need no installed metadata."""
    from . import __version__

    results = []
    for name, module in builtins.MODULES.items():
        found = functools.partial(_EntryPointResult, name, _CORE_DISTRIBUTION, __version__, True, module)
        try:
            plugin = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - recorded like a third-party plugin's failure
            results.append(found(error=f"{type(exc).__name__}: {exc}"))
            continue
        results.append(_checked(found, plugin))
    return results


@functools.cache
def _load_entry_points(only: frozenset[str] | None, disabled: bool) -> tuple[_EntryPointResult, ...]:
    """The built-ins, then the third-party entry points the environment selects."""
    results = _load_builtins()
    seen: set[tuple[str | None, str]] = set()
    for ep in () if disabled else metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only is not None and ep.name not in only:
            continue
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        key = (dist, ep.name)
        if key in seen:  # the same distribution seen twice on sys.path
            continue
        seen.add(key)
        found = functools.partial(_EntryPointResult, ep.name, dist, version, False, ep.module)
        owner = next((r for r in results if r.name == ep.name), None)
        if owner is not None:
            error = f"the plugin name {ep.name!r} is already taken by {owner.distribution}; rename one"
            results.append(found(error=error))
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is recorded, not raised
            results.append(found(error=f"{type(exc).__name__}: {exc}"))
            continue
        results.append(_checked(found, plugin))
    return tuple(sorted(results, key=lambda r: (not r.builtin, r.name)))


def _environment() -> tuple[frozenset[str] | None, bool]:
    raw = os.environ.get(PLUGINS_ENV)
    only = frozenset(n.strip() for n in raw.split(",") if n.strip()) if raw is not None else None
    disabled = os.environ.get(DISABLE_AUTOLOAD_ENV, "").lower() not in ("", "0", "false", "no")
    return only, disabled


def _entry_points() -> tuple[_EntryPointResult, ...]:
    results = _load_entry_points(*_environment())
    if not _failed_later:
        return results
    return tuple(
        dataclasses.replace(r, plugin=None, error=_failed_later[r.name])
        if r.error is None and r.name in _failed_later
        else r
        for r in results
    )


def entry_point_failures() -> list[PluginRecord]:
    """Plugins (built-in or installed) that failed to load, with their errors."""
    return [
        PluginRecord(r.name, r.distribution, r.version, r.builtin, (), r.error)
        for r in _entry_points()
        if r.error is not None
    ]


def failed_plugin_for_module(module: str) -> PluginRecord | None:
    """The installed plugin that failed and whose package ``module`` is in (an app using
    a type from it needs it), or None."""
    for r in _entry_points():
        if r.error is None:
            continue
        # A built-in owns its module, not all of blazerpc.
        home = r.module if r.builtin else r.module.split(".")[0]
        if module == home or module.startswith(home + "."):
            return PluginRecord(r.name, r.distribution, r.version, r.builtin, (), r.error)
    return None


def new_plugin_manager(extra: Iterable[object] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, every loadable entry point, the plugins
    given to :func:`register`, then ``extra``.

    Entry points are imported once per process; each call returns a fresh manager, so
    registering a plugin on one app never affects another.
    """
    pm = _spec_manager()
    for result in _entry_points():
        if result.plugin is not None and not pm.is_registered(result.plugin):
            pm.register(result.plugin, name=result.name)
    for plugin in (*_registered, *extra):  # checked when they were given: register(), BlazeApp
        if not pm.is_registered(plugin):
            pm.register(plugin, name=_plugin_name(plugin, pm))
    return pm


def _plugin_name(plugin: object, pm: pluggy.PluginManager) -> str:
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
