"""``blaze call``: call a model from the shell, or list what a server serves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer

from ..client import CallError, ModelInfo, SyncClient
from ..client._client import uses_tls
from ._json import InputError, TensorFormat, read_data, request_inputs, response_json

__all__ = ["ConnectOptions", "call_model", "list_models", "parse_metadata"]


@dataclass(frozen=True)
class ConnectOptions:
    """How ``blaze call`` and ``blaze bench`` reach a server."""

    address: str
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def client(self, timeout: float | None) -> SyncClient:
        return SyncClient(
            self.address,
            ssl=True if self.tls else None,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            timeout=timeout,
            metadata=list(self.metadata),
        )

    @property
    def uses_tls(self) -> bool:
        """Whether a client of these options connects with TLS (the client's own rule)."""
        return uses_tls(self.tls, self.ca_file, self.cert_file)


def parse_metadata(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``-H 'key: value'`` options as metadata pairs (keys lowercased, as HTTP/2 wants)."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise typer.BadParameter(f"metadata must be 'key: value', got {pair!r}", param_hint="--header")
        parsed.append((key.strip().lower(), value.strip()))
    return tuple(parsed)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


def list_models(options: ConnectOptions, *, as_json: bool, timeout: float | None) -> None:
    """Print the models a server serves, with their signatures."""
    try:
        with options.client(timeout) as client:
            models = client.models()
    except CallError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from None
    if as_json:
        typer.echo(json.dumps([_model_json(m) for m in models], indent=2))
        return
    if not models:
        typer.echo("The server serves no models.")
        return
    rows = [("MODEL", "VERSION", "RPC", "SIGNATURE")]
    rows += [(m.name, m.version or "?", m.rpc, m.signature) for m in models]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row, model in zip(rows, [None, *models], strict=True):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3])
        if model is not None and model.doc:
            typer.echo(" " * 4 + model.doc.replace("\n", "\n    "))


def _model_json(model: ModelInfo) -> dict[str, Any]:
    def fields(infos: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": f.name,
                "type": f.type,
                "repeated": f.repeated,
                "optional": f.optional,
                **(
                    {"dtype": f.dtype, "dims": list(f.dims) if f.dims is not None else None}
                    if f.type == "tensor"
                    else {}
                ),
            }
            for f in infos
        ]

    return {
        "name": model.name,
        "version": model.version,
        "rpc": model.rpc,
        "path": model.path,
        "streaming": model.streaming,
        "doc": model.doc,
        "inputs": fields(model.inputs),
        "outputs": fields(model.outputs),
        "signature": model.signature,
    }


def call_model(
    options: ConnectOptions,
    model: str,
    *,
    data: str | None,
    version: str | None,
    timeout: float | None,
    tensors: TensorFormat,
) -> None:
    """Call ``model`` with ``--data``; print the response as one line of JSON (a stream:
    one line per message)."""
    try:
        payload = read_data(data)
    except InputError as exc:
        raise _fail(f"Error: {exc}") from None
    try:
        with options.client(timeout) as client:
            info = client.model(model, version)
            inputs = request_inputs(info, payload)
            if info.streaming:
                for item in client.stream(model, inputs, version=version):
                    typer.echo(json.dumps(response_json(info, item, tensors)))
            else:
                result = client.predict(model, inputs, version=version)
                typer.echo(json.dumps(response_json(info, result, tensors)))
    except InputError as exc:
        raise _fail(f"Error: {exc}") from None
    except CallError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from None
