"""A third-party plugin whose import fails, installed by the tests as ``blazerpc-broken``."""

raise ImportError("needs libfoo")
