"""A model with a field the protocol has no datatype for stops start-up with a message
saying which, and what to do; ``--no-oip`` (option ``oip=False``) serves it."""

from __future__ import annotations

import numpy as np
import pytest

from blazerpc import BlazeApp, ConfigurationError, TensorInput, TensorOutput
from blazerpc.server import BlazeServer


def complex_app() -> BlazeApp:
    app = BlazeApp()

    @app.model("spectrum")
    def spectrum(x: TensorInput[np.complex64, "n"]) -> TensorOutput[np.complex64, "n"]:
        return x

    return app


async def test_a_field_without_a_v2_datatype_stops_start_up() -> None:
    with pytest.raises(ConfigurationError) as caught:
        BlazeServer(complex_app())
    assert str(caught.value) == (
        "blazerpc-oip cannot serve this app: field 'x' (complex64[n]) has no Open Inference Protocol "
        "datatype; pass --no-oip to serve without the protocol"
    )


async def test_without_the_protocol_it_serves() -> None:
    server = BlazeServer(complex_app(), options={"oip": False})
    info = await server.start("127.0.0.1", 0)
    await server.stop()
    assert info.port > 0
