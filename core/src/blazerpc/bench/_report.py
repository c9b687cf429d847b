"""``blaze bench``'s table."""

from __future__ import annotations

from collections.abc import Sequence

from ._stats import LevelResult

__all__ = ["table"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: Sequence[LevelResult], *, title: str) -> str:
    """One row per concurrency level, aligned for a terminal."""
    streaming = any(r.messages_per_second is not None for r in results)
    batched = any(r.mean_batch_size is not None for r in results)
    header = ["in flight", "req/s", "p50 ms", "p90 ms", "p99 ms", "mean ms"]
    header += ["msg/s"] if streaming else []
    header += ["batch"] if batched else []
    header.append("errors")
    rows = [header]
    for r in results:
        row = [
            str(r.concurrency),
            f"{r.requests_per_second:,.1f}",
            _ms(r.p50_ms),
            _ms(r.p90_ms),
            _ms(r.p99_ms),
            _ms(r.mean_ms),
        ]
        if streaming:
            row.append("-" if r.messages_per_second is None else f"{r.messages_per_second:,.1f}")
        if batched:
            row.append("-" if r.mean_batch_size is None else f"{r.mean_batch_size:.1f}")
        row.append(", ".join(f"{k} {v}" for k, v in r.errors.items()) or "0")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title, ""]
    for row in rows:
        cells = [cell.rjust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
