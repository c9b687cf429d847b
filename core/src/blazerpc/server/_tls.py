"""TLS and mutual TLS for the server."""

from __future__ import annotations

import ssl
from pathlib import Path

from ..exceptions import ConfigurationError

__all__ = ["server_ssl_context"]


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
