"""structlog set-up for the server: console lines for people, JSON lines for machines.

Tracebacks keep each frame's file, line, function and source line, never its local
variables: a model's frames hold the request (its payload, its metadata with
credentials), and a log is not the place for either. structlog's defaults render locals
(Rich's or better-exceptions' ``show_locals`` on the console, ``dict_tracebacks`` in
JSON), so both formats choose their traceback renderer explicitly.
"""

from __future__ import annotations

import linecache
import logging
import sys
from typing import Any, Literal

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import ExcInfo

__all__ = ["LogFormat", "configure_logging"]

LogFormat = Literal["console", "json"]

_DICT_TRACEBACK = ExceptionDictTransformer(show_locals=False)


def _traceback_dicts(exc_info: ExcInfo) -> list[dict[str, Any]]:
    """structlog's structured traceback without locals, each frame with its source line."""
    stacks: list[dict[str, Any]] = _DICT_TRACEBACK(exc_info)
    pending = list(stacks)
    while pending:
        stack = pending.pop()
        for frame in stack.get("frames", ()):
            frame.pop("locals", None)
            frame["line"] = linecache.getline(frame["filename"], frame["lineno"]).strip()
        pending.extend(stack.get("exceptions", ()))  # the members of an exception group
    return stacks


def _renderer(fmt: LogFormat) -> tuple[list[structlog.typing.Processor], structlog.typing.Processor]:
    """The format's exception processors and its final renderer."""
    if fmt == "json":
        return [structlog.processors.ExceptionRenderer(_traceback_dicts)], structlog.processors.JSONRenderer()
    # Python's own traceback text: the same in a terminal and in a file, never locals.
    console = structlog.dev.ConsoleRenderer(
        colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
    )
    return [], console


def configure_logging(fmt: LogFormat = "console", level: str = "info") -> None:
    """Send BlazeRPC's (and grpclib's) logs to stderr in ``fmt``."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    exceptions, renderer = _renderer(fmt)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *exceptions,
    ]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() makes two: the text, then the newline), so the
        # lines of worker processes sharing stderr never interleave mid-line.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # grpclib logs through the standard library: route it through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=processors[1:],
        )
    )
    root = logging.getLogger("grpclib")
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    root.propagate = False
