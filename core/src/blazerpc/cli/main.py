"""``blaze serve``, ``blaze proto`` and ``blaze plugins list``; plugins add more."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pluggy
import structlog
import typer
from rich.markup import escape

from .. import __version__
from .._hooks import iter_calls
from .._logging import LogFormat, configure_logging
from .._plugins import PluginRecord, entry_point_failures, mark_failed, new_plugin_manager, plugin_records
from ..exceptions import ConfigurationError
from ._bench import bench_model
from ._call import ConnectOptions, call_model, list_models, parse_metadata
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
# blaze deploy kubernetes / dockerfile (blazerpc.deploy).
from ._deploy import deploy_cli  # noqa: E402 - one block with the registration

cli.add_typer(deploy_cli, name="deploy")

_log = structlog.get_logger("blazerpc")

AppPath = Annotated[str, typer.Argument(help="The app: module:attribute (app:app) or path/to/app.py:app.")]

# Options shared by the commands that call a server (call, bench).
Address = Annotated[
    str,
    typer.Argument(
        help="The server: host:port (port 50051 if left out); several separated by commas, or "
        "dns:///host:port for every address of a name: calls are spread over them."
    ),
]
Header = Annotated[
    list[str] | None,
    typer.Option("--header", "-H", help="Metadata sent with every call, 'key: value' (repeatable)."),
]
Tls = Annotated[bool, typer.Option("--tls", help="Connect with TLS, trusting the system's CAs.")]
CaFile = Annotated[str | None, typer.Option(help="Connect with TLS, trusting these CAs (PEM).")]
CertFile = Annotated[str | None, typer.Option(help="Client certificate for mutual TLS (PEM).")]
KeyFile = Annotated[str | None, typer.Option(help="The client certificate's private key (PEM).")]
Version = Annotated[
    str | None, typer.Option(help="The model's version [its unversioned RPC, or its only version].")
]
Data = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        help="The inputs as a JSON object: text, @file.json, or @- for standard input. Tensors as "
        'nested lists or {"shape": [..], "dtype": "float32", "data_base64": ".."}; bytes as base64.',
    ),
]


class _LogFormat(enum.StrEnum):
    console = "console"
    json = "json"


class _Loop(enum.StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


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
        int,
        # PORT: as Knative (and KServe's serverless mode) tell a container where to listen.
        typer.Option(help="Port to listen on (0 picks a free one).", min=0, max=65535, envvar="PORT"),
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
    loop: Annotated[
        _Loop,
        typer.Option(
            help="Event loop: uvloop when installed (core's speed extra: pip install './core[speed]'), "
            "or asyncio's."
        ),
    ] = _Loop.auto,
    max_connection_age: Annotated[
        float | None,
        typer.Option(
            help="Seconds (+-10%) after which a client's connection gets GOAWAY, so it reconnects and "
            "load spreads over replicas (more than 0) [never].",
        ),
    ] = None,
    max_connection_age_grace: Annotated[
        float | None,
        typer.Option(
            help="Seconds an aged connection's calls may still run before it is closed [as long as they "
            "take].",
            min=0,
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
        loop=loop.value,
        max_connection_age=max_connection_age,
        max_connection_age_grace=max_connection_age_grace,
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


def _connect(
    address: str, header: list[str] | None, tls: bool, ca_file: str | None, cert_file: str | None,
    key_file: str | None,
) -> ConnectOptions:  # fmt: skip
    if key_file and not cert_file:
        raise typer.BadParameter("--key-file needs --cert-file", param_hint="--key-file")
    return ConnectOptions(address, tls, ca_file, cert_file, key_file, parse_metadata(header or []))


class _TensorFormat(enum.StrEnum):
    list = "list"
    base64 = "base64"


@cli.command()
def call(
    address: Address,
    model: Annotated[str | None, typer.Argument(help="The model to call.")] = None,
    data: Data = None,
    version: Version = None,
    list_models_: Annotated[
        bool, typer.Option("--list", help="List the server's models and their signatures.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: print JSON for machines.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds the call (and the discovery before it) may take [no limit].", min=0),
    ] = None,
    tensors: Annotated[
        _TensorFormat, typer.Option(help="How result tensors print: nested lists, or shape/dtype/base64.")
    ] = _TensorFormat.list,
    header: Header = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Call a model and print its response as JSON (a stream: one line per message).

    Learns the server's models through reflection: no .proto needed. A call that fails
    prints its status code and message and exits with 1.
    """
    _check_timeout(timeout)
    options = _connect(address, header, tls, ca_file, cert_file, key_file)
    if list_models_:
        given = [
            name
            for name, value in (
                ("MODEL", model),
                ("--data", data),
                ("--version", version),
                ("--tensors", None if tensors is _TensorFormat.list else tensors),
            )
            if value is not None
        ]
        if given:
            raise typer.BadParameter(
                f"--list takes no {', '.join(given)}: it lists every model", param_hint="--list"
            )
        list_models(options, as_json=as_json, timeout=timeout)
        return
    if as_json:
        raise typer.BadParameter("--json goes with --list (a call always prints JSON)", param_hint="--json")
    if model is None:
        raise typer.BadParameter("name the model to call, or pass --list", param_hint="MODEL")
    call_model(options, model, data=data, version=version, timeout=timeout, tensors=tensors.value)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout <= 0:
        raise typer.BadParameter(f"must be more than 0 seconds, got {timeout:g}", param_hint="--timeout")


def _levels(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise typer.BadParameter(f"expected numbers >= 1 separated by commas, got {value!r}")
    return levels


@cli.command()
def bench(
    address: Address,
    model: Annotated[str, typer.Argument(help="The model to load.")],
    data: Data = None,
    version: Version = None,
    concurrency: Annotated[
        str, typer.Option("--concurrency", "-c", help="Calls in flight, one level per value: 1,8,64.")
    ] = "1,8,64",
    duration: Annotated[float, typer.Option(help="Seconds measured per level.", min=0.1)] = 10.0,
    warmup: Annotated[
        float, typer.Option(help="Seconds of load before each level is measured.", min=0)
    ] = 1.0,
    processes: Annotated[
        int,
        typer.Option(help="Load processes to spread the calls over (one cannot saturate a server).", min=1),
    ] = 1,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds each call may take: a call still running then counts as DEADLINE_EXCEEDED.", min=0
        ),
    ] = 30.0,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            help="The server's metrics plugin, for its mean batch size; '' not to look "
            "[http://HOST:9464/metrics].",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    header: Header = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Load a model with a closed loop of calls and report requests/s and latency.

    Each level keeps the given number of calls in flight, each sending the same
    request (encoded once) again as soon as its answer arrives. Reports requests/s,
    p50/p90/p99 latency and errors by status per level, and the server's mean batch
    size when its metrics plugin answers.
    """
    _check_timeout(timeout)
    bench_model(
        _connect(address, header, tls, ca_file, cert_file, key_file),
        model,
        data=data,
        version=version,
        concurrency=_levels(concurrency),
        duration=duration,
        warmup=warmup,
        processes=processes,
        timeout=timeout,
        metrics_url=metrics_url,
        as_json=as_json,
    )


@plugins_cli.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include core's built-in plugins.")] = False,
) -> None:
    """List installed plugins, the hooks they implement, and those that failed to load.

    Exits with code 1 if a plugin FAILED to load (the list is printed all the same), 0
    otherwise.
    """
    everything = plugin_records(new_plugin_manager())
    # A built-in that failed is shown without --all too: it is a failure to see.
    records = [r for r in everything if show_all or not r.builtin or not r.loaded]
    if as_json:
        typer.echo(json.dumps([{**dataclasses.asdict(r), "loaded": r.loaded} for r in records], indent=2))
    elif not records:
        typer.echo("No plugins installed. (--all shows core's built-ins.)")
    else:
        _print_plugin_table(records)
    failed = [r.name for r in everything if not r.loaded]
    if failed:
        count = f"{len(failed)} plugin{'s' if len(failed) > 1 else ''}"
        raise _fail(f"{count} failed to load ({', '.join(failed)}); the list says why")


def _print_plugin_table(records: list[PluginRecord]) -> None:
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


def _plugin_failed(pm: pluggy.PluginManager, name: str, hook: str, exc: Exception) -> None:
    mark_failed(name, f"its {hook} hook raised {type(exc).__name__}: {exc}")
    pm.unregister(name=name)


def _plugin_cli(pm: pluggy.PluginManager) -> list[ServeOption]:
    """Run each plugin's ``blazerpc_serve_options`` and ``blazerpc_cli`` hooks on their own;
    returns the serve options. A plugin whose hook raises is marked failed (``blaze
    plugins list`` and ``blaze serve`` report it), its commands and options are left out,
    and every command still works."""
    options: dict[str, list[ServeOption]] = {}

    def options_failed(plugin: str, exc: Exception) -> None:
        _plugin_failed(pm, plugin, "blazerpc_serve_options", exc)

    for plugin, offered in iter_calls(pm.hook.blazerpc_serve_options, {}, on_error=options_failed):
        if not isinstance(offered, Sequence) or not all(isinstance(o, ServeOption) for o in offered):
            error = TypeError(f"it must return a list of blazerpc.cli.ServeOption, not {offered!r}")
            options_failed(plugin, error)
        else:
            options[plugin] = list(offered)
    # What the command line had before the plugin being called: a plugin whose hook
    # raises leaves none of the commands it added.
    before = (len(cli.registered_commands), len(cli.registered_groups))

    def cli_failed(plugin: str, exc: Exception) -> None:
        del cli.registered_commands[before[0] :]
        del cli.registered_groups[before[1] :]
        options.pop(plugin, None)
        _plugin_failed(pm, plugin, "blazerpc_cli", exc)

    for _ in iter_calls(pm.hook.blazerpc_cli, {"cli": cli}, on_error=cli_failed):
        before = (len(cli.registered_commands), len(cli.registered_groups))
    return [option for group in options.values() for option in group]


def _as_written(command: Any) -> None:
    """Make every help text of ``command`` and its subcommands print as written: typer's
    help is rendered by rich, which reads ``[app's value]`` as markup and drops it."""
    for item in (command, *command.params):
        for attribute in ("help", "short_help"):
            text = getattr(item, attribute, None)
            if text:
                setattr(item, attribute, escape(text))
    for subcommand in getattr(command, "commands", {}).values():  # a group's commands
        _as_written(subcommand)


def build_command() -> Any:
    """The ``blaze`` command with every installed plugin's commands and options."""
    _add_serve_options(_plugin_cli(new_plugin_manager()))
    command = typer.main.get_command(cli)
    _as_written(command)
    return command


def main() -> None:
    build_command()(prog_name="blaze")
