"""The server-wide limits: :class:`Limits` (public as ``blazerpc.Limits``)."""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import check_count, check_seconds

__all__ = ["Limits"]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Server-wide limits, set on ``BlazeApp(...)`` and overridable by ``blaze serve``.

    Attributes:
        max_message_size: largest request message, in bytes; a larger one is refused
            with ``RESOURCE_EXHAUSTED`` from its 5-byte header, before it is read.
        max_concurrent_calls: inference calls in progress at once; one more is
            refused with ``RESOURCE_EXHAUSTED``.
        default_timeout: seconds a unary call may take when the client sent no deadline
            (``DEADLINE_EXCEEDED`` after that); ``None`` for no limit. Streaming calls
            are bounded by the client's deadline only.
    """

    max_message_size: int = 64 * _MiB
    max_concurrent_calls: int = 1024
    default_timeout: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_concurrent_calls"):
            check_count(name, getattr(self, name))
        check_seconds(
            "default_timeout", self.default_timeout, zero=False, what="a number of seconds > 0 or None"
        )
