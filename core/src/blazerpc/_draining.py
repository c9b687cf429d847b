"""The one wording of a draining server's refusal: the server sends it (``UNAVAILABLE``)
for a call that no model has seen, and the client retries a call so refused on another
address, so both read it from here."""

from __future__ import annotations

__all__ = ["DRAINING"]

#: Starts the message of every ``UNAVAILABLE`` a draining server answers before any model ran.
DRAINING = "the server is shutting down"
