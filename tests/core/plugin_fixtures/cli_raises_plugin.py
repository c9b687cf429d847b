"""A plugin whose ``blazerpc_cli`` hook raises after adding a command; it also offers a
serve option. Installed by the tests as ``blazerpc-clifail``."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from blazerpc import hookimpl
from blazerpc.cli import ServeOption


@hookimpl
def blazerpc_cli(cli: typer.Typer) -> None:
    @cli.command()
    def half_added() -> None:
        """Added before the hook fails: must not stay."""

    raise RuntimeError("cannot read ~/.clifail.toml")


@hookimpl
def blazerpc_serve_options() -> Sequence[ServeOption]:
    return [ServeOption(name="clifail_level", type=int, default=1, help="Never offered: the plugin failed.")]
