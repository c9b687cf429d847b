"""Checks of the numbers given as settings (``BlazeApp(...)``, ``@app.model(...)``,
``blaze serve``), with the one message each kind of mistake gets."""

from __future__ import annotations

from .exceptions import ConfigurationError

__all__ = ["check_count", "is_number"]


def check_count(name: str, value: object, where: str = "") -> None:
    """Raise :class:`ConfigurationError` unless ``value`` is a whole number >= 1 (a bool
    is not one); ``where`` prefixes the message (``"model 'x': "``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{where}{name} must be a whole number >= 1, got {value!r}")


def is_number(value: object) -> bool:
    """An int or a float, not a bool."""
    return not isinstance(value, bool) and isinstance(value, int | float)
