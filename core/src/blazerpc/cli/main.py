"""``blaze serve``, ``blaze proto`` and ``blaze plugins list``; plugins add more."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import os
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

from .. import __version__
from .._logging import LogFormat, configure_logging
from ..exceptions import ConfigurationError
from ..plugins import entry_point_failures, new_plugin_manager, plugin_records
from ._loader import load_app
from ._options import ServeOption
from ._serve import ServeConfig, serve_app_path

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="blaze",
    help="Serve type-annotated Python functions as gRPC inference endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plugins_cli = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
cli.add_typer(plugins_cli, name="plugins")

_log = structlog.get_logger("blazerpc")

AppPath = Annotated[str, typer.Argument(help="The app: module:attribute (app:app) or path/to/app.py:app.")]


class _LogFormat(enum.StrEnum):
    console = "console"
    json = "json"


class _LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"blazerpc {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    pass


@cli.command()
def serve(
    app_path: AppPath,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "0.0.0.0",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0 picks a free one).", min=0, max=65535)
    ] = 50051,
    workers: Annotated[
        int, typer.Option(help="Worker processes sharing the port (SO_REUSEPORT).", min=1)
    ] = 1,
    reload: Annotated[
        bool,
        typer.Option("--reload", help="Restart when a .py file changes (development; needs watchfiles)."),
    ] = False,
    grace_period: Annotated[
        float, typer.Option(help="Seconds calls in flight may finish after SIGTERM/SIGINT.", min=0)
    ] = 30.0,
    ssl_certfile: Annotated[str | None, typer.Option(help="Serve TLS with this certificate (PEM).")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    ssl_ca_certs: Annotated[
        str | None, typer.Option(help="Require client certificates signed by these CAs (mutual TLS).")
    ] = None,
    max_message_size: Annotated[
        int | None, typer.Option(help="Largest request in bytes [app's value; default 64 MiB].", min=1)
    ] = None,
    max_concurrent_calls: Annotated[
        int | None,
        typer.Option(help="Inference calls in progress at once [app's value; default 1024].", min=1),
    ] = None,
    max_queue_size: Annotated[
        int | None, typer.Option(help="Rows (or calls) waiting per model [app's value; default 2048].", min=1)
    ] = None,
    default_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a unary call without a client deadline may run; 0: no limit [app's; 60].", min=0
        ),
    ] = None,
    log_format: Annotated[_LogFormat, typer.Option(help="Log output.")] = _LogFormat.console,
    log_level: Annotated[_LogLevel, typer.Option(help="Lowest level logged.")] = _LogLevel.info,
    worker: Annotated[bool, typer.Option("--worker", hidden=True)] = False,
    **plugin_options: Any,
) -> None:
    """Start the gRPC server for an app."""
    fmt: LogFormat = "json" if log_format is _LogFormat.json else "console"
    configure_logging(fmt, log_level.value)
    if worker:
        structlog.contextvars.bind_contextvars(worker_pid=os.getpid())
    else:
        _log.info("BlazeRPC starting", app=app_path, version=__version__)
        for failure in entry_point_failures():
            _log.warning(
                f"Plugin {failure.name} failed to load; see 'blaze plugins list'",
                plugin=failure.name,
                distribution=failure.distribution,
                error=failure.error,
            )
    config = ServeConfig(
        app_path=app_path,
        host=host,
        port=port,
        log_format=log_format.value,
        log_level=log_level.value,
        workers=workers,
        reload=reload,
        worker=worker,
        grace_period=grace_period,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca_certs=ssl_ca_certs,
        max_message_size=max_message_size,
        max_concurrent_calls=max_concurrent_calls,
        max_queue_size=max_queue_size,
        default_timeout=default_timeout,
        plugin_options=plugin_options,
    )
    try:
        code = serve_app_path(config)
    except ConfigurationError as exc:
        _log.error(str(exc))
        raise typer.Exit(code=1) from None
    except OSError as exc:
        _log.error(f"Cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(code=1) from None
    if code:
        raise typer.Exit(code=code)


# serve's own parameters; plugins' options are added to copies of these.
_SERVE_SIGNATURE = inspect.signature(serve, eval_str=True)
_SERVE_ANNOTATIONS = dict(serve.__annotations__)


@cli.command()
def proto(
    app_path: AppPath,
    output_dir: Annotated[Path, typer.Option(help="Directory to write blaze_service.proto into.")] = Path(
        "."
    ),
) -> None:
    """Write the app's generated .proto file."""
    try:
        app = load_app(app_path)
        text = app.proto(header=f"Generated by BlazeRPC {__version__} from {app_path}. Do not edit.")
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "blaze_service.proto"
    path.write_text(text)
    typer.echo(f"Wrote {path}")


@plugins_cli.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include core's built-in plugins.")] = False,
) -> None:
    """List installed plugins, the hooks they implement, and those that failed to load."""
    records = [r for r in plugin_records(new_plugin_manager()) if show_all or not r.builtin]
    if as_json:
        typer.echo(json.dumps([{**dataclasses.asdict(r), "loaded": r.loaded} for r in records], indent=2))
        return
    if not records:
        typer.echo("No plugins installed. (--all shows core's built-ins.)")
        return
    rows = [("NAME", "DISTRIBUTION", "STATUS", "HOOKS")]
    for r in records:
        dist = f"{r.distribution} {r.version}" if r.distribution else "-"
        status = "built-in" if r.builtin and r.loaded else "loaded" if r.loaded else "FAILED"
        rows.append((r.name, dist, status, ", ".join(r.hooks) if r.loaded else r.error or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3]
        )


def _add_serve_options(options: list[ServeOption]) -> None:
    """Give ``serve`` the plugins' options, as keyword-only parameters typer reads."""
    params = [p for p in _SERVE_SIGNATURE.parameters.values() if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in params}
    annotations = dict(_SERVE_ANNOTATIONS)
    for option in options:
        if option.name in taken:
            raise ConfigurationError(f"two plugins add the serve option --{option.name.replace('_', '-')}")
        taken.add(option.name)
        annotation = Annotated[option.type, typer.Option(help=option.help)]  # type: ignore[name-defined]
        annotations[option.name] = annotation
        params.append(
            inspect.Parameter(
                option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default, annotation=annotation
            )
        )
    serve.__signature__ = _SERVE_SIGNATURE.replace(parameters=params)  # type: ignore[attr-defined]
    serve.__annotations__ = annotations


def build_command() -> Any:
    """The ``blaze`` command with every installed plugin's commands and options."""
    pm = new_plugin_manager()
    pm.hook.blazerpc_cli(cli=cli)
    _add_serve_options([option for group in pm.hook.blazerpc_serve_options() for option in group])
    return typer.main.get_command(cli)


def main() -> None:
    build_command()(prog_name="blaze")
