"""A benchmark run: each concurrency level in turn, over the load processes, with a
progress bar, and the server's batch sizes when its metrics are reachable."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ._loop import Target
from ._metrics import BatchCounter
from ._stats import LevelResult, summarize
from ._workers import LoadProcesses, shares

__all__ = ["BenchConfig", "rich_progress", "run_bench"]

#: Seconds the load processes get to receive a level's order before its warm-up begins.
_LEAD = 0.2


@dataclass(frozen=True)
class BenchConfig:
    target: Target
    #: The model's name, for the metrics' ``model`` label.
    model: str
    concurrency: tuple[int, ...]
    duration: float
    warmup: float
    processes: int
    #: ``/metrics`` of the server's metrics plugin, or None not to look.
    metrics_url: str | None


#: (concurrency, fraction of the level done, OK calls per second so far or None in warm-up)
Progress = Callable[[int, float, float | None], None]


def run_bench(config: BenchConfig, on_progress: Progress | None = None) -> list[LevelResult]:
    """Measure every level; returns one result per level, in order."""
    batches = BatchCounter(config.metrics_url, config.model) if config.metrics_url else None
    results = []
    count = min(config.processes, max(config.concurrency))
    with LoadProcesses(config.target, count) as load:
        for concurrency in config.concurrency:
            per_process = shares(concurrency, count)
            began = time.perf_counter() + _LEAD
            start = began + config.warmup
            end = start + config.duration
            load.start_level(per_process, start, end)
            span = (began, start, end)

            def tick(
                now: float, concurrency: int = concurrency, span: tuple[float, float, float] = span
            ) -> None:
                _tell(on_progress, concurrency, span, now, load.calls)

            _wait_until(start, tick)
            before = batches.scrape() if batches else None
            _wait_until(end, tick)
            after = batches.scrape() if batches else None
            samples = load.results()
            results.append(
                summarize(
                    samples,
                    concurrency=concurrency,
                    processes=sum(1 for n in per_process if n),
                    seconds=config.duration,
                    streaming=config.target.streaming,
                    mean_batch_size=BatchCounter.mean(before, after),
                )
            )
    return results


def _tell(
    on_progress: Progress | None, concurrency: int, span: tuple[float, float, float], now: float, calls: int
) -> None:
    if on_progress is not None:
        began, start, end = span
        rate = calls / (now - start) if now > start else None
        on_progress(concurrency, min(1.0, max(0.0, (now - began) / (end - began))), rate)


def _wait_until(when: float, tick: Callable[[float], None]) -> None:
    while (now := time.perf_counter()) < when:
        tick(now)
        time.sleep(min(0.1, when - now))
    tick(when)


@contextlib.contextmanager
def rich_progress(levels: Sequence[int]) -> Iterator[Progress | None]:
    """A progress bar on standard error (none when it is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rate]}"))
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
        tasks = {c: bar.add_task(f"{c:>5} in flight", total=1.0, rate="", start=False) for c in levels}
        started: set[int] = set()

        def update(concurrency: int, fraction: float, rate: float | None) -> None:
            task = tasks[concurrency]
            if concurrency not in started:
                started.add(concurrency)
                bar.start_task(task)
            bar.update(task, completed=fraction, rate="warming up" if rate is None else f"{rate:,.0f} req/s")

        yield update
