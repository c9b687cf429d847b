"""Registering plugins, for plugin authors, scripts and tests.

Installed plugins need no registration: they are entry points in the ``blazerpc`` group
(:data:`ENTRY_POINT_GROUP`), loaded one at a time and isolated from each other (``blaze
plugins list`` shows one that fails, with its error). Core's own plugins, the
*built-ins*, are always loaded, by module name.

Environment:
    ``BLAZERPC_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points (built-ins
    still load; register plugins explicitly on the app).
    ``BLAZERPC_PLUGINS=torch,metrics``: load only these third-party entry points.
"""

from __future__ import annotations

from ._plugins import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    PLUGINS_ENV,
    check_plugin,
    new_plugin_manager,
    register,
    unregister,
)

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "check_plugin",
    "new_plugin_manager",
    "register",
    "unregister",
]
