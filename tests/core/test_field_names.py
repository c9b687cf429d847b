"""Field names protobuf rejects are caught when the model is registered, naming the
model, the parameter (or result field) and why; names protobuf accepts, its keywords
included, are served and exported as they are."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import pytest
from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto

from blazerpc import BlazeApp, ModelRegistrationError, hookimpl
from blazerpc.testing import blaze_command, serve_app
from blazerpc.wire import FieldContext, WireType

NOT_A_NAME = "is not a protobuf field name: use ASCII letters, digits and '_', not starting with a digit"


def _same_json_name(name: str, json_name: str, other: str) -> str:
    return (
        f"{name!r} has the JSON name {json_name!r} of {other!r} (JSON names drop '_' and "
        "capitalize the letter after it); rename one of them"
    )


def test_parameters_with_the_same_json_name_are_rejected() -> None:
    app = BlazeApp()

    def j(a_b: int, aB: int) -> int:
        return a_b + aB

    with pytest.raises(ModelRegistrationError) as info:
        app.model("j")(j)
    assert str(info.value) == "model 'j': parameter " + _same_json_name("aB", "aB", "a_b")
    assert app.models == ()


@pytest.mark.parametrize(
    ("first", "second", "json_name"),
    [
        ("x_", "x", "x"),
        ("_x", "X", "X"),
        ("a__b", "a_b", "aB"),
        ("a_1", "a1", "a1"),
        ("fooBar", "foo_bar", "fooBar"),
    ],
)
def test_every_json_name_collision_is_found(first: str, second: str, json_name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def model({first}: int, {second}: int) -> int:\n    return 0\n", namespace)
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("m")(namespace["model"])
    assert str(info.value) == "model 'm': parameter " + _same_json_name(second, json_name, first)


def test_a_non_ascii_parameter_name_is_rejected() -> None:
    def k(naïve: int) -> int:
        return naïve

    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("k")(k)
    assert str(info.value) == f"model 'k': parameter 'naïve' {NOT_A_NAME}"


Spaced = TypedDict("Spaced", {"a-b": int, "ok": int})


class Clashing(TypedDict):
    top_k: int
    topK: int


class Accented(NamedTuple):
    café: int


@dataclasses.dataclass
class ClashingData:
    top_k: int
    topK: int


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (Spaced, f"'a-b' {NOT_A_NAME}"),
        (Clashing, _same_json_name("topK", "topK", "top_k")),
        (Accented, f"'café' {NOT_A_NAME}"),
        (ClashingData, _same_json_name("topK", "topK", "top_k")),
    ],
)
def test_result_field_names_are_checked(result: type, expected: str) -> None:
    def model(x: int) -> Any:
        return x

    model.__annotations__ = {"x": int, "return": result}
    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp().model("r")(model)
    assert str(info.value) == f"model 'r': result field {expected}"


def test_blaze_proto_reports_a_bad_name_without_a_traceback(tmp_path: Path) -> None:
    app = tmp_path / "names_app.py"
    app.write_text(
        "from blazerpc import BlazeApp\n\n"
        "app = BlazeApp()\n\n\n"
        "@app.model('j')\n"
        "def j(a_b: int, aB: int) -> int:\n"
        "    return a_b + aB\n"
    )
    for command in (
        ["proto", f"{app}:app", "--output-dir", str(tmp_path)],
        ["serve", f"{app}:app", "--port", "0"],
    ):
        done = subprocess.run(
            [*blaze_command(), *command], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "model 'j': parameter " + _same_json_name("aB", "aB", "a_b") in done.stderr


# --- names protobuf accepts ---------------------------------------------------------------

KEYWORDS = ("message", "syntax", "optional", "repeated", "service", "returns", "stream", "max", "to", "inf")


class KeywordResult(NamedTuple):
    package: str
    option: int


def keyword_app() -> BlazeApp:
    app = BlazeApp()
    namespace: dict[str, Any] = {"KeywordResult": KeywordResult}
    params = ", ".join(f"{k}: int" for k in KEYWORDS)
    exec(
        f"def keywords({params}, _private: str = 'p') -> KeywordResult:\n"
        f"    return KeywordResult(_private, {' + '.join(KEYWORDS)})\n",
        namespace,
    )
    app.model("keywords")(namespace["keywords"])
    return app


async def test_protobuf_keywords_are_field_names_that_serve() -> None:
    app = keyword_app()

    async with serve_app(app) as server:
        reply = await server.call("keywords", **{k: i for i, k in enumerate(KEYWORDS, start=1)})
        got = reply.package, reply.option
    assert got == ("p", sum(range(1, len(KEYWORDS) + 1)))


def test_protobuf_keywords_compile_with_protoc(tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.fail("protoc is not on PATH; install it (apt-get install protobuf-compiler)")
    proto = tmp_path / "blaze_service.proto"
    proto.write_text(keyword_app().proto())
    for compiler in ([protoc], [sys.executable, "-m", "grpc_tools.protoc"]):
        done = subprocess.run(
            [*compiler, f"-I{tmp_path}", f"--python_out={tmp_path}", str(proto)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{compiler[-1]} rejected:\n{done.stderr}\n{proto.read_text()}"


class Point:
    """Mapped by BadMessagePlugin to a message whose own field name protobuf rejects."""


class BadMessagePlugin:
    @hookimpl
    def blazerpc_map_type(self, annotation: Any, context: FieldContext) -> WireType | None:
        if annotation is not Point:
            return None
        message = DescriptorProto(name="Point")
        message.field.add(name="x-coordinate", number=1, type=FieldDescriptorProto.TYPE_DOUBLE)
        return WireType(FieldDescriptorProto.TYPE_MESSAGE, "Point", message="Point", messages=(message,))


def test_what_the_pool_rejects_beyond_the_name_checks_fails_at_registration() -> None:
    def locate(p: Point) -> int:
        return 0

    with pytest.raises(ModelRegistrationError) as info:
        BlazeApp(plugins=[BadMessagePlugin()]).model("locate")(locate)
    message = str(info.value)
    assert message.startswith("the schema of models 'locate' cannot be built: ")
    assert "x-coordinate" in message
