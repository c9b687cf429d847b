"""A cheaper ``repr`` of HTTP/2 DATA frames, with the same text.

h2 formats ``repr(frame)`` of every frame it receives, for a trace log that is off
(``H2Connection._receive_frame``), and hyperframe's repr of a DATA frame copies the
whole payload and hex-encodes all of it before keeping the first ten bytes. For a
4 MiB message that is over 40% of a server's instructions for the call (measured with
callgrind on the tensor echo of ``benchmarks/server.py``). This repr reads only the
bytes it shows, and returns exactly the same string.
"""

from __future__ import annotations

from typing import Any

from hyperframe.frame import DataFrame

__all__ = ["install"]

#: Bytes of the body hyperframe shows, plus one to know whether there are more.
_SHOWN = 10


def _body_repr(frame: Any) -> str:
    head = bytes(frame.serialize_padding_data()) + bytes(frame.data[: _SHOWN + 1])
    head += b"\0" * min(frame.pad_length, max(0, _SHOWN + 1 - len(head)))
    if not head:
        return "None"
    text: str = head[: _SHOWN + 1].hex()
    return "<hex:" + (text[: 2 * _SHOWN] + "..." if len(text) > 2 * _SHOWN else text) + ">"


def install() -> None:
    """Use the cheap repr for DATA frames (idempotent)."""
    DataFrame._body_repr = _body_repr  # type: ignore[method-assign, assignment]
