"""TLS and mutual TLS for the server."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from ..exceptions import ConfigurationError

__all__ = ["server_ssl_context", "tls_from_files"]


def server_ssl_context(
    certfile: str | Path, keyfile: str | Path | None = None, ca_certs: str | Path | None = None
) -> ssl.SSLContext:
    """A server context for gRPC over TLS (HTTP/2 negotiated by ALPN).

    With ``ca_certs``, clients must present a certificate signed by one of those CAs
    (mutual TLS).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the TLS certificate {certfile} / key {keyfile}: {exc}"
        ) from None
    if ca_certs is not None:
        try:
            context.load_verify_locations(str(ca_certs))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load the client CA certificates {ca_certs}: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    return context


def tls_from_files(
    certfile: str | Path | None,
    keyfile: str | Path | None,
    ca_certs: str | Path | None,
    *,
    spelling: Literal["argument", "option"] = "argument",
) -> ssl.SSLContext | None:
    """The server context of ``BlazeApp.serve(ssl_certfile=...)`` and ``blaze serve
    --ssl-certfile``: ``None`` without a certificate; a key or CA file without one is a
    :class:`ConfigurationError` that names them as the caller spells them (``spelling``:
    ``ssl_keyfile`` arguments or ``--ssl-keyfile`` options)."""
    if certfile is not None:
        return server_ssl_context(certfile, keyfile, ca_certs)
    if keyfile is not None or ca_certs is not None:

        def name(argument: str) -> str:
            return "--" + argument.replace("_", "-") if spelling == "option" else argument

        keyfile_name, ca_name, cert_name = (name(n) for n in ("ssl_keyfile", "ssl_ca_certs", "ssl_certfile"))
        raise ConfigurationError(f"{keyfile_name} and {ca_name} need {cert_name}")
    return None
