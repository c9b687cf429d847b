"""The server's batching as its metrics plugin counts it: rows per model call over a
window, from two scrapes of ``/metrics`` (the Prometheus text format)."""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request

__all__ = ["BatchCounter", "batch_totals"]

_SAMPLE = re.compile(r"^(blazerpc_batch_size_(?:sum|count))\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def batch_totals(text: str, model: str) -> tuple[float, float] | None:
    """(rows, model calls) so far for ``model`` in a scrape, or None if it has none."""
    rows = calls = None
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or dict(_LABEL.findall(found["labels"])).get("model") != model:
            continue
        value = float(found["value"])
        if found[1].endswith("_sum"):
            rows = (rows or 0.0) + value
        else:
            calls = (calls or 0.0) + value
    return None if rows is None or calls is None else (rows, calls)


class BatchCounter:
    """Scrapes ``url`` for one model; ``None`` throughout when the server has no metrics."""

    def __init__(self, url: str, model: str) -> None:
        self.url = url
        self.model = model

    def scrape(self) -> tuple[float, float] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                text = response.read().decode("utf-8", "replace")
        except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException):
            return None  # no metrics there (or not HTTP: the gRPC port, say)
        return batch_totals(text, self.model)

    @staticmethod
    def mean(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
        """Rows per model call between two scrapes."""
        if before is None or after is None or after[1] <= before[1]:
            return None
        return (after[0] - before[0]) / (after[1] - before[1])
