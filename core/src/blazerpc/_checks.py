"""The checks of numeric settings, one wording for every setting that takes a number."""

from __future__ import annotations

from typing import Any

from .exceptions import ConfigurationError

__all__ = ["check_count", "check_seconds"]


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def check_count(name: str, value: Any, where: str = "") -> None:
    """``value`` is a whole number >= 1 (``None`` passes: "not set")."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{where}{name} must be a whole number >= 1, got {value!r}")


def check_seconds(name: str, value: Any, where: str = "", *, zero: bool, what: str) -> None:
    """``value`` is a number > 0 (>= 0 with ``zero``); ``None`` passes. ``what`` says
    what the number is, for the message (``"a number of seconds > 0 or None"``)."""
    if value is not None and (not _is_number(value) or value < 0 or (value == 0 and not zero)):
        raise ConfigurationError(f"{where}{name} must be {what}, got {value!r}")
