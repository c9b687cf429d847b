"""Re-exporting an installed plugin's helpers, or saying how to install it."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from .._install import plugin_install

__all__ = ["plugin_exports"]


def plugin_exports(where: str, module: str, distribution: str, required: Sequence[str]) -> dict[str, Any]:
    """What contrib module ``where`` re-exports from plugin ``module``: ``required`` and
    the rest of the plugin's ``__all__``.

    Raises ``ModuleNotFoundError`` naming ``distribution`` when the plugin is not
    installed, and ``ImportError`` when it is installed but cannot be imported (its
    framework is missing or broken) or lacks one of ``required``.
    """
    try:
        plugin = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise ImportError(
                f"{distribution} is installed but cannot be imported: {exc}. Reinstall it with its "
                f"dependencies: {plugin_install(distribution, '--force-reinstall')}"
            ) from exc
        raise ModuleNotFoundError(
            f"{where} needs the {distribution} plugin, which is not installed: "
            + plugin_install(distribution),
            name=module,
        ) from None
    except ImportError as exc:
        raise ImportError(f"{distribution} is installed but cannot be imported: {exc}") from exc
    missing = [name for name in required if not hasattr(plugin, name)]
    if missing:
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            version = "(version unknown)"
        raise ImportError(
            f"{distribution} {version} does not provide {', '.join(missing)}: install the "
            f"current one from an up-to-date clone: {plugin_install(distribution)}"
        )
    public = [n for n in getattr(plugin, "__all__", ()) if not n.startswith("_") and n not in required]
    names = [*required, *public]
    return {name: getattr(plugin, name) for name in names}
