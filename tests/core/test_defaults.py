"""A parameter's default must be a value of its field's type: checked at registration
through the field's own converters, since the model gets the default whenever a client
leaves the field out. (Valid defaults reaching the model are in test_scalar_types.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blazerpc import BlazeApp, ModelRegistrationError, TensorInput
from blazerpc.testing import blaze_command, serve_app


def model_with_default(annotation: Any, default: Any) -> Any:
    def model(x: Any = default) -> str:
        return repr(x)

    model.__annotations__ = {"x": annotation, "return": str}
    return model


FLOAT3 = TensorInput[np.float32, 3]
SHAPE = "it is a tensor that does not match: expected shape float32[3], got shape [4]"
KIND = "it is a str32 tensor where float32[3] was declared"


@pytest.mark.parametrize(
    ("annotation", "default", "describe", "why"),
    [
        (int, "a", "int", "TypeError: 'str' object cannot be interpreted as an integer"),
        (int, 1.5, "int", "TypeError: 'float' object cannot be interpreted as an integer"),
        (int | None, "a", "int | None", "TypeError: 'str' object cannot be interpreted as an integer"),
        (str, b"text", "str", "it is bytes, but the field gives the model str"),
        (bool, 2, "bool", "it is int, but the field gives the model bool"),
        (float, True, "float", "it is bool, but the field gives the model float"),
        (bytes, "text", "bytes", "TypeError: string argument without an encoding"),
        (np.int8, 300, "int8", "it is 300, out of range for int8 [-128, 127]"),
        (np.float32, "x", "float32", "ValueError: could not convert string to float: 'x'"),
        (
            FLOAT3,
            np.zeros(4),
            "float32[3]",
            "it is a tensor that does not match: expected shape float32[3], got shape [4]",
        ),
        (
            FLOAT3,
            np.array(["a", "b", "c"]),
            "float32[3]",
            "it is a str32 tensor where float32[3] was declared",
        ),
    ],
    ids=lambda value: repr(value)[:30],
)
def test_a_default_of_the_wrong_type_is_rejected(
    annotation: Any, default: Any, describe: str, why: str
) -> None:
    app = BlazeApp()
    with pytest.raises(ModelRegistrationError) as info:
        app.model("m")(model_with_default(annotation, default))
    assert str(info.value) == (
        f"model 'm': parameter 'x' defaults to {default!r}, which is not a valid {describe} ({why}); "
        "give it a default of its type, or None"
    )
    assert app.models == ()


@pytest.mark.parametrize(
    ("annotation", "default", "received"),
    [
        (int, 7, "7"),
        (float, 1, "1"),  # an int stands for a float, as in Python's typing
        (str, "anon", "'anon'"),
        (int, None, "None"),
        (np.float32, 0.5, "0.5"),
        (np.int8, -3, "-3"),
        (FLOAT3, np.ones(3, dtype=np.float32), "array([1., 1., 1.], dtype=float32)"),
    ],
    ids=lambda value: repr(value)[:30],
)
async def test_a_default_of_the_right_type_reaches_the_model(
    annotation: Any, default: Any, received: str
) -> None:
    app = BlazeApp()
    app.model("m")(model_with_default(annotation, default))

    async with serve_app(app) as server:
        got = (await server.call("m")).result
    assert got == received


def test_blaze_serve_names_the_wrong_default(tmp_path: Path) -> None:
    app = tmp_path / "defaults_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('m')\n"
        "def m(x: int = 'a') -> int:\n"
        "    return x\n"
    )
    done = subprocess.run(
        [*blaze_command(), "serve", f"{app}:app", "--host", "127.0.0.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "model 'm': parameter 'x' defaults to 'a', which is not a valid int" in done.stderr
    assert "Server listening" not in done.stderr
