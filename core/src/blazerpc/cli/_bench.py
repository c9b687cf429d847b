"""``blaze bench``: discover the model, encode its request once, run the levels, report."""

from __future__ import annotations

import json

import typer

from ..bench import BenchConfig, Target, run_bench
from ..bench._report import table
from ..bench._run import rich_progress
from ..client import CallError, ClientInputError
from ..client._balancer import parse_targets
from ._call import ConnectOptions
from ._json import read_data, request_inputs

__all__ = ["bench_model"]

METRICS_PORT = 9464  # the metrics plugin's default port


def bench_model(
    options: ConnectOptions,
    model: str,
    *,
    data: str | None,
    version: str | None,
    concurrency: tuple[int, ...],
    duration: float,
    warmup: float,
    processes: int,
    timeout: float,
    metrics_url: str | None,
    as_json: bool,
) -> None:
    try:
        payload = read_data(data)
        with options.client(timeout=timeout) as client:
            info = client.model(model, version)
            inputs = request_inputs(info, payload)
            _, request = client.encode(model, inputs, version=version)
            # One real call first: a benchmark of a request that fails measures nothing.
            if info.streaming:
                for _ in client.stream(model, inputs, version=version):
                    pass
            else:
                client.predict(model, inputs, version=version)
    except ClientInputError as exc:  # nothing was sent
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    except CallError as exc:
        typer.echo(f"The first call failed, so nothing was measured: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    targets = parse_targets(options.address)
    tls = (options.ca_file, options.cert_file, options.key_file) if options.uses_tls else None
    single = not targets.dynamic and len(targets.static) == 1
    host, port = (targets.static or targets.names)[0]
    target = Target(
        host, port, info.path, request, info.streaming, timeout, options.metadata, tls,
        balanced=None if single else options.address,
    )  # fmt: skip
    explicit_metrics = bool(metrics_url)
    if metrics_url is None:  # one server's: with several, only when given
        metrics_url = f"http://{host}:{METRICS_PORT}/metrics" if single else ""
    config = BenchConfig(
        target=target,
        model=info.name,
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        processes=processes,
        metrics_url=metrics_url or None,
    )
    try:
        with rich_progress(concurrency) as progress:
            results = run_bench(config, progress)
    except RuntimeError as exc:  # a load process failed: its error says why
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if explicit_metrics and all(r.mean_batch_size is None for r in results):
        typer.echo(
            f"Note: no batch sizes of model {info.name!r} from --metrics-url {metrics_url} "
            "(not reachable, not the metrics plugin's /metrics, or no model calls counted)",
            err=True,
        )
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
        return
    version_note = f" v{info.version}" if info.version else ""
    used = max(r.processes for r in results)  # never more than the calls in flight
    title = (
        f"{info.name}{version_note} at {options.address} ({info.rpc}): {duration:g} s per level "
        f"after {warmup:g} s of warm-up, {used} load process{'es' if used > 1 else ''}"
    )
    typer.echo(table(results, title=title))
