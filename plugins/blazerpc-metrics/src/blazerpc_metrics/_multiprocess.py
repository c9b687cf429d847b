"""``blaze serve --workers N``: one scrape returns the sum over every worker process.

The supervising parent sets up prometheus-client's multiprocess mode before it starts
any worker: a directory (``PROMETHEUS_MULTIPROC_DIR``, inherited by the workers, which
are fresh interpreters, so prometheus-client picks the mode when they import it), and
the ``/metrics`` endpoint, served by the parent, that adds up the files every worker
writes there. Counters and histograms of a worker that exited stay in the sum (totals
never go down when a worker is replaced); its gauges leave it. The parent removes the
directory at exit when it created it.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as _prometheus_multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from blazerpc import ConfigurationError

from ._exporter import MetricsServer

__all__ = ["DIR_ENV", "SUPERVISOR_ENV", "Supervision", "supervised_worker"]

_log = structlog.get_logger("blazerpc")

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set by the parent to its pid: its workers leave the ``/metrics`` endpoint to it.
SUPERVISOR_ENV = "BLAZERPC_METRICS_SUPERVISOR"
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")


def supervised_worker() -> bool:
    """This process is a worker whose parent serves the metrics of all workers."""
    return os.environ.get(SUPERVISOR_ENV) == str(os.getppid()) and bool(os.environ.get(DIR_ENV))


# prometheus-client's multiprocess module has no annotations.
_mark_process_dead: Callable[[int, str], None] = _prometheus_multiprocess.mark_process_dead
_MultiProcessCollector: Callable[..., Any] = _prometheus_multiprocess.MultiProcessCollector


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


class _Processes:
    """``process_*`` metrics of the parent and every live worker, added up (CPU time,
    memory, open files; the earliest start time), and ``blazerpc_workers``."""

    #: How each process metric combines over processes.
    _COMBINE: ClassVar[dict[str, Callable[[list[float]], float]]] = {
        "process_virtual_memory_bytes": sum,
        "process_resident_memory_bytes": sum,
        "process_cpu_seconds_total": sum,
        "process_open_fds": sum,
        "process_start_time_seconds": min,
        "process_max_fds": min,
    }

    def __init__(self, path: str) -> None:
        self._path = path

    def workers(self) -> list[int]:
        """Pids of live workers: they hold the live-gauge files."""
        pids = set()
        for name in os.listdir(self._path):
            match = _LIVE_FILE.match(name)
            if match is None:
                continue
            pid = int(match.group(1))
            if _alive(pid):
                pids.add(pid)
            else:  # a worker that died without the parent hearing of it
                _mark_process_dead(pid, self._path)
        return sorted(pids)

    def collect(self) -> Iterator[Metric]:
        workers = self.workers()
        yield GaugeMetricFamily("blazerpc_workers", "Live worker processes.", value=len(workers))
        values: dict[str, list[float]] = {}
        families: dict[str, Metric] = {}
        for pid in (os.getpid(), *workers):
            collector = ProcessCollector(pid=_constant(pid), registry=None)
            for family in collector.collect():
                families.setdefault(family.name, family)
                for sample in family.samples:
                    values.setdefault(sample.name, []).append(sample.value)
        for name, family in families.items():
            out = Metric(name, family.documentation + " (all processes)", family.type)
            for sample_name, samples in values.items():
                if sample_name == name or sample_name.removesuffix("_total") == name:
                    combine = self._COMBINE.get(sample_name, _sum)
                    out.add_sample(sample_name, {}, combine(samples))
            yield out


def _sum(values: list[float]) -> float:
    return sum(values)


@dataclass
class Supervision:
    """The parent's side: the directory and the endpoint over it."""

    path: str
    owned: bool
    server: MetricsServer
    _previous: Mapping[str, str | None]

    @classmethod
    def start(cls, host: str, port: int) -> Supervision:
        """Set up the directory and serve ``/metrics``; call before any worker starts."""
        previous = {name: os.environ.get(name) for name in (DIR_ENV, SUPERVISOR_ENV)}
        path = os.environ.get(DIR_ENV)
        owned = not path
        if path:
            # The operator's directory: emptied of a previous run's files, kept at exit.
            os.makedirs(path, exist_ok=True)
            for stale in glob.glob(os.path.join(path, "*.db")):
                os.remove(stale)
        else:
            path = tempfile.mkdtemp(prefix="blazerpc-metrics-")
        registry = CollectorRegistry()
        # Processes first: it drops the gauges of workers that died unannounced, before
        # the directory is read.
        registry.register(_Processes(path))
        _MultiProcessCollector(registry, path=path)
        try:
            server = MetricsServer(registry, host, port)
        except OSError as exc:
            if owned:
                shutil.rmtree(path, ignore_errors=True)
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
                "pass --metrics-port PORT (0 picks a free one)"
            ) from None
        os.environ[DIR_ENV] = path
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        _log.info(
            f"Metrics of all workers at {server.url}",
            metrics_port=server.port,
            metrics_host=host,
            multiprocess_dir=path,
        )
        return cls(path, owned, server, previous)

    def worker_exited(self, pid: int) -> None:
        """A worker is gone: its gauges leave the sums; its counters stay."""
        _mark_process_dead(pid, self.path)

    def stop(self) -> None:
        """Every worker has exited: stop serving, remove the directory if ours."""
        self.server.close()
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def options_endpoint(host: str, options: Mapping[str, Any]) -> tuple[str, int]:
    """Where ``/metrics`` is served: ``--metrics-host`` (default: the server's host) and
    ``--metrics-port``."""
    from .hooks import DEFAULT_PORT

    return str(options.get("metrics_host") or host), int(options.get("metrics_port", DEFAULT_PORT))
