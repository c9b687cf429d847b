"""Core's own features, written as plugins like any other (so a third-party plugin is
never second-class) but loaded by module name, not through entry points: they load
whenever ``blazerpc`` imports, installed or not (pytest, llm and datasette do the same).
Their hook implementations are ``trylast``: any other plugin gets the first word."""

#: Core's built-in plugins: name -> module.
MODULES = {
    "scalars": "blazerpc.builtins.scalars",
    "numpy": "blazerpc.builtins.numpy",
    "batching": "blazerpc.builtins.batching",
    "logging": "blazerpc.builtins.logging",
    "access-log": "blazerpc.builtins.access_log",
}
