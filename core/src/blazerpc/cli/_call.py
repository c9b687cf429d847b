"""``blaze call``: call a model from the shell, or list what a server serves."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from grpclib.metadata import encode_metadata

from ..client import CallError, ClientInputError, ModelInfo, SyncClient
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
    metadata: tuple[tuple[str, str | bytes], ...] = ()

    def client(self, timeout: float | None) -> SyncClient:
        """A client of these options; :class:`InputError` for a bad address or TLS files
        that do not load."""
        try:
            return SyncClient(
                self.address,
                ssl=True if self.tls else None,
                ca_file=self.ca_file,
                cert_file=self.cert_file,
                key_file=self.key_file,
                timeout=timeout,
                metadata=list(self.metadata),
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None
        except OSError as exc:  # ssl.SSLError included
            files = ", ".join(f for f in (self.ca_file, self.cert_file, self.key_file) if f)
            raise InputError(f"cannot load the TLS files ({files}): {exc.strerror or exc}") from None

    @property
    def uses_tls(self) -> bool:
        """Whether a client of these options connects with TLS (the client's own rule)."""
        return uses_tls(self.tls, self.ca_file, self.cert_file)


def parse_metadata(pairs: Sequence[str]) -> tuple[tuple[str, str | bytes], ...]:
    """``-H 'key: value'`` options as metadata pairs (keys lowercased, as HTTP/2 wants).
    The value of a binary key (``...-bin``) is given in base64, as grpcurl takes it."""
    parsed: list[tuple[str, str | bytes]] = []
    for pair in pairs:
        key, sep, text = pair.partition(":")
        key, text = key.strip().lower(), text.strip()
        if not sep or not key:
            raise typer.BadParameter(f"metadata must be 'key: value', got {pair!r}", param_hint="--header")
        value: str | bytes = text
        if key.endswith("-bin"):
            try:
                value = base64.b64decode(text, validate=True)
            except binascii.Error:
                raise typer.BadParameter(
                    f"the value of binary metadata {key!r} must be base64, got {text!r}",
                    param_hint="--header",
                ) from None
        try:
            encode_metadata(((key, value),))
        except (TypeError, ValueError):
            raise typer.BadParameter(
                f"invalid metadata {pair!r}: a key is lowercase ASCII letters, digits, '-', '_' and "
                "'.' (not 'grpc-...'), and a value non-empty printable ASCII text (base64 for a key "
                "ending in '-bin')",
                param_hint="--header",
            ) from None
        parsed.append((key, value))
    return tuple(parsed)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


def list_models(options: ConnectOptions, *, as_json: bool, timeout: float | None) -> None:
    """Print the models a server serves, with their signatures."""
    try:
        with options.client(timeout) as client:
            models = client.models()
    except ClientInputError as exc:
        raise _fail(f"Error: {exc}") from None
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
    except ClientInputError as exc:
        raise _fail(f"Error: {exc}") from None
    except CallError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from None
