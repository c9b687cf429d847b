"""Core's own features, registered as plugins through the ``blazerpc`` entry points in
core's ``pyproject.toml`` (so a third-party plugin is never second-class). Their
hook implementations are ``trylast``: any other plugin gets the first word."""
