"""``blaze deploy kubernetes`` and ``blaze deploy dockerfile``: thin commands over
:mod:`blazerpc.deploy`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from ..deploy import KubernetesOptions, dockerfile, find_checkout, kubernetes_manifests, render_yaml
from ..exceptions import ConfigurationError
from ._loader import load_app

__all__ = ["deploy_cli"]

deploy_cli = typer.Typer(
    help="Write what runs an app on a cluster: Kubernetes manifests and a Dockerfile.", no_args_is_help=True
)

AppPath = Annotated[
    str, typer.Argument(help="The app, as blaze serve takes it: app:app or path/to/app.py:app.")
]
Port = Annotated[int, typer.Option(help="The gRPC port in the container.", min=1, max=65535)]
Source = Annotated[
    Path | None,
    typer.Option(
        help="The BlazeRPC checkout the image installs BlazeRPC from [this blazerpc's own checkout]."
    ),
]


class _Autoscaler(enum.StrEnum):
    auto = "auto"
    hpa = "hpa"
    keda = "keda"
    none = "none"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)


@deploy_cli.command()
def kubernetes(
    app_path: AppPath,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Write one file per manifest, and the Dockerfile, here [YAML on standard output]."),
    ] = None,
    image: Annotated[str | None, typer.Option(help="The container image [NAME:latest].")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the objects [the app's first model's].")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the objects.")] = "default",
    port: Port = 50051,
    workers: Annotated[int, typer.Option(help="blaze serve --workers in each pod.", min=1)] = 1,
    grace_period: Annotated[
        float,
        typer.Option(help="blaze serve --grace-period: seconds a stopping pod's calls may finish.", min=0),
    ] = 30.0,
    max_connection_age: Annotated[
        float,
        typer.Option(
            help="blaze serve --max-connection-age: seconds before a client is asked to reconnect, "
            "so new pods get clients; 0 leaves it out.",
            min=0,
        ),
    ] = 300.0,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds a pod may take to load its models and listen.", min=0)
    ] = 300.0,
    autoscaler: Annotated[
        _Autoscaler,
        typer.Option(help="auto: keda with the metrics plugin installed, else hpa (CPU); none: --replicas."),
    ] = _Autoscaler.auto,
    replicas: Annotated[
        int | None,
        typer.Option(help="A fixed number of pods, and no autoscaler [2 with --autoscaler none].", min=1),
    ] = None,
    min_replicas: Annotated[
        int | None, typer.Option(help="Fewest pods the autoscaler keeps [2].", min=1)
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option(help="Most pods the autoscaler runs [10].", min=1)
    ] = None,
    target_cpu: Annotated[
        int | None, typer.Option(help="Average CPU use the autoscaler aims at, % of the request [70].")
    ] = None,
    target_queue_depth: Annotated[
        int | None, typer.Option(help="KEDA: rows waiting per pod it aims at (blazerpc_queue_depth) [32].")
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            help="KEDA: the Prometheus that scrapes the pods [http://prometheus-server.monitoring.svc.cluster.local]."
        ),
    ] = None,
    cpu_request: Annotated[str, typer.Option(help="CPU each pod requests (a quantity: 500m, 2).")] = "1",
    cpu_limit: Annotated[str, typer.Option(help="CPU each pod may use.")] = "2",
    memory_request: Annotated[str, typer.Option(help="Memory each pod requests (512Mi, 4Gi).")] = "1Gi",
    memory_limit: Annotated[str, typer.Option(help="Memory each pod may use.")] = "2Gi",
    source: Source = None,
) -> None:
    """Write the Kubernetes manifests that run an app (YAML on standard output).

    A Deployment with gRPC probes, a Service and a headless one, a PodDisruptionBudget,
    an autoscaler (HPA on CPU, or a KEDA ScaledObject on the queue depth when
    blazerpc-metrics is installed), and, with --output-dir, the Dockerfile of its image.
    """
    options = KubernetesOptions(
        name=name, image=image, namespace=namespace, port=port, workers=workers, grace_period=grace_period,
        max_connection_age=max_connection_age, startup_timeout=startup_timeout, replicas=replicas,
        min_replicas=min_replicas, max_replicas=max_replicas, autoscaler=autoscaler.value,
        target_cpu=target_cpu, target_queue_depth=target_queue_depth, prometheus_url=prometheus_url,
        cpu_request=cpu_request, cpu_limit=cpu_limit, memory_request=memory_request,
        memory_limit=memory_limit,
    )  # fmt: skip
    if source is not None and output_dir is None:
        raise _fail("--source is for the Dockerfile, written with --output-dir (or: blaze deploy dockerfile)")
    try:
        app = load_app(app_path)
        manifests = kubernetes_manifests(app, app_path, options)
        image_file = None
        if output_dir is not None:
            path = output_dir / "Dockerfile"
            image_file = (
                path,
                dockerfile(app, app_path, find_checkout(source), port=port, dockerfile_path=path),
            )
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    if output_dir is None:
        typer.echo(render_yaml(manifests), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for manifest in manifests:
        (output_dir / manifest.file).write_text(manifest.yaml())
        typer.echo(f"Wrote {output_dir / manifest.file}")
    if image_file is not None:
        image_file[0].write_text(image_file[1])
        typer.echo(f"Wrote {image_file[0]}")


@deploy_cli.command("dockerfile")
def dockerfile_command(app_path: AppPath, port: Port = 50051, source: Source = None) -> None:
    """Print the Dockerfile of an app's image.

    BlazeRPC and the plugins the app is served with, installed from a BlazeRPC checkout,
    then the app; it runs blaze serve as a non-root user.
    """
    try:
        app = load_app(app_path)
        text = dockerfile(app, app_path, find_checkout(source), port=port, dockerfile_path=Path("Dockerfile"))
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    typer.echo(text, nl=False)
